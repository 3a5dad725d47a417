"""Run by tests/test_ddp.py: a 2-process CPU DDP fit of a tiny policy; every rank saves its trainable weights."""

import os
import sys

import lightning.pytorch as pl
import torch

from alarm_pl.config import GenerationConfig, PolicyConfig, PPOConfig, RewardConfig, SelectionConfig
from alarm_pl.data.prompts import TinyMTDataModule
from alarm_pl.module import ALaRMModule
from alarm_pl.ppo.kl import FixedKLController

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests.helpers import KeywordScorer  # noqa: E402


class SavePrompts(pl.Callback):
    def __init__(self):
        self.prompts = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.prompts.extend(batch.prompts)


def main(out_dir: str) -> None:
    if os.environ.get("ALARM_PL_TEST_UNSYNCED") == "1":  # negative control: no reducer preparation per backward
        from lightning.pytorch.strategies import DDPStrategy

        DDPStrategy.pre_backward = lambda self, closure_loss: None
    pl.seed_everything(0)
    module = ALaRMModule(
        holistic=KeywordScorer(["the"]),
        policy=PolicyConfig(model_name_or_path="tiny:mt-causal", lora_r=4, lora_alpha=8, lora_dropout=0.0),
        generation=GenerationConfig(max_new_tokens=8),
        reward=RewardConfig(strategy="holistic_only"),
        selection=SelectionConfig(mode="fixed", aspects=[]),
        ppo=PPOConfig(ppo_epochs=2, num_minibatches=2, gradient_accumulation_steps=1, target_kl=None),
        kl_controller=FixedKLController(0.05),
        optimizer=lambda params: torch.optim.AdamW(params, lr=1e-2),
    )
    prompts = SavePrompts()
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_steps=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[prompts],
    )
    data = TinyMTDataModule(num_train=64, num_test=7, batch_size=4, eval_batch_size=2)
    trainer.fit(module, data)
    weights = {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}
    module.eval_collector.generations_dir = os.path.join(out_dir, "generations")
    trainer.test(module, data)  # 7 prompts on 2 ranks: the sampler pads one rank with a repeated prompt
    torch.save(
        {"weights": weights, "prompts": prompts.prompts, "beta": module.kl_controller.value},
        os.path.join(out_dir, f"rank{trainer.global_rank}.pt"),
    )


if __name__ == "__main__":
    main(sys.argv[1])
