"""Validation/test generation files: collect one record per prompt, gather across processes, write atomically on
process 0 (no prompt duplicated or dropped), and compute corpus BLEU/chrF when references exist.

The collector knows nothing of the module or the trainer: the caller hands it the run's identity (built with
``records.run_identity``) and the file's path when an epoch ends.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Optional

import torch

from alarm_pl.data.prompts import PromptBatch
from alarm_pl.eval.records import GenerationRecord, write_generations
from alarm_pl.rewards.base import ScoringInput
from alarm_pl.rewards.pipeline import ScoredBatch


class EvalCollector:
    """Accumulates ``(index, GenerationRecord)`` pairs during one validation/test epoch.

    Args:
        generations_dir: directory of the generation files; ``None`` lets the caller choose (the module uses
            ``<logger dir>/generations``).
    """

    def __init__(self, generations_dir: Optional[str] = None) -> None:
        self.generations_dir = generations_dir
        self.items: list[tuple[int, GenerationRecord]] = []
        self.last_path: Optional[str] = None

    def reset(self) -> None:
        self.items = []

    def add(
        self, batch: PromptBatch, inputs: ScoringInput, scored: ScoredBatch, holistic_name: str, aspect_names: list[str]
    ) -> None:
        """Record one scored batch (B prompts).

        Args:
            batch: the prompts (their ``indices`` de-duplicate records across processes).
            inputs: the decoded responses and their lengths.
            scored: the scores; the file's H is ``scored.holistic_unpenalized`` (the reward model's normalised score,
                without the degenerate penalty, flagged by ``degenerate``), the raw holistic reward
                ``scores[holistic_name]``.
            holistic_name: the holistic scorer's name.
            aspect_names: the aspect scorers' names.
        """
        for i, prompt in enumerate(batch.prompts):
            aspects = {name: float(scored.scores[name].metric[i]) for name in aspect_names}
            directions = {name: bool(scored.scores[name].higher_is_better) for name in aspect_names}
            record = GenerationRecord(
                prompt=prompt,
                generation=inputs.responses[i],
                reference=batch.references[i],
                holistic=float(scored.holistic_unpenalized[i]),
                degenerate=bool(scored.degenerate[i]),
                holistic_raw=float(scored.scores[holistic_name].oriented_metric[i]),
                aspects=aspects,
                aspect_higher_is_better=directions,
                length=int(inputs.lengths[i]),
                run={},
            )
            self.items.append((batch.indices[i] if batch.indices is not None else len(self.items), record))

    def finish(self, path: str, run: dict) -> dict[str, float]:
        """Gather, de-duplicate by prompt index (distributed samplers pad) and write the file on process 0.

        A collective when ``torch.distributed`` is initialised: every process must call it.

        Args:
            path: the generation file to write.
            run: the run's identity, stored in every record (``records.run_identity``).

        Returns:
            Corpus BLEU/chrF on process 0 when references exist; empty elsewhere.
        """
        items = self.items
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        if distributed and torch.distributed.get_world_size() > 1:
            gathered: list = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, items)
            items = [item for part in gathered for item in part]
        unique = dict(sorted(items, key=lambda item: item[0]))
        records = list(unique.values())
        self.reset()
        if (distributed and torch.distributed.get_rank() != 0) or not records:
            return {}
        records = [GenerationRecord(**{**asdict(r), "run": run}) for r in records]
        self.last_path = path
        write_generations(path, records)
        return corpus_metrics(records)


def corpus_metrics(records: list[GenerationRecord]) -> dict[str, float]:
    """Corpus BLEU and chrF (sacrebleu) over records that have references; empty when none has one."""
    pairs = [(r.generation, r.reference) for r in records if r.reference is not None]
    if not pairs:
        return {}
    import sacrebleu

    hyps, refs = [h for h, _ in pairs], [[r for _, r in pairs]]
    return {"bleu": sacrebleu.corpus_bleu(hyps, refs).score, "chrf": sacrebleu.corpus_chrf(hyps, refs).score}
