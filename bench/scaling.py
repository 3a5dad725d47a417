"""Cost as the work grows: rollout seconds and peak memory of alarm_pl and trl 1.12 on the causal benchmark spec
(``configs/bench_causal.yaml``) for a batch sweep at 32 new tokens and a response-length sweep at 16 prompts, each
point a fresh process of ``bench_alarm.py`` / ``bench_trl.py``; then a table with the fitted growth and a plot.

    python bench/scaling.py run    --out runs/scaling          # runs the grid (resumable: finished points are kept)
    python bench/scaling.py report --out runs/scaling          # runs/scaling/scaling.{md,png}

Growth is fitted as the exponent k of ``seconds ∝ x^k`` (least squares on log-log) over the sweep and between its
last two points (the marginal exponent, free of fixed per-rollout costs): k ≈ 1 is linear, k > 1 worse than linear.
Length stops at 240 because the tiny models have 256 positions and the TinyMT prompts take up to 15 tokens.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
from compare import load_summary  # noqa: E402

BATCHES, LENGTHS, BASE_BATCH, BASE_LENGTH = (8, 16, 32, 64), (32, 64, 128, 240), 16, 32
TRAINERS = ("alarm_pl", "trl")


def grid(batches, lengths) -> list[tuple[int, int]]:
    """(batch, response length) points: the batch sweep at ``BASE_LENGTH`` and the length sweep at ``BASE_BATCH``."""
    points = [(b, BASE_LENGTH) for b in batches] + [(BASE_BATCH, n) for n in lengths]
    return sorted(set(points), key=lambda p: (p[0] * p[1], p))


def command(trainer: str, batch: int, length: int, args) -> list[str]:
    """The command line measuring one point."""
    common = ["--rollouts", str(args.rollouts), "--warmup", str(args.warmup), "--threads", str(args.threads)]
    if trainer == "trl":
        return [
            f"{args.trl_venv}/bin/python",
            str(BENCH_DIR / "bench_trl.py"),
            *common,
            "--batch",
            str(batch),
            "--response-length",
            str(length),
        ]
    return [
        sys.executable,
        str(BENCH_DIR / "bench_alarm.py"),
        "--config",
        "configs/bench_causal.yaml",
        *common,
        "--",
        "--data.init_args.batch_size",
        str(batch),
        "--model.holistic.init_args.batch_size",
        str(batch),
        "--model.generation.min_new_tokens",
        str(length),
        "--model.generation.max_new_tokens",
        str(length),
    ]


def run(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "TRL_EXPERIMENTAL_SILENCE": "1"}
    for batch, length in grid(args.batches, args.lengths):
        for trainer in args.trainers:
            log = out / f"{trainer}-b{batch}-n{length}.log"
            if log.exists() and "BENCH_JSON" in log.read_text():
                continue
            print(f"== {trainer} batch {batch} length {length} → {log}", flush=True)
            tmp = log.with_suffix(".tmp")
            with tmp.open("w") as handle:
                code = subprocess.call(
                    command(trainer, batch, length, args),
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=BENCH_DIR.parent,
                )
            if code:
                sys.exit(f"{trainer} batch {batch} length {length} failed (exit {code}); see {tmp}")
            tmp.replace(log)


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares exponent k of ys ∝ xs^k (NaN with fewer than two points)."""
    if len(xs) < 2:
        return float("nan")
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def load(out: Path) -> dict[tuple[str, int, int], dict]:
    results = {}
    for log in sorted(out.glob("*-b*-n*.log")):
        trainer, b, n = log.stem.rsplit("-", 2)
        results[trainer, int(b[1:]), int(n[1:])] = load_summary(str(log))
    return results


def sweep_rows(results: dict, trainer: str, axis: str) -> list[tuple[int, dict]]:
    """(x, summary) of one trainer along ``axis`` ('batch' or 'length'), sorted by x."""
    rows = [
        (b if axis == "batch" else n, s)
        for (t, b, n), s in results.items()
        if t == trainer and (n == BASE_LENGTH if axis == "batch" else b == BASE_BATCH)
    ]
    return sorted(rows, key=lambda r: r[0])


def report(args) -> None:
    out = Path(args.out)
    results = load(out)
    if not results:
        sys.exit(f"{out}: no finished points; run `python bench/scaling.py run --out {out}` first")
    lines = [
        "| trainer | batch | length | wall s/rollout | CPU s/rollout | generate | reference | score | update | "
        "CPU s per 1k resp. tokens | peak RSS MiB |",
        "|" + " --- |" * 11,
    ]
    for (trainer, b, n), s in sorted(results.items(), key=lambda kv: (kv[0][0], kv[0][1] * kv[0][2], kv[0])):
        mean, cpu = s["phase_mean_s"], s.get("phase_cpu_mean_s", {})
        phases = " | ".join(f"{cpu.get(p, float('nan')):.3f}" for p in ("generate", "reference", "score", "update"))
        lines.append(
            f"| {trainer} | {b} | {n} | {mean['total']:.3f} | {cpu.get('total', float('nan')):.3f} | "
            f"{phases} | {1000 * cpu.get('total', float('nan')) / (b * n):.3f} | {s['peak_rss_mib']:.0f} |"
        )
    lines += [
        "",
        "Fitted exponent k of CPU seconds per rollout ∝ x^k (all points; last two points), and of the "
        "peak-RSS growth over the smallest point:",
        "",
        "| trainer | sweep | k (CPU s) | k marginal | k (wall s) | RSS growth MiB |",
        "|" + " --- |" * 6,
    ]
    for trainer in sorted({t for t, _, _ in results}):
        for axis in ("batch", "length"):
            rows = sweep_rows(results, trainer, axis)
            xs = [x for x, _ in rows]
            cpu = [s["phase_cpu_mean_s"]["total"] for _, s in rows]
            wall = [s["phase_mean_s"]["total"] for _, s in rows]
            rss = [s["peak_rss_mib"] for _, s in rows]
            lines.append(
                f"| {trainer} | {axis} {xs[0]}→{xs[-1]} | {slope(xs, cpu):.2f} | {slope(xs[-2:], cpu[-2:]):.2f} "
                f"| {slope(xs, wall):.2f} | {rss[-1] - rss[0]:+.0f} |"
            )
    loads = sorted(s["loadavg"][0] for s in results.values() if s.get("loadavg"))
    lines += ["", f"Load average (1 min) during the points: {loads[0]:.1f}–{loads[-1]:.1f}." if loads else ""]
    (out / "scaling.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(results, out / "scaling.png")


def plot(results: dict, path: Path) -> None:
    """Log-log CPU seconds per rollout and peak RSS against batch and length, one line per trainer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for column, axis in enumerate(("batch", "length")):
        for trainer in sorted({t for t, _, _ in results}):
            rows = sweep_rows(results, trainer, axis)
            xs = [x for x, _ in rows]
            axes[0][column].loglog(xs, [s["phase_cpu_mean_s"]["total"] for _, s in rows], "o-", label=trainer)
            axes[1][column].semilogx(xs, [s["peak_rss_mib"] for _, s in rows], "o-", label=trainer)
            for row in axes:  # plain tick labels at the measured points
                row[column].set_xticks(xs, [str(x) for x in xs], minor=False)
                row[column].xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        fixed = f"length {BASE_LENGTH}" if axis == "batch" else f"batch {BASE_BATCH}"
        axes[0][column].set(title=f"CPU s per rollout vs {axis} ({fixed})", xlabel=axis, ylabel="CPU s")
        axes[1][column].set(title=f"peak RSS vs {axis}", xlabel=axis, ylabel="MiB")
        for row in axes:
            row[column].legend()
            row[column].grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("run", "report"))
    parser.add_argument("--out", default="runs/scaling", help="directory of the per-point logs (default: %(default)s)")
    parser.add_argument("--batches", type=int, nargs="+", default=list(BATCHES))
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
    parser.add_argument("--trainers", nargs="+", choices=TRAINERS, default=list(TRAINERS))
    parser.add_argument("--rollouts", type=int, default=3, help="measured rollouts per point (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up rollouts per point (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--trl-venv", default=".venv-trl", help="trl 1.12's venv (bench/setup_trl_venv.sh)")
    args = parser.parse_args(argv)
    bad = [n for n in args.lengths if n > 240] + [b for b in args.batches if b % 2]
    if bad:
        parser.error(f"lengths must be <= 240 (256 positions less the 15-token prompts) and batches even; got {bad}")
    run(args) if args.action == "run" else report(args)


if __name__ == "__main__":
    main()
