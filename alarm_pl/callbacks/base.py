"""The rollout-callback protocol: Lightning callbacks that act on every scored rollout.

The module calls ``on_rollout_scored`` of each ``RolloutCallback`` among ``trainer.callbacks``, in order, after scoring
and before PPO. A callback returns a (new) ``Rollout``; it never mutates tensors of the one it receives. The module
installs the callbacks its configuration needs through ``configure_callbacks`` (selection first, then gating).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lightning.pytorch import Callback, Trainer

from alarm_pl.rollout import Rollout

if TYPE_CHECKING:
    from alarm_pl.module import ALaRMModule


class RolloutCallback(Callback):
    """A callback with one more hook: ``on_rollout_scored``."""

    def on_rollout_scored(self, trainer: Trainer, module: "ALaRMModule", rollout: Rollout) -> Rollout:
        """Return the rollout, possibly replaced (``dataclasses.replace``) with new fields."""
        return rollout
