"""KL coefficient controllers: β of the per-token penalty r_t - β KL_t (Ziegler et al. 2019, "Fine-Tuning Language
Models from Human Preferences", §2.2).

Plain classes chosen in YAML by ``class_path``; the module saves their ``state_dict()`` in checkpoints so that a
resumed run continues with the same β.
"""

from __future__ import annotations

import math
from typing import Any


class KLController:
    """Base class: holds β in ``value``; ``update`` is called once per rollout with the measured KL.

    Args:
        init_coef: initial β (>= 0).
    """

    def __init__(self, init_coef: float) -> None:
        if init_coef < 0:
            raise ValueError(f"{type(self).__name__}: init_coef must be >= 0, got {init_coef}")
        self.value = float(init_coef)

    def update(self, current_kl: float, n_steps: int) -> None:
        """Adapt β after a rollout.

        Args:
            current_kl: the rollout's KL(π || π_ref), summed over each response's tokens and averaged over responses.
            n_steps: episodes (responses) in the rollout, summed over all processes.
        """

    def state_dict(self) -> dict[str, Any]:
        """The state to checkpoint: the current β."""
        return {"value": self.value}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore β from ``state_dict()``'s output."""
        if "value" not in state_dict:
            raise KeyError(f"{type(self).__name__}.load_state_dict: missing key 'value' in {sorted(state_dict)}")
        self.value = float(state_dict["value"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(value={self.value})"


class FixedKLController(KLController):
    """A constant β: ``update`` changes nothing.

    Args:
        init_coef: β (>= 0); 0 disables the KL penalty.
    """

    def __init__(self, init_coef: float) -> None:
        super().__init__(init_coef)


class AdaptiveKLController(KLController):
    """β steered towards a target KL with a clipped proportional controller (Ziegler et al. 2019, §2.2):

    e = clip(KL / target - 1, -0.2, 0.2);  β ← β (1 + e · n_steps / horizon).

    Args:
        init_coef: initial β (>= 0); the paper's setups use 0.2.
        target: the KL (nats per response) that the controller aims at (> 0).
        horizon: episodes over which β may change by a factor of about e^{±0.2} (> 0).
    """

    #: the proportional error is clipped to ±MAX_ERROR (Ziegler et al. 2019).
    MAX_ERROR = 0.2

    def __init__(self, init_coef: float = 0.2, target: float = 6.0, horizon: int = 10000) -> None:
        super().__init__(init_coef)
        if target <= 0:
            raise ValueError(f"AdaptiveKLController: target must be > 0, got {target}")
        if horizon <= 0:
            raise ValueError(f"AdaptiveKLController: horizon must be > 0, got {horizon}")
        self.target = float(target)
        self.horizon = int(horizon)

    def update(self, current_kl: float, n_steps: int) -> None:
        if not math.isfinite(float(current_kl)):
            raise ValueError(f"AdaptiveKLController.update: current_kl must be finite, got {float(current_kl)}")
        error = min(max(float(current_kl) / self.target - 1.0, -self.MAX_ERROR), self.MAX_ERROR)
        self.value *= 1.0 + error * n_steps / self.horizon

    def __repr__(self) -> str:
        return f"AdaptiveKLController(value={self.value}, target={self.target}, horizon={self.horizon})"
