"""Validation and test of a PPO policy, with the starting policy beside it.

``PolicyEvaluation`` is the evaluation half of ``ALaRMModule`` (``module.py``), kept apart from the rollout and the
update. Each validation/test batch is decoded with the evaluated policy (``generation.eval_do_sample``), scored by the
same pipeline as training, added to ``eval_collector`` and logged as ``<stage>/holistic``, ``<stage>/aspect/<name>``
and ``<stage>/response_length``; ``GenerationEvaluation`` (``eval/hooks.py``) writes the generation file and the
corpus BLEU/chrF at the epoch's end.

With ``evaluate_baseline`` (the default), every test run and the first validation of a run also decode the split
with the *starting* policy (``Policy.starting_policy()``: the adapter disabled) into ``baseline_collector``, logged
as ``<stage>/baseline/*`` and written to ``<stage>-baseline-stepNNNNNN.jsonl``, so that every run shows whether
training helped on held-out prompts. Skipped when the evaluated policy *is* the starting policy (no checkpoint
loaded and no update taken).

The module provides ``policy``, ``scoring`` (a ``ScoringPipeline``), ``generation_config``, ``hparams`` and
``generate_and_score(batch, do_sample)``, and calls ``init_policy_evaluation`` from its ``__init__``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Optional

from alarm_pl.data.prompts import PromptBatch
from alarm_pl.eval.collector import EvalCollector
from alarm_pl.eval.hooks import GenerationEvaluation
from alarm_pl.eval.records import jsonable, run_identity


class PolicyEvaluation(GenerationEvaluation):
    """Validation/test steps of a PPO module and the starting-policy baseline (see the module docstring)."""

    def init_policy_evaluation(self, generations_dir: Optional[str], evaluate_baseline: bool) -> None:
        """The collectors and the baseline's state; called from the module's ``__init__``."""
        self.eval_collector = EvalCollector(generations_dir)
        self.evaluate_baseline = evaluate_baseline
        self.baseline_collector = EvalCollector(generations_dir)
        self._val_baseline_done = False

    def validation_step(self, batch: PromptBatch, batch_idx: int) -> None:
        self._evaluation_step(batch, "val")

    def test_step(self, batch: PromptBatch, batch_idx: int) -> None:
        self._evaluation_step(batch, "test")

    def _evaluation_step(self, batch: PromptBatch, stage: str) -> None:
        self._evaluate(batch, stage, self.eval_collector)
        if self._baseline_due(stage):
            with self.policy.starting_policy():
                self._evaluate(batch, f"{stage}/baseline", self.baseline_collector)

    def _evaluate(self, batch: PromptBatch, prefix: str, collector: EvalCollector) -> None:
        inputs, scored = self.generate_and_score(batch, self.generation_config.eval_do_sample)
        collector.add(batch, inputs, scored, self.scoring.holistic_scorer.name, self.scoring.aspect_names)
        size = len(batch)
        self.log(f"{prefix}/holistic", scored.holistic.mean(), sync_dist=True, batch_size=size)
        for name in self.scoring.aspect_names:
            self.log(
                f"{prefix}/aspect/{name}", scored.scores[name].metric.float().mean(), sync_dist=True, batch_size=size
            )
        self.log(f"{prefix}/response_length", inputs.lengths.float().mean(), sync_dist=True, batch_size=size)

    def _baseline_due(self, stage: str) -> bool:
        """The starting policy is evaluated on every test run and on the first validation of a run, unless the
        policy evaluated is the starting policy itself (no checkpoint loaded, no update taken)."""
        if not self.evaluate_baseline or self.trainer.sanity_checking:
            return False
        if self.trainer.ckpt_path is None and self.trainer.global_step == 0:
            return False
        return stage == "test" or not self._val_baseline_done

    def run_identity(self, stage: str) -> dict:
        """The ``run`` field of this run's generation records: the configuration's hash (hyper-parameters and
        scorers), the checkpoint, the decoding, the step and the stage."""
        scorers = [repr(s) for s in [self.scoring.holistic_scorer, *self.scoring.aspect_scorers]]
        return run_identity(
            jsonable({**self.hparams, "scorers": scorers}),
            self.trainer.ckpt_path,
            jsonable(asdict(self.generation_config)),
            self.evaluated_step,
            stage=stage,
        )

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self.baseline_collector.reset()

    def on_test_epoch_start(self) -> None:
        super().on_test_epoch_start()
        self.baseline_collector.reset()

    def finish_evaluation(self, stage: str) -> None:
        """The trained policy's generation file and corpus metrics, then the starting policy's when it was evaluated
        (``<stage>-baseline-stepNNNNNN.jsonl``, ``<stage>/baseline/*``)."""
        baseline = self._baseline_due(stage)
        super().finish_evaluation(stage)
        if not baseline:
            return
        run = {**self.run_identity(stage), "policy": "starting"}
        for key, value in self.baseline_collector.finish(self.generation_file(stage, "baseline"), run).items():
            self.log(f"{stage}/baseline/{key}", value, rank_zero_only=True)
        self._val_baseline_done = self._val_baseline_done or stage == "val"
