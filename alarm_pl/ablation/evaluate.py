"""The evaluation suite across the sweep's runs: every run's test metrics, one comparison per seed (the eval suite's
win rates by reward and metric, and by the LLM judge when configured), and their aggregation over seeds.

Seed k's comparison aligns, prompt by prompt, the test generations of every system's seed-k run (and the starting
policy's, which does not depend on the seed); its report, results and plots are written to ``compare/seed<k>/`` by
the same code as ``python -m alarm_pl.eval compare``. Sentence-level chrF and BLEU against the reference are added to
every record first, so the reference metrics get win rates like the rewards do.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Optional, Sequence

from alarm_pl.ablation.plan import START
from alarm_pl.ablation.runner import Outcome
from alarm_pl.ablation.stats import run_metrics, summarise_metrics, summarise_win_rates, with_sentence_metrics
from alarm_pl.eval.config import JudgeConfig
from alarm_pl.eval.records import GenerationRecord, read_generations
from alarm_pl.eval.winrate import align_by_prompt

log = logging.getLogger("alarm_pl.ablation")

TRAIN_KEYS = ("train/kl", "train/kl_coef", "train/holistic_raw", "train/holistic", "train/response_length")


def train_summary(run_directory: Path) -> dict:
    """The last logged value of the training statistics ``TRAIN_KEYS`` and the aspects active at the end
    (``train/selection/<aspect>/active``), from the run's CSV log; empty when it has none (the starting policy)."""
    last: dict[str, float] = {}
    for path in sorted(run_directory.glob("logs/*/metrics.csv")):
        with open(path, encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                last.update({key: float(value) for key, value in row.items() if value not in (None, "")})
    summary = {key.removeprefix("train/"): last[key] for key in TRAIN_KEYS if key in last}
    active = sorted(
        key.split("/")[2]
        for key, value in last.items()
        if key.startswith("train/selection/") and key.endswith("/active") and value == 1.0
    )
    if any(key.startswith("train/selection/") for key in last):
        summary["active_aspects"] = active
    return summary


def load_records(outcomes: Sequence[Outcome]) -> dict[str, dict[Optional[int], list[GenerationRecord]]]:
    """system -> seed (None for the starting policy) -> its test records with sentence chrF/BLEU added."""
    records: dict[str, dict[Optional[int], list[GenerationRecord]]] = {}
    for outcome in outcomes:
        if outcome.test_file is not None:
            run = outcome.run
            records.setdefault(run.system, {})[run.seed] = with_sentence_metrics(read_generations(outcome.test_file))
    return records


def compare_seed(systems: dict[str, list[GenerationRecord]], out: Path, judge: JudgeConfig) -> dict:
    """One seed's comparison, written to ``out`` like ``python -m alarm_pl.eval compare`` writes it."""
    from alarm_pl.eval.cli import add_judge, write_outputs
    from alarm_pl.eval.report import reward_results

    alignment = align_by_prompt(systems)
    results = reward_results(alignment)
    results["files"] = {}
    if judge.model:
        add_judge(results, alignment, judge, out)
    write_outputs(results, out)
    return results


def seeds_with_every_system(records: dict, systems: Sequence[str], seeds: Sequence[int]) -> list[int]:
    """The seeds for which every system has a finished run (a seed missing one system is left out of win rates)."""
    return [seed for seed in seeds if all(seed in records.get(system, {}) for system in systems)]


def evaluate(
    outcomes: Sequence[Outcome],
    systems: Sequence[str],
    seeds: Sequence[int],
    out: Path,
    judge: JudgeConfig,
    confidence: float = 0.95,
) -> dict:
    """Per-run metrics, their intervals per system, and win rates per metric aggregated over the compared seeds.

    Args:
        outcomes: the runs' outcomes (failed ones are listed, not evaluated).
        systems: the trained systems (the starting policy is added when it has a finished run).
        seeds: the sweep's seeds.
        out: the sweep's directory (per-seed comparisons go to ``out/compare/seed<k>``).
        judge: the LLM judge's settings (skipped without ``judge.model``).
        confidence: the intervals' coverage.
    """
    records = load_records(outcomes)
    runs = []
    for outcome in outcomes:
        run = outcome.run
        entry = {
            "system": run.system,
            "seed": run.seed,
            "status": outcome.status,
            "wall_s": outcome.wall_s,
            "cpu_s": outcome.cpu_s,
            "directory": str(run.directory),
            "error": outcome.error,
        }
        if run.seed in records.get(run.system, {}):
            entry["metrics"] = run_metrics(records[run.system][run.seed])
            entry["train"] = train_summary(run.directory)
        runs.append(entry)
    compared = [*systems, *([START] if START in records else [])]
    metrics = {
        system: summarise_metrics(
            {r["seed"]: r["metrics"] for r in runs if r["system"] == system and "metrics" in r}, confidence
        )
        for system in compared
    }
    per_seed = {}
    for seed in seeds_with_every_system(records, systems, seeds):
        seed_systems = {s: records[s][seed] for s in systems}
        if START in records:
            seed_systems[START] = records[START][None]
        per_seed[seed] = compare_seed(seed_systems, out / "compare" / f"seed{seed}", judge)
        log.info("seed %d compared: %s", seed, out / "compare" / f"seed{seed}" / "report.md")
    return {
        "systems": compared,
        "runs": runs,
        "metrics": metrics,
        "compared_seeds": list(per_seed),
        "win_rates": aggregate_win_rates(per_seed, compared, systems, confidence),
        "judge": aggregate_judge(per_seed, compared, systems, confidence),
        "consistency": {seed: result["consistency"] for seed, result in per_seed.items()},
    }


def aggregate_win_rates(
    per_seed: dict[int, dict], compared: Sequence[str], strategies: Sequence[str], confidence: float
) -> dict:
    """metric -> ``{higher_is_better, pairs, avg}`` with intervals over the seeds (``stats.summarise_win_rates``)."""
    if not per_seed:
        return {}
    names = list(next(iter(per_seed.values()))["win_rates"])
    return {
        metric: {
            "higher_is_better": next(iter(per_seed.values()))["win_rates"][metric]["higher_is_better"],
            **summarise_win_rates(
                {seed: r["win_rates"][metric] for seed, r in per_seed.items()}, compared, strategies, confidence
            ),
        }
        for metric in names
    }


def aggregate_judge(
    per_seed: dict[int, dict], compared: Sequence[str], strategies: Sequence[str], confidence: float
) -> Optional[dict]:
    """The judge's win rates over seeds, its model and its errors; None when the judge did not run."""
    judged = {seed: r["judge"] for seed, r in per_seed.items() if r.get("judge") and "pairs" in r["judge"]}
    errors = [
        f"seed {seed}: {r['judge']['error']}"
        for seed, r in per_seed.items()
        if r.get("judge") and "error" in r["judge"]
    ]
    if not judged and not errors:
        return None
    model = next((j["model"] for j in judged.values()), None)
    summary = summarise_win_rates(judged, compared, strategies, confidence) if judged else {}
    return {"model": model, "seeds": list(judged), **summary, "errors": errors}
