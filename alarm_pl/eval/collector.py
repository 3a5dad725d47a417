"""Validation/test generation files: collect one record per prompt, gather across processes, write atomically on
rank 0 (no prompt duplicated or dropped), and compute corpus BLEU/chrF when references exist."""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import TYPE_CHECKING, Optional

import torch

from alarm_pl.eval.records import GenerationRecord, config_hash, write_generations

if TYPE_CHECKING:
    from alarm_pl.data.prompts import PromptBatch
    from alarm_pl.module import ALaRMModule
    from alarm_pl.rewards.base import ScoringInput
    from alarm_pl.rewards.pipeline import ScoringPipeline, ScoredBatch


class EvalCollector:
    """Accumulates ``(index, GenerationRecord)`` pairs during one validation/test epoch.

    Args:
        generations_dir: directory of the generation files; ``None`` uses ``<logger dir>/generations``.
    """

    def __init__(self, generations_dir: Optional[str] = None) -> None:
        self.generations_dir = generations_dir
        self.items: list[tuple[int, GenerationRecord]] = []
        self.last_path: Optional[str] = None

    def reset(self) -> None:
        self.items = []

    def add(self, batch: "PromptBatch", inputs: "ScoringInput", scored: "ScoredBatch", scoring: "ScoringPipeline") -> None:
        holistic_name = scoring.holistic_scorer.name
        for i, prompt in enumerate(batch.prompts):
            aspects = {name: float(scored.scores[name].metric[i]) for name in scoring.aspect_names}
            directions = {name: bool(scored.scores[name].higher_is_better) for name in scoring.aspect_names}
            record = GenerationRecord(
                prompt=prompt, generation=inputs.responses[i], reference=batch.references[i],
                holistic=float(scored.holistic_unpenalized[i]), degenerate=bool(scored.degenerate[i]),
                holistic_raw=float(scored.scores[holistic_name].oriented_metric[i]),
                aspects=aspects, aspect_higher_is_better=directions, length=int(inputs.lengths[i]), run={})
            self.items.append((batch.indices[i] if batch.indices is not None else len(self.items), record))

    def finish(self, module: "ALaRMModule", stage: str) -> dict[str, float]:
        """Gather, de-duplicate by prompt index (distributed samplers pad), write the file; return corpus metrics."""
        trainer = module.trainer
        items = self.items
        if trainer.world_size > 1:
            gathered: list = [None] * trainer.world_size
            torch.distributed.all_gather_object(gathered, items)
            items = [item for part in gathered for item in part]
        unique = dict(sorted(items, key=lambda item: item[0]))
        records = list(unique.values())
        self.reset()
        if not trainer.is_global_zero or not records:
            return {}
        run = {"config_hash": config_hash(_jsonable({**module.hparams, "scorers": [
            repr(s) for s in [module.scoring.holistic_scorer, *module.scoring.aspect_scorers]]})), "stage": stage, "step": trainer.global_step,
               "checkpoint": trainer.ckpt_path, "decoding": _jsonable(asdict(module.generation_config))}
        records = [GenerationRecord(**{**asdict(r), "run": run}) for r in records]
        directory = self.generations_dir or os.path.join(trainer.log_dir or trainer.default_root_dir, "generations")
        self.last_path = os.path.join(directory, f"{stage}-step{trainer.global_step:06d}.jsonl")
        write_generations(self.last_path, records)
        return corpus_metrics(records)


def corpus_metrics(records: list[GenerationRecord]) -> dict[str, float]:
    """Corpus BLEU and chrF (sacrebleu) over records that have references; empty when none has one."""
    pairs = [(r.generation, r.reference) for r in records if r.reference is not None]
    if not pairs:
        return {}
    import sacrebleu

    hyps, refs = [h for h, _ in pairs], [[r for _, r in pairs]]
    return {"bleu": sacrebleu.corpus_bleu(hyps, refs).score, "chrf": sacrebleu.corpus_chrf(hyps, refs).score}


def _jsonable(obj):
    """A JSON-able view of hyper-parameters (objects become their repr)."""
    if isinstance(obj, dict) or hasattr(obj, "items"):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return repr(obj)
