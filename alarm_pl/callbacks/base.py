"""Rollout callbacks: Lightning callbacks that act on every scored rollout, and what they may use of the module.

Order (fixed, whatever the order of ``trainer.callbacks``): after scoring and before PPO, the module hands the rollout
through ``rollout_pipeline(trainer.callbacks)``:

1. **selection** (``AspectSelection``): decides ``rollout.active_aspects``;
2. **composition** (``RewardComposition``): sets ``rollout.token_rewards``, the per-token reward of the configured
   strategy;
3. **user** callbacks (any other ``RolloutCallback``, e.g. one given as ``trainer.callbacks`` in YAML), in the order
   of ``trainer.callbacks``: they see the composed ``token_rewards`` and may observe or adjust them; PPO trains on
   what the last one returns.

The module installs the first two through ``configure_callbacks``, so a configuration cannot forget them; Lightning
appends such callbacks after the trainer's own, which is why the order is set by each class's ``stage`` and not by
the list. A callback returns a (new) ``Rollout`` (``dataclasses.replace``); it never mutates tensors of the one it
receives.

Callbacks see the module only through the ``PolicyScorer`` protocol (the policy's responses to prompts, scored); they
never import the module class.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import ClassVar, Protocol

from lightning.pytorch import Callback, Trainer
from torch import Tensor

from alarm_pl.data.prompts import PromptBatch
from alarm_pl.rewards.base import Score
from alarm_pl.rollout import Rollout


class PolicyScorer(Protocol):
    """What rollout callbacks may ask of the module: the current policy's responses to prompts, scored."""

    def score_prompts(self, batch: PromptBatch, do_sample: bool) -> tuple[Tensor, dict[str, Score]]:
        """Generate one response per prompt (greedy, or sampled with the rollout decoding) and score it.

        The policy is not updated and running normalisers are not fed (the scoring is a measurement).

        Args:
            batch: B prompts with their references and metadata.
            do_sample: sample (True) or decode greedily (False).

        Returns:
            (H (B,), the normalised holistic reward with the degenerate-response penalty; every aspect's raw
            ``Score`` by name).
        """
        ...


class RolloutStage(enum.IntEnum):
    """Where a rollout callback runs in the pipeline (see the module docstring)."""

    SELECTION = 0
    COMPOSITION = 1
    USER = 2


class RolloutCallback(Callback):
    """A callback with one more hook, ``on_rollout_scored``; user callbacks run after the reward composition."""

    stage: ClassVar[RolloutStage] = RolloutStage.USER

    def on_rollout_scored(self, trainer: Trainer, module: PolicyScorer, rollout: Rollout) -> Rollout:
        """Return the rollout, possibly replaced (``dataclasses.replace``) with new fields."""
        return rollout


def rollout_pipeline(callbacks: Sequence[Callback]) -> list[RolloutCallback]:
    """The rollout callbacks among ``callbacks`` in the order they run: by ``stage``, then in list order.

    Raises:
        RuntimeError: unless exactly one callback composes the rewards (``RolloutStage.COMPOSITION``) and at most
            one selects aspects.
    """
    pipeline = sorted((c for c in callbacks if isinstance(c, RolloutCallback)), key=lambda c: c.stage)
    for stage, allowed in ((RolloutStage.SELECTION, (0, 1)), (RolloutStage.COMPOSITION, (1,))):
        found = [type(c).__name__ for c in pipeline if c.stage == stage]
        if len(found) not in allowed:
            raise RuntimeError(
                f"rollout callbacks: expected {' or '.join(map(str, allowed))} {stage.name.lower()} "
                f"callback(s), found {found or 'none'} (the module installs AspectSelection and "
                f"RewardComposition through configure_callbacks; do not add or remove them)"
            )
    return pipeline
