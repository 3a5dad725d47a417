"""The evaluation epoch of every LightningModule that decodes validation/test prompts (PPO and SFT alike).

A module mixes in ``GenerationEvaluation``, keeps an ``EvalCollector`` as ``eval_collector``, adds each scored batch to
it in its own ``validation_step``/``test_step``, and implements ``run_identity(stage)``; this mixin resets the collector
at the start of the epoch and, at its end, writes the generation file ``<stage>-stepNNNNNN.jsonl`` (under
``generations_dir``, or ``<logger dir>/generations``) and logs corpus BLEU/chrF as ``<stage>/bleu``, ``<stage>/chrf``.

NNNNNN is ``evaluated_step``: the training step of the weights evaluated — the trainer's step during ``fit`` (and in
a test run by the same trainer after it), the checkpoint's step in ``validate``/``test --ckpt_path`` (Lightning
restores no step outside ``fit``, so a module's ``on_load_checkpoint`` must call this mixin's), 0 for the starting
policy.
"""

from __future__ import annotations

import os

from alarm_pl.eval.collector import EvalCollector


class GenerationEvaluation:
    """Validation/test epoch hooks around an ``EvalCollector`` (see the module docstring)."""

    eval_collector: EvalCollector
    _checkpoint_step: int = 0

    def __init_subclass__(cls, **kwargs) -> None:
        """Every class that mixes this in provides ``run_identity(stage) -> dict``: the ``run`` field of its
        generation records (``records.run_identity``); a class without it is refused where it is defined."""
        super().__init_subclass__(**kwargs)
        if not callable(getattr(cls, "run_identity", None)):
            raise TypeError(f"{cls.__qualname__} mixes in GenerationEvaluation but defines no run_identity(stage)")

    @property
    def evaluated_step(self) -> int:
        """The training step of the weights being evaluated (see the module docstring)."""
        if self.trainer.state.fn != "fit" and self.trainer.ckpt_path:  # restored for this validate/test
            return self._checkpoint_step
        return self.trainer.global_step  # fit, a test right after fit (--test_after_fit), or the starting policy

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Remember the checkpoint's step for ``evaluated_step`` (modules overriding this hook call it first)."""
        self._checkpoint_step = int(checkpoint.get("global_step", 0))

    def generation_file(self, stage: str, tag: str = "") -> str:
        """Where the generation file of ``stage`` at ``evaluated_step`` goes (``tag`` names a second policy)."""
        trainer = self.trainer
        directory = self.eval_collector.generations_dir or os.path.join(
            trainer.log_dir or trainer.default_root_dir, "generations"
        )
        name = f"{stage}-{tag}" if tag else stage
        return os.path.join(directory, f"{name}-step{self.evaluated_step:06d}.jsonl")

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
