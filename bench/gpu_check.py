"""GPU check: the paper's MT and QA configs at full size with dummy weights, a few rollouts each (bench/gpu_check.sh).

Each run is ``configs/<task>.yaml`` + ``configs/smoke/<task>_gpu.yaml`` (mT5-base / T5-large with LoRA in bf16,
UltraRM-13B quantized to 4-bit NF4 or 8-bit LLM.int8, the QA Longformers; all real architectures with seeded random
weights) for ``--rollouts`` PPO steps at the paper's batch sizes, one validation and one test pass. Recorded per run:
seconds per phase (the module's logged ``train/time/{generate,reference,score,update}``), model-loading seconds,
generated tokens/s, episodes/s, and peak GPU memory (``torch.cuda.max_memory_allocated`` / ``_reserved``).

Subcommands (the shell script runs them in this order, each in a fresh process so that peaks do not mix):
- ``prepare``: build and cache every dummy checkpoint the runs load (the 13B one is initialised on the GPU once), so
  that no run measures a build;
- ``run --run mt:4``: one measured run; writes ``<out>/<task>-<bits>bit.json``;
- ``report``: ``<out>/results.json`` and the markdown table for ``bench/README.md`` (``<out>/results.md``);
- ``plan``: print the exact command lines without running anything (works without CUDA).
Every subcommand but ``plan`` stops at once, with exit status 2, when no CUDA device is present.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "data" / "europarl"
PHASES = ("generate", "reference", "score", "update")
PAPER_BATCH = {"mt": 32, "qa": 8}
"""Prompts per rollout in the paper's configs (PAPER.md §2), used as they are."""
DEFAULT_RUNS = ("mt:4", "mt:8", "qa:4")
"""4-bit for both tasks; 8-bit for MT only, so that the whole check fits in 10 minutes on one GPU."""


def parse_run(spec: str) -> tuple[str, int]:
    """``"mt:4"`` → ``("mt", 4)``.

    Raises:
        ValueError: a task other than mt/qa or bits other than 4/8.
    """
    task, _, bits = spec.partition(":")
    if task not in PAPER_BATCH or bits not in ("4", "8"):
        raise ValueError(f"--run {spec!r}: expected <task>:<bits> with task mt or qa and bits 4 or 8, e.g. mt:4")
    return task, int(bits)


def europarl_pairs(count: int, fixture: Path = FIXTURE) -> list[tuple[str, str]]:
    """``count`` distinct (es, en) pairs of Europarl length from the 40-pair fixture: sentence i followed by sentence
    j (i ≠ j) in both languages, so that the real batch size and the split procedure have enough rows.

    Raises:
        ValueError: more pairs asked for than the fixture's 40 × 39 combinations.
    """
    es = (fixture / "europarl-v7.es-en.es").read_text(encoding="utf-8").splitlines()
    en = (fixture / "europarl-v7.es-en.en").read_text(encoding="utf-8").splitlines()
    combos = [(i, j) for i in range(len(es)) for j in range(len(es)) if i != j]
    if count > len(combos):
        raise ValueError(f"europarl_pairs: at most {len(combos)} distinct pairs from {fixture}, asked for {count}")
    step = len(combos) // count
    return [(f"{es[i]} {es[j]}", f"{en[i]} {en[j]}") for i, j in combos[::step][:count]]


def write_europarl(out_dir: Path, rollouts: int) -> tuple[Path, Path]:
    """Europarl-format files with enough training pairs for ``rollouts`` batches of the paper's size (the split keeps
    63 % for training) plus validation and test prompts."""
    pairs = europarl_pairs(int(PAPER_BATCH["mt"] * rollouts / 0.63) + 64)
    out_dir.mkdir(parents=True, exist_ok=True)
    es_file, en_file = out_dir / "europarl.es", out_dir / "europarl.en"
    es_file.write_text("".join(es + "\n" for es, _ in pairs), encoding="utf-8")
    en_file.write_text("".join(en + "\n" for _, en in pairs), encoding="utf-8")
    return es_file, en_file


def fit_args(
    task: str, bits: int, rollouts: int, out_dir: Path, mt_files: tuple[Path, Path] | None = None
) -> list[str]:
    """The CLI arguments (no subcommand) of one measured run: the paper config, its GPU overlay, the quantization,
    ``rollouts`` PPO steps with one validation at the end, evaluation on one batch, and a CSV log under ``out_dir``."""
    batch = PAPER_BATCH[task]
    args = [
        "--config",
        str(ROOT / "configs" / f"{task}.yaml"),
        "--config",
        str(ROOT / "configs" / "smoke" / f"{task}_gpu.yaml"),
        "--model.holistic.init_args.quantization_bits",
        str(bits),
        "--trainer.max_steps",
        str(rollouts),
        "--trainer.val_check_interval",
        str(rollouts),
        "--trainer.enable_checkpointing",
        "false",
        "--trainer.default_root_dir",
        str(out_dir),
        "--trainer.logger",
        "lightning.pytorch.loggers.CSVLogger",
        "--trainer.logger.init_args.save_dir",
        str(out_dir),
        "--trainer.logger.init_args.name",
        "logs",
        "--data.init_args.batch_size",
        str(batch),
        "--data.init_args.max_eval_prompts",
        str(batch),
        "--data.init_args.max_test_prompts",
        str(batch),
    ]
    if task == "mt":
        if mt_files is None:
            raise ValueError("fit_args: the MT run needs the Europarl-format files (write_europarl)")
        args += ["--data.init_args.es_file", str(mt_files[0]), "--data.init_args.en_file", str(mt_files[1])]
    return args


def dummy_references(task: str) -> list[tuple[str, str]]:
    """(reference, head) of every dummy model a run of ``task`` loads."""
    refs = [("dummy:mt5-base" if task == "mt" else "dummy:t5-large", "lm"), ("dummy:ultrarm-13b", "sequence")]
    if task == "qa":
        refs += [
            ("dummy:fgrlhf-factuality", "token"),
            ("dummy:fgrlhf-relevance", "token"),
            ("dummy:fgrlhf-completeness", "sequence"),
        ]
    return refs


def phase_summary(rows: list[dict], batch: int) -> dict:
    """Per-rollout means of the logged phase seconds and the throughput derived from them.

    Args:
        rows: the CSV logger's rows (dicts of strings); those carrying ``train/time/generate`` are rollouts.
        batch: prompts per rollout.

    Returns:
        ``{"rollouts", "phase_s": {phase: mean s}, "rollout_s", "generated_tokens_per_s", "episodes_per_s",
        "phase_tokens_per_s": {phase: response tokens ÷ that phase's seconds}, "phase_share": {phase: its fraction
        of the rollout}}``. The rollout here is the sum of the four phases (the logged timers).
    """
    rollouts = [r for r in rows if r.get("train/time/generate")]
    if not rollouts:
        raise ValueError("phase_summary: no logged rollout (no train/time/generate in the metrics)")
    mean = {p: sum(float(r[f"train/time/{p}"]) for r in rollouts) / len(rollouts) for p in PHASES}
    tokens = sum(float(r["train/response_length"]) * batch for r in rollouts)
    rollout_s = sum(mean.values())
    per_phase = {p: tokens / (seconds * len(rollouts)) if seconds else float("inf") for p, seconds in mean.items()}
    return {
        "rollouts": len(rollouts),
        "phase_s": mean,
        "rollout_s": rollout_s,
        "generated_tokens_per_s": per_phase["generate"],
        "episodes_per_s": batch / rollout_s,
        "phase_tokens_per_s": per_phase,
        "phase_share": {p: s / rollout_s for p, s in mean.items()},
    }


def require_cuda() -> None:
    """Exit with status 2 and a plain message when no CUDA device is present."""
    import torch

    if not torch.cuda.is_available():
        print(
            "bench/gpu_check.py: no CUDA device on this machine (torch.cuda.is_available() is False); this check "
            "runs the paper's configs at full size and only makes sense on a GPU. Nothing was run. Use "
            "`python bench/gpu_check.py plan` to see the commands, or configs/smoke/*_cpu.yaml on a CPU.",
            file=sys.stderr,
        )
        sys.exit(2)


def prepare(out: Path) -> None:
    """Build every dummy checkpoint once (cached under $ALARM_PL_CACHE), timing each build."""
    from alarm_pl.models.loading import resolve_model_reference

    builds = {}
    for task in PAPER_BATCH:
        for reference, head in dummy_references(task):
            start = time.perf_counter()
            path = resolve_model_reference(reference, f"gpu_check {task}", head)
            builds[f"{reference} ({head})"] = {"path": path, "seconds": round(time.perf_counter() - start, 1)}
            print(f"{reference} ({head}): {path} in {builds[f'{reference} ({head})']['seconds']} s", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "prepare.json").write_text(json.dumps(builds, indent=2) + "\n")


def measure(task: str, bits: int, rollouts: int, out: Path) -> dict:
    """One run in this process: fit (``rollouts`` rollouts + a validation) and a test pass; the numbers of the
    module docstring, written to ``<out>/<task>-<bits>bit.json``."""
    import lightning.pytorch as pl
    import torch

    from alarm_pl.cli import cli_main

    run_dir = out / f"{task}-{bits}bit"
    files = write_europarl(run_dir / "data", rollouts) if task == "mt" else None
    stamps: dict[str, float] = {}

    class Stopwatch(pl.Callback):
        def on_fit_start(self, trainer, module):  # after module.setup: every model is loaded
            stamps["loaded"] = time.perf_counter()

    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    cli = cli_main(fit_args(task, bits, rollouts, run_dir, files), run=False)
    cli.trainer.callbacks.append(Stopwatch())
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    fitted = time.perf_counter()
    cli.trainer.test(cli.model, datamodule=cli.datamodule)
    rows = list(csv.DictReader(open(Path(cli.trainer.logger.log_dir) / "metrics.csv")))
    result = {
        "task": task,
        "bits": bits,
        "batch": PAPER_BATCH[task],
        "device": torch.cuda.get_device_name(),
        "load_s": stamps["loaded"] - start,
        "fit_s": fitted - start,
        "test_s": time.perf_counter() - fitted,
        **phase_summary(rows, PAPER_BATCH[task]),
        "peak_allocated_gib": torch.cuda.max_memory_allocated() / 2**30,
        "peak_reserved_gib": torch.cuda.max_memory_reserved() / 2**30,
        "versions": {"torch": torch.__version__, "cuda": torch.version.cuda},
    }
    (out / f"{task}-{bits}bit.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def markdown_table(results: list[dict]) -> str:
    """The README table: one row per run."""
    head = (
        "| run | device | load s | generate s | reference s | score s | update s | generated tok/s | "
        "episodes/s | peak alloc GiB | peak reserved GiB |\n|" + " --- |" * 11
    )
    rows = [
        f"| {r['task']} {r['bits']}-bit, batch {r['batch']} | {r['device']} | {r['load_s']:.0f} | "
        + " | ".join(f"{r['phase_s'][p]:.2f}" for p in PHASES)
        + f" | {r['generated_tokens_per_s']:.0f} | {r['episodes_per_s']:.2f} | {r['peak_allocated_gib']:.1f} | "
        f"{r['peak_reserved_gib']:.1f} |"
        for r in results
    ]
    by_phase = [
        "",
        "Response tokens/s of each phase (response tokens ÷ the phase's seconds) and its share of the rollout:",
        "",
        "| run | " + " | ".join(PHASES) + " |",
        "|" + " --- |" * (len(PHASES) + 1),
    ]
    by_phase += [
        f"| {r['task']} {r['bits']}-bit | "
        + " | ".join(f"{r['phase_tokens_per_s'][p]:.0f} ({100 * r['phase_share'][p]:.0f} %)" for p in PHASES)
        + " |"
        for r in results
        if "phase_tokens_per_s" in r
    ]
    return "\n".join([head, *rows, *by_phase]) + "\n"


def report(out: Path) -> str:
    """Collect the runs' JSON files into results.json and results.md; returns the markdown."""
    results = [json.loads(p.read_text()) for p in sorted(out.glob("*bit.json"))]
    if not results:
        raise SystemExit(f"bench/gpu_check.py report: no run results in {out} (run the `run` subcommand first)")
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown_table(results)
    (out / "results.md").write_text(table)
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["prepare", "run", "report", "plan"])
    parser.add_argument("--run", action="append", help="<task>:<bits>, repeatable (default: mt:4 mt:8 qa:4)")
    parser.add_argument("--rollouts", type=int, default=3, help="PPO steps per run (default 3)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "gpu_check", help="results directory")
    args = parser.parse_args(argv)
    runs = [parse_run(spec) for spec in (args.run or DEFAULT_RUNS)]
    if args.rollouts < 1:
        parser.error("--rollouts must be at least 1")
    if args.command == "plan":
        for task, bits in runs:
            files = (
                args.out / f"{task}-{bits}bit" / "data" / "europarl.es",
                args.out / f"{task}-{bits}bit" / "data" / "europarl.en",
            )
            print(
                "python -m alarm_pl fit "
                + " ".join(fit_args(task, bits, args.rollouts, args.out / f"{task}-{bits}bit", files))
            )
        return
    if args.command == "report":
        print(report(args.out), end="")
        return
    require_cuda()
    if args.command == "prepare":
        prepare(args.out)
    else:
        for task, bits in runs:
            print(json.dumps(measure(task, bits, args.rollouts, args.out), indent=2), flush=True)


if __name__ == "__main__":
    main()
