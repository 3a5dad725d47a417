"""The evaluation epoch of every LightningModule that decodes validation/test prompts (PPO and SFT alike).

A module mixes in ``GenerationEvaluation``, keeps an ``EvalCollector`` as ``eval_collector``, adds each scored batch to
it in its own ``validation_step``/``test_step``, and implements ``run_identity(stage)``; this mixin resets the collector
at the start of the epoch and, at its end, writes the generation file ``<stage>-stepNNNNNN.jsonl`` (under
``generations_dir``, or ``<logger dir>/generations``) and logs corpus BLEU/chrF as ``<stage>/bleu``, ``<stage>/chrf``.
"""

from __future__ import annotations

import os

from alarm_pl.eval.collector import EvalCollector


class GenerationEvaluation:
    """Validation/test epoch hooks around an ``EvalCollector`` (see the module docstring)."""

    eval_collector: EvalCollector

    def run_identity(self, stage: str) -> dict:
        """The ``run`` field of this run's generation records (``records.run_identity``)."""
        raise NotImplementedError(f"{type(self).__name__} must implement run_identity(stage)")

    def generation_file(self, stage: str, tag: str = "") -> str:
        """Where the generation file of ``stage`` at the current step goes (``tag`` names a second policy)."""
        trainer = self.trainer
        directory = self.eval_collector.generations_dir or os.path.join(
            trainer.log_dir or trainer.default_root_dir, "generations")
        name = f"{stage}-{tag}" if tag else stage
        return os.path.join(directory, f"{name}-step{trainer.global_step:06d}.jsonl")

    def on_validation_epoch_start(self) -> None:
        self.eval_collector.reset()

    def on_test_epoch_start(self) -> None:
        self.eval_collector.reset()

    def on_validation_epoch_end(self) -> None:
        self.finish_evaluation("val")

    def on_test_epoch_end(self) -> None:
        self.finish_evaluation("test")

    def finish_evaluation(self, stage: str) -> None:
        """Write the generation file and log the corpus metrics (nothing during Lightning's sanity check)."""
        if self.trainer.sanity_checking:
            return
        corpus = self.eval_collector.finish(self.generation_file(stage), self.run_identity(stage))
        for key, value in corpus.items():
            self.log(f"{stage}/{key}", value, rank_zero_only=True)
