"""The comparison's results: computed into one JSON-able dict (``results.json``), rendered as Markdown (``report.md``).

Layout of the results dict:
``systems``, ``files``, ``prompts`` (number compared), ``missing`` (system -> number of prompts it lacks),
``means`` (system -> metric -> mean over the compared prompts), ``mt`` (system -> BLEU/chrF, or None),
``win_rates`` (metric -> {higher_is_better, pairs: a -> b -> {win, lose, tie, win_rate}, avg: a -> rate}),
``consistency`` (metric -> {inconsistent, decisive, inconsistency}), ``judge`` (None when skipped).
Win rates are fractions in JSON and percentages in Markdown.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping, Optional, Sequence

from alarm_pl.eval.config import JudgeConfig
from alarm_pl.eval.judge import JudgeResult
from alarm_pl.eval.plots import CONSISTENCY_PLOT, plot_file_name
from alarm_pl.eval.winrate import (
    HOLISTIC,
    LENGTH,
    Alignment,
    PairCounts,
    aspect_directions,
    average_win_rates,
    inconsistency,
    pairwise_counts,
)


def table_json(systems: Sequence[str], counts: Mapping[tuple[str, str], PairCounts]) -> dict:
    """``{pairs: a -> b -> counts, avg: a -> mean win rate}`` for every ordered pair."""
    return {
        "pairs": {a: {b: counts[(a, b)].to_json() for b in systems if b != a} for a in systems},
        "avg": average_win_rates(systems, counts),
    }


def _mean(values: Sequence[float]) -> Optional[float]:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else None


def mt_scores(alignment: Alignment) -> Optional[dict[str, dict]]:
    """Corpus BLEU and chrF of each system on the compared prompts that have a reference (None when none has).

    Returns:
        system -> ``{"bleu": float, "chrf": float, "n": int}``.
    """
    with_reference = [
        p for p in alignment.prompts if all(alignment.records[s][p].reference is not None for s in alignment.systems)
    ]
    if not with_reference:
        return None
    import sacrebleu  # lazy: only MT comparisons need it

    first = alignment.records[alignment.systems[0]]
    references = [[first[p].reference for p in with_reference]]
    scores = {}
    for system in alignment.systems:
        hypotheses = [alignment.records[system][p].generation for p in with_reference]
        scores[system] = {
            "bleu": sacrebleu.corpus_bleu(hypotheses, references).score,
            "chrf": sacrebleu.corpus_chrf(hypotheses, references).score,
            "n": len(with_reference),
        }
    return scores


def reward_results(alignment: Alignment, lower_is_better: Sequence[str] = ()) -> dict:
    """Everything computed from the generation files alone (no judge); see the module docstring."""
    directions = {HOLISTIC: True, **aspect_directions(alignment, lower_is_better)}
    systems = list(alignment.systems)
    values = {metric: alignment.values(metric) for metric in [*directions, LENGTH]}
    win_rates = {
        metric: {"higher_is_better": higher, **table_json(systems, pairwise_counts(values[metric], higher))}
        for metric, higher in directions.items()
    }
    consistency = {
        metric: {"higher_is_better": higher, **inconsistency(values[HOLISTIC], values[metric], higher).to_json()}
        for metric, higher in [*list(directions.items())[1:], (LENGTH, True)]
    }
    means = {s: {metric: _mean(values[metric][s]) for metric in values} for s in systems}
    return {
        "systems": systems,
        "prompts": len(alignment.prompts),
        "missing": {s: len(p) for s, p in alignment.missing.items()},
        "means": means,
        "mt": mt_scores(alignment),
        "win_rates": win_rates,
        "consistency": consistency,
        "judge": None,
    }


def judge_results(
    result: JudgeResult, config: JudgeConfig, endpoint: str, template_hash: str, systems: Sequence[str]
) -> dict:
    """The judge part of the results (settings hold the key's variable name, never the key)."""
    usage = result.usage
    return {
        "model": config.model,
        "endpoint": endpoint,
        "template_hash": template_hash,
        "settings": config.public(),
        "prompts": len(result.prompts),
        **table_json(systems, result.counts),
        "tie_reasons": {a: {b: result.tie_reasons[(a, b)] for b in systems if b != a} for a in systems},
        "usage": {
            **dataclasses.asdict(usage),
            "cost_usd_this_run": usage.cost(config),
            "cost_usd_cached": usage.cost(config, cached=True),
        },
        "errors": list(result.errors),
    }


def _percent(rate: Optional[float]) -> str:
    return "–" if rate is None else f"{100 * rate:.2f}"


def _number(value: Optional[float]) -> str:
    return "–" if value is None else f"{value:.4g}"


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [_row(header), _row(["---"] * len(header)), *(_row(r) for r in rows)]


def win_rate_markdown(systems: Sequence[str], table: dict) -> list[str]:
    """Rows = systems, columns = win rate (%) against each other system and Avg.; the best Avg. in bold."""
    best = _percent(max((v for v in table["avg"].values() if v is not None), default=None))
    rows = []
    for a in systems:
        cells = ["–" if b == a else _percent(table["pairs"][a][b]["win_rate"]) for b in systems]
        avg = _percent(table["avg"][a])
        rows.append([a, *cells, f"**{avg}**" if avg == best != "–" else avg])
    return _markdown_table(["system", *(f"vs {b}" for b in systems), "Avg."], rows)


def _direction(higher: bool) -> str:
    return "higher is better" if higher else "lower is better"


def _means_section(results: dict) -> list[str]:
    metrics = list(next(iter(results["means"].values())))
    header = ["system", *metrics] + (["BLEU", "chrF"] if results["mt"] else [])
    rows = [
        [s, *(_number(results["means"][s][m]) for m in metrics)]
        + ([f"{results['mt'][s]['bleu']:.2f}", f"{results['mt'][s]['chrf']:.2f}"] if results["mt"] else [])
        for s in results["systems"]
    ]
    note = (
        f" BLEU and chrF: sacrebleu corpus scores on {next(iter(results['mt'].values()))['n']} references."
        if results["mt"]
        else ""
    )
    return [
        "## Means",
        "",
        f"Means over the {results['prompts']} compared prompts.{note}",
        "",
        *_markdown_table(header, rows),
        "",
    ]


def _plot_link(title: str, file_name: str) -> list[str]:
    return [f"![{title}]({file_name})", ""]


JUDGE_SKIPPED = (
    "Skipped: no `--judge.model` was given. The paper's third view, pairwise preference by an LLM judge "
    "(both orders asked), needs an OpenAI-compatible endpoint: `--judge.model NAME` "
    "[`--judge.base_url URL --judge.api_key_env VARIABLE`]."
)


def _judge_section(results: dict) -> list[str]:
    judge, systems = results["judge"], results["systems"]
    if judge is None:
        return ["## Win rate by LLM judge", "", JUDGE_SKIPPED, ""]
    if "error" in judge:
        return ["## Win rate by LLM judge", "", f"The judge failed: {judge['error']}", ""]
    usage = judge["usage"]
    reasons = [
        [f"{a} vs {b}", *(str(judge["tie_reasons"][a][b][r]) for r in judge["tie_reasons"][a][b])]
        for i, a in enumerate(systems)
        for b in systems[i + 1 :]
    ]
    reason_names = list(judge["tie_reasons"][systems[0]][systems[1]])
    return [
        f"## Win rate by LLM judge `{judge['model']}` (%)",
        "",
        f"{judge['prompts']} prompts, both orders asked; a system wins only when picked in both orders. "
        f"Prompt template {judge['template_hash']}.",
        "",
        *win_rate_markdown(systems, judge),
        "",
        "Ties by reason:",
        "",
        *_markdown_table(["pair", *reason_names], reasons),
        "",
        f"Requests this run: {usage['requests']} ({usage['new_replies']} replies, {usage['errors']} failed), "
        f"{usage['cached_replies']} replies from the cache. Tokens this run: {usage['new_prompt_tokens']} in / "
        f"{usage['new_completion_tokens']} out, estimated US$ {usage['cost_usd_this_run']:.4f}; cached replies "
        f"had cost US$ {usage['cost_usd_cached']:.4f}.",
        "",
        *([f"Failures: {'; '.join(judge['errors'])}", ""] if judge["errors"] else []),
    ]


def _systems_section(results: dict) -> list[str]:
    files = results.get("files") or {}
    return [
        *_markdown_table(
            ["system", "generation file"], [[f"`{s}`", f"`{files.get(s, '–')}`"] for s in results["systems"]]
        ),
        "",
    ]


def render_markdown(results: dict) -> str:
    """The report: the systems and their files, means, one win-rate table (and its heat map) per metric and for the
    judge (or why it was skipped), and the consistency table (and its chart). Plots are linked by file name: the
    report sits beside them."""
    systems = results["systems"]
    missing = ", ".join(f"{s} lacks {n}" for s, n in results["missing"].items() if n)
    lines = [
        "# System comparison",
        "",
        f"Systems: {', '.join(f'`{s}`' for s in systems)}. "
        f"Compared on the {results['prompts']} prompts every system has"
        + (f" ({missing} of the others' prompts)." if missing else "."),
        "",
        *_systems_section(results),
        *_means_section(results),
        "Win rates: the row system's percentage of wins against the column system, prompt by prompt, ties "
        "excluded; Avg. is the mean over the other systems.",
        "",
    ]
    for metric, table in results["win_rates"].items():
        lines += [
            f"## Win rate by {metric} ({_direction(table['higher_is_better'])}) (%)",
            "",
            *win_rate_markdown(systems, table),
            "",
            *_plot_link(f"win rate by {metric}", plot_file_name(metric)),
        ]
    lines += _judge_section(results)
    rows = [
        [m, _direction(c["higher_is_better"]), str(c["inconsistent"]), str(c["decisive"]), _percent(c["inconsistency"])]
        for m, c in results["consistency"].items()
    ]
    lines += [
        "## Consistency with the holistic reward",
        "",
        "Over every pair of systems and every prompt: the share of prompts where the holistic reward prefers "
        "one output and the metric (oriented) strictly prefers the other, among those where the holistic "
        "reward is not tied.",
        "",
        *_markdown_table(["metric", "direction", "inconsistent", "H decisive", "inconsistency (%)"], rows),
        "",
        *_plot_link("inconsistency with the holistic reward", CONSISTENCY_PLOT),
    ]
    return "\n".join(lines)
