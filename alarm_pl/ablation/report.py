"""The sweep's report: ``results.json`` for programs, ``report.md`` for people, and plots (test metrics with their
intervals, mean win-rate heat maps), all written atomically."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Optional, Sequence

from alarm_pl.ablation.plan import START
from alarm_pl.ablation.stats import Interval
from alarm_pl.eval.records import write_bytes_atomic, write_text_atomic

STATISTICS = (
    "Every 'mean [low, high]' is the mean over seeds with a two-sided {c:.0f} % Student-t confidence interval "
    "(mean ± t(n−1) · s/√n, s the sample standard deviation), the seeds treated as independent runs. A win "
    "rate is computed per seed on that seed's test prompts (wins / (wins + losses), ties excluded) and then "
    "aggregated over the seeds the same way, its interval clipped to [0, 100] %; '± sd' is the standard "
    "deviation of the per-seed win rates. "
    "Avg. is the mean win rate against the other strategies (the paper's column; the starting policy is "
    "left out of it)."
)


def to_json(obj: Any) -> Any:
    """``obj`` with intervals, dataclasses and paths made JSON-able."""
    if isinstance(obj, Interval):
        return obj.to_json()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_json(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _num(value: Optional[float], scale: float = 1.0, digits: int = 2) -> str:
    return "–" if value is None else f"{scale * value:.{digits}f}"


def interval_cell(interval: Interval, scale: float = 1.0) -> str:
    """``mean [low, high]``, or the mean alone for one value."""
    if interval.mean is None:
        return "–"
    if interval.low is None:
        return _num(interval.mean, scale)
    return f"{_num(interval.mean, scale)} [{_num(interval.low, scale)}, {_num(interval.high, scale)}]"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    line = lambda cells: "| " + " | ".join(cells) + " |"  # noqa: E731
    return [line(header), line(["---"] * len(header)), *(line(r) for r in rows)]


def metric_names(results: dict) -> list[str]:
    """Every test metric, in a fixed order: chrF, BLEU, H, the aspects, length, degenerate share."""
    names = dict.fromkeys(n for system in results["metrics"].values() for n in system)
    head = [n for n in ("chrf", "bleu", "holistic") if n in names]
    tail = [n for n in ("length", "degenerate") if n in names]
    return head + [n for n in names if n not in head and n not in tail] + tail


def metrics_section(results: dict) -> list[str]:
    names = metric_names(results)
    rows = [
        [
            s,
            str(max((i.n for i in results["metrics"][s].values()), default=0)),
            *(interval_cell(results["metrics"][s][n]) if n in results["metrics"][s] else "–" for n in names),
        ]
        for s in results["systems"]
    ]
    return [
        "## Test metrics",
        "",
        "Greedy test generations. chrf/bleu: sacrebleu corpus scores against the references; "
        "holistic: mean H (the normalised holistic reward); aspect/*: mean per-response metric (sentence_chrf and "
        "sentence_bleu: sentence-level scores against the reference); length: response tokens; degenerate: share "
        f"of empty responses. `{START}`: the starting policy, tested once.",
        "",
        *_table(["system", "seeds", *names], rows),
        "",
    ]


def win_rate_table(table: dict, systems: Sequence[str]) -> list[str]:
    """Rows: systems; cells: mean ± sd of the per-seed win rate (%) against the column system; Avg. with its CI."""
    rows = []
    for a in systems:
        cells = []
        for b in systems:
            interval = table["pairs"][a][b] if b != a else None
            cells.append(
                "–"
                if interval is None or interval.mean is None
                else _num(interval.mean, 100, 1) + ("" if interval.sd is None else f" ± {100 * interval.sd:.1f}")
            )
        rows.append([a, *cells, interval_cell(table["avg"][a], 100)])
    return _table(["system", *(f"vs {b}" for b in systems), "Avg. [CI]"], rows)


def win_rates_section(results: dict) -> list[str]:
    lines = ["## Win rates (%)", "", f"Seeds compared: {results['compared_seeds']}.", ""]
    for metric, table in results["win_rates"].items():
        direction = "higher" if table["higher_is_better"] else "lower"
        lines += [f"### by {metric} ({direction} is better)", "", *win_rate_table(table, results["systems"]), ""]
    judge = results.get("judge")
    if judge:
        lines += [f"### by LLM judge `{judge['model']}`", ""]
        lines += win_rate_table(judge, results["systems"]) if "pairs" in judge else ["No judgment came back."]
        lines += ["", *(f"- {e}" for e in judge["errors"]), ""]
    return lines


def active_aspects_cell(system: str, aspects: Sequence[str]) -> str:
    """The runs table's aspect cell: the aspects selected at the end, marked unused under ``holistic_only`` (its
    reward ignores them even though the selection ran)."""
    if not aspects:
        return "–"
    text = ", ".join(aspects)
    return f"({text}; unused)" if system.split(",")[0] == "holistic_only" else text


def runs_section(results: dict) -> list[str]:
    rows = []
    for run in results["runs"]:
        m, t = run.get("metrics", {}), run.get("train", {})
        rows.append(
            [
                run["system"],
                "–" if run["seed"] is None else str(run["seed"]),
                run["status"],
                _num(run["wall_s"], digits=0),
                _num(run["cpu_s"], digits=0),
                _num(m.get("chrf")),
                _num(m.get("bleu")),
                _num(m.get("holistic"), digits=3),
                _num(m.get("length"), digits=1),
                _num(t.get("kl")),
                active_aspects_cell(run["system"], t.get("active_aspects", [])),
            ]
        )
    failed = [f"- `{r['system']}` seed {r['seed']}: {r['error']}" for r in results["runs"] if r["status"] == "failed"]
    return [
        "## Runs",
        "",
        *_table(
            [
                "system",
                "seed",
                "status",
                "wall s",
                "CPU s",
                "chrF",
                "BLEU",
                "H",
                "length",
                "final KL",
                "active aspects",
            ],
            rows,
        ),
        "",
        *failed,
        "",
    ]


def cost_section(cost: dict) -> list[str]:
    return [
        "## Cost",
        "",
        f"This invocation: {cost['wall_s']:.0f} s wall for {cost['ran']} run(s) ({cost['reused']} "
        f"reused, {cost['failed']} failed), {cost['parallel']} at a time on {cost['cpus']} CPU core(s) "
        f"(OMP_NUM_THREADS={cost['omp_num_threads']}). Over all finished runs: {cost['run_wall_s']:.0f} s of run "
        f"wall time and {cost['run_cpu_s']:.0f} s of CPU (user + system); per trained run "
        f"{_num(cost['mean_run_wall_s'], digits=0)} s wall on average.",
        "",
    ]


def render_markdown(results: dict) -> str:
    sweep = results["sweep"]
    lines = [
        f"# Ablation of `{sweep['config']}`",
        "",
        f"Command: `{sweep['command']}`",
        "",
        f"Date {sweep['date']}, commit {sweep['commit'] or 'unknown'}. Systems: "
        + ", ".join(f"`{s}`" for s in results["systems"])
        + f"; seeds {sweep['seeds']}; overrides of every run: "
        f"`{' '.join(sweep['overrides']) or '(none)'}`.",
        "",
        STATISTICS.format(c=100 * sweep["confidence"]),
        "",
        *metrics_section(results),
        *win_rates_section(results),
        *runs_section(results),
        *cost_section(results["cost"]),
        "## Per-seed comparisons",
        "",
        *(f"- seed {s}: [compare/seed{s}/report.md](compare/seed{s}/report.md)" for s in results["compared_seeds"]),
        "",
    ]
    return "\n".join(lines)


def plot_metrics(path: Path, results: dict) -> None:
    """One panel per test metric: each system's mean with its confidence interval as an error bar."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names, systems = metric_names(results), results["systems"]
    columns = min(4, max(1, len(names)))
    rows = math.ceil(len(names) / columns)
    figure = Figure(figsize=(3.2 * columns, 2.8 * rows))
    for index, name in enumerate(names):
        axes = figure.add_subplot(rows, columns, index + 1)
        intervals = [results["metrics"][s].get(name) for s in systems]
        means = [i.mean if i and i.mean is not None else math.nan for i in intervals]
        errors = [
            [m - i.low if i and i.low is not None else 0 for m, i in zip(means, intervals)],
            [i.high - m if i and i.high is not None else 0 for m, i in zip(means, intervals)],
        ]
        axes.bar(range(len(systems)), means, yerr=errors, capsize=3, color="tab:blue")
        axes.set_xticks(range(len(systems)), labels=systems, rotation=40, ha="right", fontsize=7)
        axes.set_title(name, fontsize=9)
    figure.tight_layout()
    FigureCanvasAgg(figure)
    write_bytes_atomic(path, lambda handle: figure.savefig(handle, format="png", dpi=110))


def write_report(results: dict, out: Path) -> None:
    """``results.json``, ``report.md``, ``metrics.png`` and one mean win-rate heat map per metric."""
    from alarm_pl.eval.plots import plot_file_name, plot_win_rates

    write_text_atomic(out / "results.json", json.dumps(to_json(results), indent=2, ensure_ascii=False) + "\n")
    write_text_atomic(out / "report.md", render_markdown(results))
    if not results["metrics"]:
        return
    plot_metrics(out / "metrics.png", results)
    tables = dict(results["win_rates"])
    if results.get("judge") and "pairs" in results["judge"]:
        tables["judge"] = {**results["judge"], "higher_is_better": True}
    for metric, table in tables.items():
        pairs = {a: {b: {"win_rate": table["pairs"][a][b].mean} for b in table["pairs"][a]} for a in table["pairs"]}
        direction = "higher" if table["higher_is_better"] else "lower"
        plot_win_rates(
            out / plot_file_name(metric),
            f"mean win rate by {metric} ({direction} is better)",
            results["systems"],
            pairs,
        )
