"""KL controllers: hand-computed update sequences, checkpoint round trips, argument validation."""

import math

import pytest

from alarm_pl.ppo.kl import AdaptiveKLController, FixedKLController, KLController


def test_fixed_controller_never_moves():
    ctl = FixedKLController(0.05)
    for kl in (0.0, 6.0, 100.0):
        ctl.update(kl, n_steps=1000)
    assert ctl.value == 0.05
    assert isinstance(ctl, KLController)


def test_adaptive_controller_hand_sequence():
    ctl = AdaptiveKLController(init_coef=0.2, target=6.0, horizon=10000)
    # KL 9: e = 9/6 - 1 = 0.5 -> clipped to 0.2 ; β = 0.2 * (1 + 0.2 * 1000/10000) = 0.2 * 1.02 = 0.204
    ctl.update(9.0, n_steps=1000)
    assert ctl.value == pytest.approx(0.204)
    # KL 5.4: e = 0.9 - 1 = -0.1 ; β = 0.204 * (1 - 0.1 * 2000/10000) = 0.204 * 0.98 = 0.19992
    ctl.update(5.4, n_steps=2000)
    assert ctl.value == pytest.approx(0.19992)
    # KL 0: e = -1 -> clipped to -0.2 ; β = 0.19992 * (1 - 0.2 * 500/10000) = 0.19992 * 0.99 = 0.1979208
    ctl.update(0.0, n_steps=500)
    assert ctl.value == pytest.approx(0.1979208)
    # KL on target: e = 0 ; β unchanged
    ctl.update(6.0, n_steps=10000)
    assert ctl.value == pytest.approx(0.1979208)


def test_adaptive_controller_state_dict_round_trip_continues_identically():
    original = AdaptiveKLController(init_coef=0.2, target=6.0, horizon=10000)
    original.update(9.0, n_steps=1000)  # β = 0.204
    restored = AdaptiveKLController(init_coef=0.2, target=6.0, horizon=10000)
    restored.load_state_dict(original.state_dict())
    assert restored.value == pytest.approx(0.204)
    original.update(3.0, n_steps=4000)  # e = -0.5 -> -0.2 ; β = 0.204 * (1 - 0.08) = 0.18768
    restored.update(3.0, n_steps=4000)
    assert restored.value == original.value == pytest.approx(0.18768)


def test_fixed_controller_state_dict_round_trip():
    saved = FixedKLController(0.3).state_dict()
    restored = FixedKLController(0.1)
    restored.load_state_dict(saved)
    assert restored.value == 0.3


def test_load_state_dict_missing_key_names_it():
    with pytest.raises(KeyError, match="value"):
        AdaptiveKLController().load_state_dict({"beta": 0.1})


@pytest.mark.parametrize(
    "kwargs, key",
    [({"init_coef": -0.1}, "init_coef"), ({"target": 0.0}, "target"), ({"horizon": 0}, "horizon")],
)
def test_adaptive_controller_rejects_bad_arguments(kwargs, key):
    with pytest.raises(ValueError, match=key):
        AdaptiveKLController(**kwargs)


def test_adaptive_controller_rejects_nan_kl():
    ctl = AdaptiveKLController()
    with pytest.raises(ValueError, match="current_kl"):
        ctl.update(math.nan, n_steps=8)
    assert ctl.value == 0.2  # unchanged
