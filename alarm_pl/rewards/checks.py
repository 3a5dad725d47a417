"""Checks on what a scorer hands back: exceptions named by scorer and sample, shapes, and non-finite values.

The policy for each fault is in ``alarm_pl/faults.py``: a scorer that raises (or whose server stays down) stops the
run at the rollout boundary; a sample with a NaN/inf value is dropped from the update and counted.
"""

from __future__ import annotations

import dataclasses
import logging

import torch
from torch import Tensor

from alarm_pl.faults import OutOfMemoryFault, ScorerFault, is_out_of_memory, memory_advice
from alarm_pl.rewards.base import Score, Scorer, ScorerUnavailable, ScoringInput

log = logging.getLogger(__name__)

MAX_DROPPED_SHARE = 0.5
"""A scorer with non-finite values on more than this share of a batch is broken, not unlucky: the run stops."""

_EXCERPT = 80


def sample_slice(inputs: ScoringInput, index: int) -> ScoringInput:
    """The one-sample batch of sample ``index`` of ``inputs`` (tensors keep their padded width T)."""
    one = slice(index, index + 1)
    return ScoringInput(
        inputs.prompts[one],
        inputs.responses[one],
        inputs.references[one],
        inputs.metadata[one],
        inputs.response_ids[one],
        inputs.response_mask[one],
        inputs.token_spans[one],
    )


def describe_sample(inputs: ScoringInput, index: int) -> str:
    """``sample i (prompt '…', response '…')`` with both texts cut to a readable excerpt."""

    def cut(text: str) -> str:
        return repr(text if len(text) <= _EXCERPT else text[:_EXCERPT] + "…")

    return f"sample {index} of the batch (prompt {cut(inputs.prompts[index])}, response {cut(inputs.responses[index])})"


def first_failing_sample(scorer: Scorer, inputs: ScoringInput) -> int | None:
    """The first sample that makes ``scorer.score`` raise on its own, or None when each one passes alone."""
    for index in range(len(inputs)):
        try:
            scorer.score(sample_slice(inputs, index))
        except Exception:  # noqa: BLE001 - any failure identifies the sample
            return index
    return None


def run_scorer(scorer: Scorer, inputs: ScoringInput) -> Score:
    """``scorer.score(inputs)`` with its shapes checked.

    Raises:
        ScorerFault: the scorer raised (the message names it, the sample it fails on when one can be singled out, and
            the original error) or returned the wrong shapes; an unreachable server (``ScorerUnavailable``) is not
            retried sample by sample.
        OutOfMemoryFault: the scorer ran out of memory (the message names the settings that reduce memory).
    """
    try:
        score = scorer.score(inputs)
    except ScorerUnavailable as err:
        raise ScorerFault(f"scorer {scorer.name!r} is unavailable: {err}") from err
    except Exception as err:  # noqa: BLE001 - every scorer failure is reported the same way
        if is_out_of_memory(err):
            raise OutOfMemoryFault(
                memory_advice(f"scoring by {scorer.name!r}", err) + "; or, for a model-based "
                "scorer, its init_args batch_size, max_length or quantization_bits"
            ) from err
        index = first_failing_sample(scorer, inputs)
        where = describe_sample(inputs, index) if index is not None else "the batch (each sample passes alone)"
        raise ScorerFault(f"scorer {scorer.name!r} raised {type(err).__name__} on {where}: {err}") from err
    expected = tuple(inputs.response_mask.shape)
    if tuple(score.values.shape) != expected or tuple(score.metric.shape) != (len(inputs),):
        raise ScorerFault(
            f"scorer {scorer.name!r} returned values {tuple(score.values.shape)} / metric "
            f"{tuple(score.metric.shape)}; expected {expected} / ({len(inputs)},)"
        )
    return score


def nonfinite_rows(score: Score) -> Tensor:
    """(B,) bool: samples whose metric or any placed value is NaN or infinite."""
    placed = score.placed.bool()  # (B, T)
    bad_values = (~torch.isfinite(score.values.float()) & placed).any(dim=1)  # (B,)
    return bad_values | ~torch.isfinite(score.metric.float())


def without_rows(score: Score, rows: Tensor) -> Score:
    """``score`` with the samples in ``rows`` (B,) emptied: values 0, nothing placed, metric NaN (= missing, as in
    generation files and the consistency counts)."""
    if not bool(rows.any()):
        return score
    rows = rows.to(score.values.device)
    keep = (~rows).unsqueeze(1)  # (B, 1)
    values = torch.where(
        keep, torch.nan_to_num(score.values, nan=0.0, posinf=0.0, neginf=0.0), torch.zeros_like(score.values)
    )
    metric = torch.where(
        rows.to(score.metric.device), torch.full_like(score.metric.float(), float("nan")), score.metric.float()
    )
    return dataclasses.replace(score, values=values, placed=score.placed.bool() & keep, metric=metric)


class NonFiniteFilter:
    """Finds samples with non-finite scores, warns once per scorer and stops when a scorer is clearly broken."""

    def __init__(self) -> None:
        self._warned: set[str] = set()

    def check(self, name: str, score: Score, inputs: ScoringInput) -> Tensor:
        """(B,) bool: the samples ``score`` has non-finite values for.

        Raises:
            ScorerFault: more than ``MAX_DROPPED_SHARE`` of the batch is non-finite.
        """
        rows = nonfinite_rows(score).cpu()
        count = int(rows.sum())
        if count == 0:
            return rows
        first = int(rows.nonzero()[0, 0])
        if count > MAX_DROPPED_SHARE * len(inputs):
            raise ScorerFault(
                f"scorer {name!r} returned NaN or infinite values for {count} of {len(inputs)} "
                f"samples, e.g. {describe_sample(inputs, first)}; a scorer failing that often is "
                f"broken (more than {MAX_DROPPED_SHARE:.0%} of a batch stops the run)"
            )
        if name not in self._warned:
            self._warned.add(name)
            log.warning(
                "scorer %r returned NaN or infinite values for %d of %d samples, e.g. %s; such samples are "
                "dropped from the update and counted as train/dropped/%s (warned once per scorer)",
                name,
                count,
                len(inputs),
                describe_sample(inputs, first),
                name,
            )
        return rows
