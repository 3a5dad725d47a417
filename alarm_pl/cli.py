"""The command line: ``python -m alarm_pl fit|validate|test --config configs/X.yaml`` (LightningCLI).

The LightningModule is chosen by the config's ``model.class_path`` (``alarm_pl.module.ALaRMModule`` for PPO with
hierarchical rewards, ``alarm_pl.sft.SFTModule`` for supervised fine-tuning) and the DataModule by ``data.class_path``.
Every argument is typed and documented: ``fit --model.help alarm_pl.module.ALaRMModule`` lists a module's arguments,
``--print_config`` shows the resolved configuration, and dotted overrides reach ``init_args`` directly
(``--model.ppo.clip_range 0.1``).

The optimizer is an argument of the module (``model.optimizer``), built over the trainable parameters only;
LightningCLI's own top-level ``--optimizer``/``--lr_scheduler`` are switched off, because an optimizer built over
every parameter of a LoRA policy would have nothing to train (``--optimizer`` is refused with a pointer to
``--model.optimizer``).

What a person at the terminal sees lives beside this file: the parser (no abbreviations, ``null`` at every depth,
short errors) in ``cli_parser.py``, filtered library noise and one-message failures in ``console.py``, run
directories and the end-of-command summary in ``outputs.py``, the progress bar in ``callbacks/progress.py``.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any, Optional

import lightning.pytorch as pl
from lightning.pytorch.cli import LightningCLI

from alarm_pl.console import quiet_checkpoint_dirpath_warning, quiet_eval_mode_warning, quiet_library_noise, run_command
from alarm_pl.outputs import OutputTracker, check_checkpoint, name_evaluation_run, summary_lines


class ALaRMCLI(LightningCLI):
    """LightningCLI with the LightningModule and the LightningDataModule both chosen by ``class_path``."""

    def _parse_ckpt_path(self) -> None:
        """Check a ``--ckpt_path`` before anything is built: a missing file (``outputs.check_checkpoint``), and a
        truncated, foreign or unsafe one (``checkpointing.read_checkpoint``), end here with a message naming the
        file. LightningCLI would also merge the checkpoint's hyper-parameters into the configuration here; alarm_pl
        checkpoints carry none (the YAML and command line are the source of truth). Names Lightning resolves itself
        (``last``, ``best``, ``hpc``, ``registry``) and URLs are checked when the trainer loads them."""
        from alarm_pl.checkpointing import read_checkpoint

        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        check_checkpoint(ckpt_path, subcommand)
        if ckpt_path and os.path.isfile(ckpt_path):
            read_checkpoint(ckpt_path, map_location="cpu")

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument(
            "--export_dir",
            type=Optional[str],
            default=None,
            help="After fit: export the trained policy here with the module's export(): PPO writes "
            "the peft adapter (+ value head, tokenizer), SFT a full model (LoRA merged) that "
            "PPO loads as model.policy.model_name_or_path.",
        )
        parser.add_argument(
            "--export_merged",
            type=bool,
            default=False,
            help="PPO, with --export_dir: also write the merged full model under <export_dir>/merged "
            "(SFT exports are always merged).",
        )
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=False,
            help="After fit: run the test loop on the trained weights in the same process (the test "
            "generation file and test/* metrics), as `test --ckpt_path` would on the last "
            "checkpoint.",
        )

    # ------------------------------------------------------------------ what the terminal shows
    def before_instantiate_classes(self) -> None:
        if self.subcommand in ("validate", "test"):
            check_checkpoint(self.config[self.subcommand].get("ckpt_path"), self.subcommand)
            name_evaluation_run(self.config[self.subcommand], self.subcommand)

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        """The trainer, with the project's progress bar unless the configuration brings its own or disables it, and
        alarm_pl's checkpointing (``alarm_pl/checkpointing``): a ``RunCheckpoint`` unless the configuration names a
        checkpoint callback, and atomic, ``weights_only`` checkpoint files."""
        from alarm_pl.callbacks.progress import RunProgressBar, wants_default_progress_bar
        from alarm_pl.checkpointing import install_safe_checkpoint_io, with_run_checkpoint

        trainer_config = {**self._get(self.config_init, "trainer", default={})}
        if wants_default_progress_bar(trainer_config):
            defaults = self.trainer_defaults.get("callbacks") or []
            self.trainer_defaults = {
                **self.trainer_defaults,
                "callbacks": [*(defaults if isinstance(defaults, list) else [defaults]), RunProgressBar()],
            }
        trainer = super().instantiate_trainer(**with_run_checkpoint(trainer_config, kwargs))
        install_safe_checkpoint_io(trainer)
        return trainer

    def _start_command(self) -> None:
        quiet_eval_mode_warning(self.model)
        if self.subcommand in ("validate", "test"):
            quiet_checkpoint_dirpath_warning()
        self.output_tracker = OutputTracker.start(self.trainer, self.model)

    def before_fit(self) -> None:
        self._start_command()

    def before_validate(self) -> None:
        self._start_command()
        self._say_what_is_evaluated("validate")

    def before_test(self) -> None:
        self._start_command()
        self._say_what_is_evaluated("test")

    def _say_what_is_evaluated(self, subcommand: str) -> None:
        if not self.trainer.is_global_zero:
            return
        ckpt_path = self.config[subcommand].get("ckpt_path")
        if ckpt_path:
            print(f"{subcommand}: evaluating the checkpoint {ckpt_path}")
            return
        policy = self.config[subcommand].model.get("init_args", {}).get("policy")
        start = f" ({policy.model_name_or_path})" if policy is not None and "model_name_or_path" in policy else ""
        print(
            f"{subcommand}: no --ckpt_path given, so this evaluates the starting policy{start}, not a trained one; "
            f"pass --ckpt_path …/checkpoints/X.ckpt to evaluate a training run"
        )

    def print_summary(self, export_dir: Optional[str] = None) -> None:
        """Print the run directory and the files this command wrote (process 0 only)."""
        if not hasattr(self, "output_tracker"):
            return
        run_dir = self.trainer.log_dir or self.trainer.default_root_dir  # a broadcast under DDP: every process calls it
        if not self.trainer.is_global_zero:
            return
        print("\n".join(summary_lines(self.subcommand, run_dir, self.output_tracker.written(), export_dir)))


def build_cli(
    cli_class: type[LightningCLI], args: Optional[list[str]], run: bool, prog: str = "python -m alarm_pl"
) -> LightningCLI:
    """Parse ``args`` and build the module, data module and trainer with one of the project's CLIs (training, or
    calibration in ``alarm_pl/calibrate.py``): one parser setup for every command; ``prog`` names the command in
    usage and error messages."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from jsonargparse import set_parsing_settings

    from alarm_pl.cli_parser import ProjectArgumentParser, config_file_problem

    problem = config_file_problem(sys.argv[1:] if args is None else args)
    if problem:  # before jsonargparse, whose YAML error names neither the file nor the line
        sys.stderr.write(f"error: {problem}\n")
        raise SystemExit(2)
    quiet_library_noise()
    set_parsing_settings(docstring_parse_attribute_docstrings=True)  # dataclass field docstrings become --help
    return cli_class(
        pl.LightningModule,
        datamodule_class=None,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=args,
        run=run,
        auto_configure_optimizers=False,
        save_config_kwargs={"overwrite": True},
        parser_class=ProjectArgumentParser,
        parser_kwargs={"prog": prog},
    )


def cli_main(args: Optional[list[str]] = None, run: bool = True) -> ALaRMCLI:
    """Entry point; ``args`` lets tests run the CLI in-process. A run stopped by SIGTERM (after saving last.ckpt)
    exits with 143 (128 + SIGTERM), so that a scheduler sees it was interrupted, not finished. Ends with the summary of
    what was written."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    try:
        cli = build_cli(ALaRMCLI, args, run)
    except SIGTERMException:
        raise SystemExit(128 + signal.SIGTERM) from None
    export_dir = None
    if run and cli.subcommand == "fit":
        export_dir = cli.config["fit"].get("export_dir")
        if export_dir and cli.trainer.is_global_zero:
            cli.model.export(export_dir, merged=cli.config["fit"].get("export_merged", False))
        if cli.config["fit"].get("test_after_fit"):
            cli.trainer.test(cli.model, datamodule=cli.datamodule)
    if run:
        cli.print_summary(export_dir)
        release_process_group()
    return cli


def release_process_group() -> None:
    """Destroy torch.distributed's default process group once every process has reached this point (a no-op in a
    single process).

    Lightning destroys it at exit for NCCL only. A gloo group left to the interpreter's finalization can take its
    worker threads down with it: a DDP run on CPU that had finished and written its last checkpoint exited with
    SIGABRT ("terminate called without an active exception", exit code -6) in one of four full test-suite runs.
    The barrier keeps a fast process from tearing the group down while another still talks through it.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def main() -> None:
    """``python -m alarm_pl`` and the ``alarm-pl`` script: ``cli_main`` with library noise filtered and a failure
    reported as one message on the last line (``ALARM_PL_DEBUG=1`` for the traceback)."""
    run_command(cli_main)
