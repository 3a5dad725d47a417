"""``python -m alarm_pl.ablation --config CONFIG --strategies S... --seeds K... --out DIR [--parallel N]
[--sweep KEY=V1,V2 ...] [--judge.* ...] [-- OVERRIDES...]``

Trains every strategy (× every ``--sweep`` value) × seed from the same training configuration, each run a
subprocess ``python -m alarm_pl fit --config CONFIG OVERRIDES --model.reward.strategy S --seed_everything K
--test_after_fit true`` writing its logs, checkpoints and greedy test generations under ``DIR/runs/<system>/seed<K>``
(the test runs on the run's final weights, in the same process); tests the starting policy once
(``DIR/runs/start``); compares the systems seed by seed with the evaluation suite (win rates by the holistic reward,
every aspect metric, sentence chrF/BLEU against the reference, and the LLM judge with ``--judge.model``); and writes
``DIR/report.md``, ``DIR/results.json`` and plots: per system the mean and a Student-t confidence interval over seeds
of every test metric, pairwise win rates with their spread over seeds, the paper's Avg. column, and the sweep's cost.

Arguments after ``--`` go to every run (e.g. ``-- --trainer.max_steps 20``). An interrupted sweep resumes where it
stopped: rerun the same command; finished runs (``done.json`` markers) are reused, the others redone from scratch.
``--parallel N`` runs N processes at a time (each gets ``OMP_NUM_THREADS = cores // N`` unless it is set).
"""

from __future__ import annotations

import datetime
import logging
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from alarm_pl.ablation.plan import STRATEGIES, Run, command, parse_sweep, plan_runs, systems
from alarm_pl.ablation.runner import Outcome, SweepMismatch, run_all
from alarm_pl.eval.config import JudgeConfig

log = logging.getLogger("alarm_pl.ablation")


def build_parser() -> Any:
    """The command's parser (jsonargparse, like the training and eval CLIs: ``--help`` from these help texts and
    ``JudgeConfig``'s field docstrings, ``--print_config``)."""
    from jsonargparse import ArgumentParser, set_parsing_settings

    set_parsing_settings(docstring_parse_attribute_docstrings=True)
    parser = ArgumentParser(prog="python -m alarm_pl.ablation", description=__doc__.split("\n\n")[1])
    parser.add_argument("--config", type=str, required=True, help="the training configuration of every run")
    parser.add_argument(
        "--strategies",
        nargs="+",
        type=str,
        default=list(STRATEGIES),
        help=f"reward strategies to train (default: all of {list(STRATEGIES)})",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seed_everything of the runs")
    parser.add_argument("--out", type=str, required=True, help="the sweep's directory (created; reused to resume)")
    parser.add_argument("--parallel", type=int, default=1, help="runs at a time (subprocesses)")
    parser.add_argument(
        "--sweep",
        nargs="*",
        type=str,
        default=[],
        help="further swept keys, KEY=V1,V2 each (e.g. model.selection.mode=fixed,auto); every "
        "strategy is trained with every combination",
    )
    parser.add_argument("--baseline", type=bool, default=True, help="also test the starting policy (system 'start')")
    parser.add_argument("--confidence", type=float, default=0.95, help="coverage of the confidence intervals")
    parser.add_argument("--dry_run", type=bool, default=False, help="print the runs' command lines and stop")
    parser.add_argument("--log_level", type=str, default="INFO", help="logging level (DEBUG, INFO, WARNING)")
    parser.add_argument(
        "--judge", type=JudgeConfig, default=JudgeConfig(), help="the LLM judge (skipped without --judge.model)"
    )
    return parser


def split_overrides(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(the command's own arguments, the overrides after the first ``--`` that go to every run)."""
    argv = list(argv)
    if "--" not in argv:
        return argv, []
    cut = argv.index("--")
    return argv[:cut], argv[cut + 1 :]


def _judge(args: Any) -> JudgeConfig:
    judge = args.judge
    return judge if isinstance(judge, JudgeConfig) else JudgeConfig(**judge.as_dict())


def _commit() -> Optional[str]:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def _progress(outcome: Outcome, done: int, total: int) -> None:
    run = outcome.run
    if outcome.status == "failed":
        log.error("[%d/%d] %s failed: %s", done, total, run.name, outcome.error)
    else:
        log.info(
            "[%d/%d] %s %s (%.0f s)",
            done,
            total,
            run.name,
            "reused" if outcome.status == "reused" else "done",
            outcome.wall_s or 0.0,
        )


def cost(outcomes: Sequence[Outcome], wall_s: float, parallel: int) -> dict:
    """The sweep's cost: this invocation's wall time, and the finished runs' own wall and CPU seconds."""
    finished = [o for o in outcomes if o.status != "failed"]
    trained = [o.wall_s for o in finished if o.run.seed is not None and o.wall_s is not None]
    return {
        "wall_s": wall_s,
        "parallel": parallel,
        "cpus": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
        "ran": sum(o.status == "ran" for o in outcomes),
        "reused": sum(o.status == "reused" for o in outcomes),
        "failed": sum(o.status == "failed" for o in outcomes),
        "run_wall_s": sum(o.wall_s or 0.0 for o in finished),
        "run_cpu_s": sum(o.cpu_s or 0.0 for o in finished),
        "mean_run_wall_s": sum(trained) / len(trained) if trained else None,
        "runs": {o.run.name: {"status": o.status, "wall_s": o.wall_s, "cpu_s": o.cpu_s} for o in outcomes},
    }


def sweep(args: Any, extra: list[str], argv: Sequence[str]) -> int:
    """Plan, run, evaluate and report; returns the exit status (1 when a run failed)."""
    from alarm_pl.ablation.evaluate import evaluate
    from alarm_pl.ablation.report import write_report

    if not Path(args.config).is_file():
        raise FileNotFoundError(f"--config: file not found: {args.config}")
    out, sweeps = Path(args.out), [parse_sweep(text) for text in args.sweep]
    runs: list[Run] = plan_runs(args.strategies, args.seeds, sweeps, out, args.baseline)
    commands = {run.name: command(run, args.config, extra) for run in runs}
    if args.dry_run:
        print("\n".join(shlex.join(commands[run.name]) for run in runs))
        return 0
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    outcomes = run_all(runs, commands, args.parallel, _progress)
    names = [name for name, _ in systems(args.strategies, sweeps)]
    results = evaluate(outcomes, names, args.seeds, out, _judge(args), args.confidence)
    results["sweep"] = {
        "config": args.config,
        "command": "python -m alarm_pl.ablation " + shlex.join(argv),
        "overrides": extra,
        "strategies": list(args.strategies),
        "seeds": list(args.seeds),
        "sweeps": {s.key: list(s.values) for s in sweeps},
        "confidence": args.confidence,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "commit": _commit(),
    }
    results["cost"] = cost(outcomes, time.perf_counter() - start, args.parallel)
    write_report(results, out)
    log.info("wrote %s", out / "report.md")
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        log.error(
            "%d run(s) failed (%s); rerun the same command to retry them",
            len(failed),
            ", ".join(o.run.name for o in failed),
        )
    return 1 if failed else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; ``argv`` defaults to ``sys.argv[1:]`` (tests pass a list)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    own, extra = split_overrides(argv)
    args = build_parser().parse_args(own)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        return sweep(args, extra, argv)
    except (ValueError, FileNotFoundError, SweepMismatch) as err:
        log.error("%s", err)
        return 2
