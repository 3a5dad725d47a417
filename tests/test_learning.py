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


def train_on_keyword(rollouts: int, beta: float, seed: int = 0) -> list[float]:
    """PPO on the tiny seq2seq policy whose reward is the share of response words equal to "the"."""
    pl.seed_everything(seed)
    module = ALaRMModule(
        holistic=KeywordScorer(["the"]),
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
    return history.holistic


def test_ppo_raises_a_keyword_reward():
    shares = train_on_keyword(rollouts=30, beta=0.05)
    first, last = sum(shares[:5]) / 5, sum(shares[-5:]) / 5
    # the SFT policy says "the" in ~14 % of its words (measured, seed 0: 0.138 → 0.170 over 30 rollouts; the
    # rollout-to-rollout spread of a 5-rollout mean is ~0.006); a sign, mask or KL bug keeps it there or lowers it
    assert last > first + 0.02, f"share of 'the' did not rise: first {first:.3f}, last {last:.3f}: {shares}"
