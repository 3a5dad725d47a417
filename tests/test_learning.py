"""PPO must raise a simple known reward within a bounded number of rollouts (signs, masks and the KL term right)."""

import lightning.pytorch as pl
import torch

from alarm_pl.config import GenerationConfig, PolicyConfig, PPOConfig, RewardConfig, SelectionConfig
from alarm_pl.data.prompts import TinyMTDataModule
from alarm_pl.module import ALaRMModule
from alarm_pl.ppo.kl import FixedKLController
from tests.helpers import KeywordScorer


class RewardHistory(pl.Callback):
    """The raw holistic reward of every rollout, as logged by the module."""

    def __init__(self):
        self.holistic = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.holistic.append(float(trainer.callback_metrics["train/holistic_raw"]))


def train_on_keyword(rollouts: int, beta: float, seed: int = 0, sign: float = 1.0) -> list[float]:
    """PPO on the tiny seq2seq policy whose reward is the share of response words equal to "the" (times ``sign``);
    returns the share of every rollout."""
    pl.seed_everything(seed)
    module = ALaRMModule(
        holistic=KeywordScorer(["the"], sign=sign),
        policy=PolicyConfig(
            model_name_or_path="tiny:mt-seq2seq",
            lora_r=16,
            lora_alpha=32,
            lora_dropout=0.0,
            lora_target_modules=["q", "v", "lm_head"],
            value_head_detached=True,
        ),
        generation=GenerationConfig(max_new_tokens=24),
        # The share of "the" is maximised by the one-word answer "the": this toy reward keeps the −10 on responses of
        # ≤ 2 tokens (one word + EOS), so PPO must raise the share in real sentences. With the paper's rule (only
        # empty responses, the default since issue 7) the share still rises, but 30 rollouts miss the margin below
        # (seed 0: 0.090 → 0.137, against 0.090 → 0.169 here).
        reward=RewardConfig(strategy="holistic_only", holistic_weight=3.0, degenerate_max_tokens=2),
        selection=SelectionConfig(mode="fixed", aspects=[]),
        ppo=PPOConfig(ppo_epochs=4, num_minibatches=2, lam=1.0, target_kl=None),
        kl_controller=FixedKLController(beta),
        optimizer=lambda params: torch.optim.AdamW(params, lr=1e-3),
    )
    history = RewardHistory()
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=rollouts,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[history],
        limit_val_batches=0,
    )
    trainer.fit(module, TinyMTDataModule(num_train=32 * rollouts, batch_size=32, seed=3))
    return [sign * share for share in history.holistic]


def test_ppo_moves_a_keyword_reward_the_way_it_is_paid():
    """The same start and seed, paid for more "the" or for fewer: the two runs must part in the paid directions."""
    more, fewer = train_on_keyword(rollouts=30, beta=0.05), train_on_keyword(rollouts=30, beta=0.05, sign=-1.0)
    start = sum(more[:5]) / 5
    more_end, fewer_end = sum(more[-5:]) / 5, sum(fewer[-5:]) / 5
    # The converged SFT policy says "the" in ~14 % of its words, and a single run's direction over 30 rollouts depends
    # on the seed (measured: 0.147 → 0.137 for seed 0, → 0.29 for seed 1, paid for more); the two opposite runs part
    # (seed 0: 0.137 against 0.105; the spread of a 5-rollout mean is ~0.01). A sign error swaps them, a mask or KL
    # bug keeps them together.
    message = f"start {start:.3f}, paid for more {more_end:.3f}, paid for fewer {fewer_end:.3f}"
    assert more_end > fewer_end + 0.02, message
    assert fewer_end < start, message
