"""Statistics over seeds: means with Student-t confidence intervals, per-seed metrics of a generation file, and
win rates aggregated over seeds.

A confidence interval over n seeds is the two-sided Student-t interval ``mean ± t_{(1+c)/2, n−1} · s / √n`` with s the
sample standard deviation (n − 1 in the denominator): it treats the seeds' values as independent draws from a normal
distribution of run outcomes, which is what a reader assumes of an ablation table. With n = 1 there is no interval.
Win rates are fractions: their intervals are clipped to [0, 1] (with 2–3 seeds an unclipped t interval easily reaches
below 0 or above 1, which no win rate can).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

from alarm_pl.eval.records import GenerationRecord

SENTENCE_CHRF = "sentence_chrf"
SENTENCE_BLEU = "sentence_bleu"
WIN_RATE_RANGE = (0.0, 1.0)


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` values with its confidence interval (``low``/``high`` None when n < 2)."""

    mean: Optional[float]
    low: Optional[float]
    high: Optional[float]
    sd: Optional[float]
    n: int
    confidence: float = 0.95

    def to_json(self) -> dict:
        return {
            "mean": self.mean,
            "ci_low": self.low,
            "ci_high": self.high,
            "sd": self.sd,
            "n": self.n,
            "confidence": self.confidence,
        }


def t_interval(
    values: Sequence[Optional[float]], confidence: float = 0.95, bounds: Optional[tuple[float, float]] = None
) -> Interval:
    """Mean and two-sided Student-t interval of the finite values (None and NaN are left out).

    Args:
        values: one value per seed.
        confidence: the interval's coverage (0.95: t quantile 0.975 with n − 1 degrees of freedom).
        bounds: the range the quantity can take (a win rate: (0, 1)); the interval is clipped to it.
    """
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(finite)
    if n == 0:
        return Interval(None, None, None, None, 0, confidence)
    mean = sum(finite) / n
    if n == 1:
        return Interval(mean, None, None, None, 1, confidence)
    from scipy.stats import t

    sd = math.sqrt(sum((v - mean) ** 2 for v in finite) / (n - 1))
    half = float(t.ppf((1 + confidence) / 2, n - 1)) * sd / math.sqrt(n)
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return Interval(mean, low, high, sd, n, confidence)


def with_sentence_metrics(records: Sequence[GenerationRecord]) -> list[GenerationRecord]:
    """The records with sentence-level chrF and BLEU against their reference added to ``aspects`` (higher is better),
    so that win rates and consistency count them like any metric; records without a reference are returned as
    they are."""
    import dataclasses

    import sacrebleu

    out = []
    for record in records:
        if record.reference is None:
            out.append(record)
            continue
        extra = {
            SENTENCE_CHRF: sacrebleu.sentence_chrf(record.generation, [record.reference]).score,
            SENTENCE_BLEU: sacrebleu.sentence_bleu(record.generation, [record.reference]).score,
        }
        out.append(
            dataclasses.replace(
                record,
                aspects={**record.aspects, **extra},
                aspect_higher_is_better={**record.aspect_higher_is_better, **dict.fromkeys(extra, True)},
            )
        )
    return out


def run_metrics(records: Sequence[GenerationRecord]) -> dict[str, float]:
    """One run's test metrics from its generation file: corpus ``chrf`` and ``bleu`` (sacrebleu, when every record has
    a reference), the mean ``holistic`` H, each aspect's mean metric (``aspect/<name>``), the mean ``length`` in
    tokens and the ``degenerate`` share."""
    metrics: dict[str, float] = {}
    if records and all(r.reference is not None for r in records):
        import sacrebleu

        hypotheses, references = [r.generation for r in records], [[r.reference for r in records]]
        metrics["chrf"] = sacrebleu.corpus_chrf(hypotheses, references).score
        metrics["bleu"] = sacrebleu.corpus_bleu(hypotheses, references).score
    metrics["holistic"] = _mean([r.holistic for r in records])
    names = dict.fromkeys(name for r in records for name in r.aspects)
    for name in names:
        metrics[f"aspect/{name}"] = _mean([r.aspects.get(name, math.nan) for r in records])
    metrics["length"] = _mean([float(r.length) for r in records])
    metrics["degenerate"] = _mean([float(r.degenerate) for r in records])
    return metrics


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def summarise_metrics(per_seed: Mapping[int, Mapping[str, float]], confidence: float = 0.95) -> dict[str, Interval]:
    """Metric -> interval over the seeds (seed -> metric -> value) of one system."""
    names = dict.fromkeys(name for metrics in per_seed.values() for name in metrics)
    return {name: t_interval([metrics.get(name) for metrics in per_seed.values()], confidence) for name in names}


def summarise_win_rates(
    per_seed: Mapping[int, dict], systems: Sequence[str], avg_over: Sequence[str], confidence: float = 0.95
) -> dict:
    """Win rates of one metric aggregated over seeds.

    Args:
        per_seed: seed -> ``{"pairs": a -> b -> {"win_rate": fraction or None, ...}}`` (one comparison per seed, the
            ``win_rates[metric]`` of ``eval.report.reward_results`` or the judge's table).
        systems: the systems to report.
        avg_over: the systems the Avg. column averages over (the paper's Avg.: the strategies, not the baseline).

    Returns:
        ``{"pairs": a -> b -> interval of the per-seed win rates, "avg": a -> interval of the per-seed Avg.}``, the
        intervals clipped to [0, 1]; Avg. of a seed is the mean of a's defined win rates against the other systems of
        ``avg_over``.
    """
    pairs = {
        a: {
            b: t_interval([table["pairs"][a][b]["win_rate"] for table in per_seed.values()], confidence, WIN_RATE_RANGE)
            for b in systems
            if b != a
        }
        for a in systems
    }
    avg = {}
    for a in systems:
        seed_avgs = []
        for table in per_seed.values():
            rates = [table["pairs"][a][b]["win_rate"] for b in avg_over if b != a]
            defined = [r for r in rates if r is not None]
            seed_avgs.append(sum(defined) / len(defined) if defined else None)
        avg[a] = t_interval(seed_avgs, confidence, WIN_RATE_RANGE)
    return {"pairs": pairs, "avg": avg}
