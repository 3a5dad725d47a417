"""The PPO early stop: approx_kl over the epoch (default) or trl 0.5's k1 policy KL of the epoch's last minibatch."""

from __future__ import annotations

import pytest
import torch
from helpers import KeywordScorer

from alarm_pl.config import PPOConfig
from alarm_pl.module import ALaRMModule


def _stats(*pairs: tuple[float, float]) -> list[dict[str, torch.Tensor]]:
    """One epoch's minibatch stats from (approx_kl, policy_kl) pairs."""
    return [{"approx_kl": torch.tensor(a), "policy_kl": torch.tensor(k)} for a, k in pairs]


# target_kl 0.1 → stop above 0.15.  A: epoch mean of approx_kl (0.4 + 0) / 2 = 0.2 stops, the last minibatch's
# policy_kl 0.1 does not.  B: epoch mean 0.05 does not stop, the last minibatch's policy_kl 0.2 does.
A = _stats((0.4, 0.3), (0.0, 0.1))
B = _stats((0.0, 0.0), (0.1, 0.2))


@pytest.mark.parametrize("rule, stops_a, stops_b", [("epoch_mean", True, False), ("last_minibatch", False, True)])
def test_early_stop_rule(rule, stops_a, stops_b):
    module = ALaRMModule(KeywordScorer(["x"]), ppo=PPOConfig(target_kl=0.1, early_stop=rule))
    assert module._should_stop(A) is stops_a
    assert module._should_stop(B) is stops_b
    off = ALaRMModule(KeywordScorer(["x"]), ppo=PPOConfig(target_kl=None, early_stop=rule))
    assert not off._should_stop(A) and not off._should_stop(B)


def test_kl_stop_factor_sets_the_margin_over_target_kl():
    epoch = _stats((0.19, 0.0), (0.21, 0.0))  # approx_kl averages 0.2 over the epoch

    def stops(**ppo) -> bool:
        return ALaRMModule(KeywordScorer(["x"]), ppo=PPOConfig(**ppo))._should_stop(epoch)

    assert stops(target_kl=0.1)  # default factor 1.5 (trl 0.5's _early_stop): 0.2 > 0.15
    assert not stops(target_kl=0.1, kl_stop_factor=2.0)  # 0.2 is not > 0.2
    assert stops(target_kl=0.1, kl_stop_factor=1.9)  # 0.2 > 0.19
    with pytest.raises(ValueError, match="kl_stop_factor"):
        PPOConfig(kl_stop_factor=0.0)
