"""Measure normalisation constants on the current policy, so that no constant is a bare literal.

``python tools/calibrate.py --config configs/X.yaml [--ckpt_path C] [--num_prompts 512]`` samples the policy on
training prompts with the configured rollout decoding, scores the responses with the holistic scorer and every
aspect scorer, and prints for each a ``FixedNormalizer`` YAML snippet with its provenance (config, checkpoint,
prompts, decoding, date). Values are the raw ones, before any normaliser: the holistic scorer's oriented metric, and
each aspect's placed values.
"""

from __future__ import annotations

import argparse
from typing import Optional

import torch

from alarm_pl.rewards.normalize import calibration_snippet


def collect(module, dataloader, num_prompts: int) -> dict[str, torch.Tensor]:
    """Raw values per scorer name over at least ``num_prompts`` sampled responses."""
    module.policy.load()
    module.scoring.setup(module.device)
    values: dict[str, list[torch.Tensor]] = {}
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


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the training configuration")
    parser.add_argument("--ckpt_path", default=None, help="calibrate this checkpoint's policy instead of the start")
    parser.add_argument("--num_prompts", type=int, default=512, help="training prompts to sample")
    args, overrides = parser.parse_known_args(argv)
    from alarm_pl.cli import cli_main

    cli = cli_main(["--config", args.config, *overrides], run=False)
    module, datamodule = cli.model, cli.datamodule
    if args.ckpt_path:
        state = torch.load(args.ckpt_path, map_location="cpu", weights_only=False)
        module.policy.load()
        module.load_state_dict(state["state_dict"], strict=False)
    datamodule.setup("fit")
    with torch.no_grad():
        values = collect(module, datamodule.train_dataloader(), args.num_prompts)
    decoding = module.generation_config
    provenance = (f"tools/calibrate.py --config {args.config} --num_prompts {args.num_prompts}"
                  f"{' --ckpt_path ' + args.ckpt_path if args.ckpt_path else ''}\n"
                  f"policy {module.policy.config.model_name_or_path}, do_sample={decoding.do_sample}, "
                  f"top_k={decoding.top_k}, top_p={decoding.top_p}, max_new_tokens={decoding.max_new_tokens}")
    for name, tensor in values.items():
        try:
            print(calibration_snippet(name, tensor, provenance))
        except ValueError as err:
            print(f"# {name}: not calibrated ({err})\n")
