"""Where a command's outputs go, and the summary it prints at its end.

``fit`` logs to the logger's next ``version_N`` as Lightning does. ``validate`` and ``test`` get a run directory of
their own whose name says what was evaluated, beside the training runs under the logger's directory:
``test-version_0-step000100`` for ``--ckpt_path …/version_0/checkpoints/epoch=3-step=100.ckpt``, ``test-<file>``
for a checkpoint elsewhere, ``test-starting-policy`` without a checkpoint; a name already taken gets ``-2``, ``-3``,
… so that no earlier result is overwritten and no ``version_N`` of a training run is taken by an evaluation.

At the end every command prints its run directory and the files it wrote there: logs, checkpoints, generation files,
and the export directory.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Optional

STARTING_POLICY = "starting-policy"
_STEP = re.compile(r"step=(\d+)")


def evaluated_source(ckpt_path: Optional[str]) -> str:
    """What an evaluation evaluates, as a directory-name part: ``version_0-step000100``, ``last``, ...

    Args:
        ckpt_path: the checkpoint (``None``: the starting policy). A checkpoint in a ``<run>/checkpoints`` folder is
            named by its run and the step in Lightning's file name (``epoch=3-step=100``), others by their file name.
    """
    if not ckpt_path:
        return STARTING_POLICY
    folder, stem = os.path.split(os.path.splitext(os.path.normpath(ckpt_path))[0])
    step = _STEP.search(stem)
    label = f"step{int(step.group(1)):06d}" if step else re.sub(r"[^\w.=-]+", "_", stem)
    run = os.path.basename(os.path.dirname(folder)) if os.path.basename(folder) == "checkpoints" else ""
    return f"{run}-{label}" if run else label


def unique_name(root: str, name: str) -> str:
    """``name``, or ``name-2``, ``name-3``, ... : the first that is not a directory under ``root`` yet."""
    candidate, n = name, 1
    while os.path.exists(os.path.join(root, candidate)):
        n += 1
        candidate = f"{name}-{n}"
    return candidate


def check_checkpoint(ckpt_path: Optional[str], subcommand: str) -> None:
    """Refuse a local ``--ckpt_path`` that is no file before anything is built or any directory is made (Lightning's
    keywords ``last``/``best``/``hpc``/``registry`` and remote URLs are left to Lightning)."""
    if not ckpt_path or "://" in ckpt_path or ckpt_path in ("last", "best", "hpc", "registry"):
        return
    if not os.path.isfile(ckpt_path):
        raise FileNotFoundError(
            f"{subcommand} --ckpt_path {ckpt_path}: no such file (a checkpoint is written under "
            "<run dir>/checkpoints/; every fit prints the one it wrote at its end)"
        )


def name_evaluation_run(config: Any, subcommand: str) -> Optional[str]:
    """Give a ``validate``/``test`` run its own named directory (see the module docstring) by setting the logger's
    ``version`` in the parsed ``config`` of the subcommand (a jsonargparse Namespace), before it is instantiated.

    Lightning's default logger (``trainer.logger`` unset or ``true``) is written out as the logger Lightning would
    build (TensorBoard when installed, else CSV, under ``trainer.default_root_dir``) so that it can be named. A logger
    given a ``version``, a logger other than CSV/TensorBoard, a list of loggers or ``logger: false`` is left alone.

    Returns:
        The version (directory name) chosen, or ``None`` when the logger was left alone.
    """
    from jsonargparse import Namespace

    trainer = config.trainer
    logger = trainer.get("logger")
    if logger is None or logger is True:
        logger = Namespace(
            class_path=_default_logger_class(),
            init_args=Namespace(save_dir=trainer.get("default_root_dir") or os.getcwd()),
        )
    if not _is_versioned_logger(logger) or logger.get("init_args", Namespace()).get("version") is not None:
        return None
    init_args = logger.get("init_args") or Namespace()
    name = init_args.get("name", "lightning_logs")
    root = os.path.join(init_args.get("save_dir") or trainer.get("default_root_dir") or os.getcwd(), name or "")
    init_args.version = unique_name(root, f"{subcommand}-{evaluated_source(config.get('ckpt_path'))}")
    logger.init_args = init_args
    trainer.logger = logger
    return init_args.version


def _default_logger_class() -> str:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return "lightning.pytorch.loggers.CSVLogger"
    return "lightning.pytorch.loggers.TensorBoardLogger"


def _is_versioned_logger(logger: Any) -> bool:
    from jsonargparse import Namespace
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    if not isinstance(logger, (Namespace, dict)) or not logger.get("class_path"):
        return False
    module, _, name = logger["class_path"].rpartition(".")
    try:
        cls = getattr(__import__(module, fromlist=[name]), name)
    except (ImportError, AttributeError):
        return False
    return isinstance(cls, type) and issubclass(cls, (CSVLogger, TensorBoardLogger))


# ---------------------------------------------------------------------------------------------- the summary
@dataclass
class OutputTracker:
    """The files of a run's output folders before the command ran, to tell at its end which ones it wrote.

    Args:
        folders: category (``logs``, ``checkpoints``, ``generations``) -> folder; each is listed without recursion.
    """

    folders: dict[str, str]
    before: dict[str, dict[str, float]] = field(default_factory=dict)

    @classmethod
    def start(cls, trainer: Any, module: Any) -> "OutputTracker":
        tracker = cls(run_folders(trainer, module))
        tracker.before = {folder: _listing(folder) for folder in tracker.folders.values()}
        return tracker

    def written(self) -> dict[str, list[str]]:
        """category -> paths of the files created or modified since ``start``, sorted."""
        out = {}
        for category, folder in self.folders.items():
            old = self.before.get(folder, {})
            files = [
                os.path.join(folder, name) for name, mtime in sorted(_listing(folder).items()) if old.get(name) != mtime
            ]
            if files:
                out[category] = files
        return out


def run_folders(trainer: Any, module: Any) -> dict[str, str]:
    """The folders a command writes to: the logger's run directory, each ``ModelCheckpoint``'s folder (where Lightning
    will put it when not set yet), and the generation files' folder (``generations_dir`` or ``<run
    dir>/generations``)."""
    run_dir = trainer.log_dir or trainer.default_root_dir
    folders = {"logs": run_dir}
    for i, callback in enumerate(trainer.checkpoint_callbacks):
        key = "checkpoints" if i == 0 else f"checkpoints ({i + 1})"
        folders[key] = callback.dirpath or os.path.join(run_dir, "checkpoints")
    collector = getattr(module, "eval_collector", None)
    if collector is not None:
        folders["generations"] = collector.generations_dir or os.path.join(run_dir, "generations")
    return folders


def _listing(folder: str) -> dict[str, float]:
    if not os.path.isdir(folder):
        return {}
    return {entry.name: entry.stat().st_mtime for entry in os.scandir(folder) if entry.is_file()}


def _show(path: str) -> str:
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def summary_lines(
    subcommand: str, run_dir: str, written: dict[str, list[str]], export_dir: Optional[str] = None
) -> list[str]:
    """The end-of-command summary: the run directory, then per category the files written (the first with its
    folder, the others by name), then the export directory."""
    lines = [f"{subcommand} finished; run directory: {_show(run_dir)}"]
    width = max([len(c) for c in written] + [len("export")])
    for category, files in written.items():
        names = [_show(files[0])] + [os.path.basename(f) for f in files[1:]]
        lines.append(f"  {category:<{width}}  {', '.join(names)}")
    if not written:
        lines.append("  (no file was written)")
    if export_dir:
        lines.append(f"  {'export':<{width}}  {_show(export_dir)}")
    return lines
