"""Calibration: measure normalisation constants on a policy, so that no constant in a configuration is a bare literal.

``python -m alarm_pl.calibrate --config configs/X.yaml [--num_prompts 512] [--ckpt_path C] [--model.… overrides]``
builds the run exactly as ``python -m alarm_pl fit`` would (the same parser: ``--help``, ``--config``, dotted
overrides), samples the policy on training prompts with the configured rollout decoding, scores the responses with
the holistic scorer and every aspect scorer, and prints for each a ``FixedNormalizer`` YAML snippet preceded by a
comment giving its provenance (the command, the policy, the decoding, the number of values and the date). Values are
the raw ones, before any normaliser: the holistic scorer's oriented metric, and each aspect's placed values.
"""

from __future__ import annotations

import datetime
import sys
from typing import Optional

import torch
from lightning.pytorch.cli import LightningCLI
from torch import Tensor


def _yaml_float(x: float) -> str:
    """``x`` rounded to 4 significant digits, written so that YAML 1.1 loaders read a float (``1.0e-05``)."""
    text = repr(float(f"{x:.4g}"))
    if "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    return text


def calibration_snippet(name: str, values: Tensor, provenance: str, date: Optional[str] = None) -> str:
    """YAML for a ``FixedNormalizer`` fitted to ``values``, preceded by a comment saying where it comes from.

    Args:
        name: the scorer the constants are for (goes into the comment).
        values: (N,) observed values (e.g. raw UltraRM rewards of the SFT policy on 1,000 training prompts).
        provenance: tool and data, e.g. ``"UltraRM-13B 4-bit on Europarl es-en train[:1000], halfrot/sft-mt5-base
            greedy"``; newlines become further comment lines.
        date: ISO date of the measurement; today when None.

    Returns:
        A YAML fragment ``normalizer: {class_path: ..., init_args: {mean, std}}`` (sample std, both rounded to
        4 significant digits) with the comment on the lines before it.

    Raises:
        ValueError: when fewer than 2 finite values are given or they are all equal.
    """
    values = values.detach().double().flatten()
    values = values[torch.isfinite(values)]
    if values.numel() < 2 or values.std().item() == 0:
        raise ValueError(
            f"calibration_snippet({name!r}): need at least 2 finite, not all equal values (got {values.numel()})"
        )
    date = date or datetime.date.today().isoformat()
    comment = [f"# {name}: FixedNormalizer fitted on n={values.numel()} values, {date}"]
    comment += [f"# {line}" for line in provenance.strip().splitlines()]
    body = [
        "normalizer:",
        "  class_path: alarm_pl.rewards.normalize.FixedNormalizer",
        "  init_args:",
        f"    mean: {_yaml_float(values.mean().item())}",
        f"    std: {_yaml_float(values.std().item())}",
    ]
    return "\n".join(comment + body) + "\n"


def collect(module, dataloader, num_prompts: int) -> dict[str, Tensor]:
    """Raw values per scorer name over at least ``num_prompts`` sampled responses of ``module``'s policy.

    Returns:
        ``{scorer name: (N,) float}``: the holistic scorer's oriented metric (one per response), each aspect's
        placed values (any number per response).
    """
    module.policy.load()
    module.scoring.setup(module.device)
    module.eval()  # no dropout while generating
    values: dict[str, list[Tensor]] = {}
    seen = 0
    for batch in dataloader:
        _, scored = module.generate_and_score(batch, module.generation_config.do_sample)  # the rollout decoding
        for name, score in scored.scores.items():
            raw = score.oriented_metric if name == module.scoring.holistic_scorer.name else score.values[score.placed]
            values.setdefault(name, []).append(raw.detach().float().cpu())
        seen += len(batch)
        if seen >= num_prompts:
            break
    return {name: torch.cat(parts) for name, parts in values.items()}


class CalibrateCLI(LightningCLI):
    """The training command line (module, data and trainer from ``--config`` and overrides) plus the calibration
    options; nothing runs on parsing."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument(
            "--num_prompts",
            type=int,
            default=512,
            help="Training prompts to sample (at least this many: whole batches are scored).",
        )
        parser.add_argument(
            "--ckpt_path",
            type=Optional[str],
            default=None,
            help="Calibrate this checkpoint's policy instead of the starting one.",
        )


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point; ``argv`` defaults to ``sys.argv[1:]`` (tests pass a list). Prints the snippets to stdout."""
    from alarm_pl.cli import build_cli

    args = None if argv is None else list(argv)  # None: LightningCLI reads sys.argv (and does not warn about both)
    argv = list(sys.argv[1:] if argv is None else argv)
    cli = build_cli(CalibrateCLI, args, run=False, prog="python -m alarm_pl.calibrate")
    module, datamodule = cli.model, cli.datamodule
    num_prompts, ckpt_path = cli.config["num_prompts"], cli.config["ckpt_path"]
    if num_prompts < 2:
        raise SystemExit(f"--num_prompts must be >= 2 (a standard deviation needs two values), got {num_prompts}")
    if ckpt_path:
        from alarm_pl.checkpointing.io import read_checkpoint

        state = read_checkpoint(ckpt_path, map_location="cpu")  # weights_only; names the path when unreadable
        module.policy.load()
        module.load_state_dict(state["state_dict"], strict=False)
    datamodule.setup("fit")
    with torch.no_grad():
        values = collect(module, datamodule.train_dataloader(), num_prompts)
    decoding = module.generation_config
    provenance = (
        f"python -m alarm_pl.calibrate {' '.join(argv)}\n"
        f"policy {module.policy.config.model_name_or_path}, do_sample={decoding.do_sample}, "
        f"top_k={decoding.top_k}, top_p={decoding.top_p}, max_new_tokens={decoding.max_new_tokens}"
    )
    for name, tensor in values.items():
        try:
            print(calibration_snippet(name, tensor, provenance))
        except ValueError as err:
            print(f"# {name}: not calibrated ({err})\n")


if __name__ == "__main__":
    from alarm_pl.console import run_command

    run_command(main)
