"""Reward-model training: a sequence classifier with one output learns pairwise preferences (Bradley–Terry).

``python -m alarm_pl fit --config configs/tiny_rm.yaml --export_dir DIR`` trains any
``AutoModelForSequenceClassification`` (fully, or through a LoRA adapter with the head trained in full) on JSON Lines
pairs ``{"prompt", "chosen", "rejected"}`` (``data/preferences.py``) with the loss

    L = −mean_i log σ(r(x_i, y_i^chosen) − r(x_i, y_i^rejected))

(the Bradley–Terry model of pairwise comparisons, as InstructGPT's reward model, Ouyang et al. 2022, eq. 1). A text is
the template filled with the prompt and the response, and its reward is the head read at its last real token, with the
conventions of the frozen scorer (``models/reward_model.py``: right padding with an id no real token uses, left
truncation), so training and scoring read the same position. ``export`` writes a plain ``transformers`` directory
(adapter merged) with the template in its config: ``RewardModelScorer`` loads it as ``model_name_or_path`` and, when
its own ``template`` is unset, reads inputs exactly as they were trained.

Logged: ``train/loss``, ``train/accuracy``, and for validation and test ``<stage>/loss``, ``<stage>/accuracy`` (the
share of held-out pairs whose chosen response gets the strictly higher reward; a tie counts as wrong),
``<stage>/margin`` (mean r(chosen) − r(rejected)), ``<stage>/reward_chosen`` and ``<stage>/reward_rejected``.
"""

from __future__ import annotations

import copy
import logging
from typing import Optional

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor

from alarm_pl.checkpointing import ResumeState
from alarm_pl.config import RewardModelConfig
from alarm_pl.data.preferences import PreferenceBatch
from alarm_pl.eval.records import atomic_directory
from alarm_pl.models.loading import resolve_model_reference, torch_dtype_from_str
from alarm_pl.models.reward_model import (
    configure_reward_tokenizer,
    hf_config,
    last_token_rewards,
    model_input_limit,
    reward_inputs,
)
from alarm_pl.models.templates import TEMPLATE_KEY, ULTRARM_TEMPLATE, format_template
from alarm_pl.optim import optimizer_config

log = logging.getLogger(__name__)


def bradley_terry_loss(chosen: Tensor, rejected: Tensor) -> Tensor:
    """Negative log-likelihood of the preferences under the Bradley–Terry model.

    Args:
        chosen: (B,) rewards of the preferred responses.
        rejected: (B,) rewards of the other responses.

    Returns:
        Scalar: mean_i −log σ(chosen_i − rejected_i), computed in float32 with ``logsigmoid`` (stable for large
        margins of either sign).
    """
    return -torch.nn.functional.logsigmoid(chosen.float() - rejected.float()).mean()


def pairwise_accuracy(chosen: Tensor, rejected: Tensor) -> Tensor:
    """Share of pairs whose chosen response gets the strictly higher reward (a tie counts as wrong).

    Args:
        chosen, rejected: (B,) rewards.

    Returns:
        Scalar float in [0, 1].
    """
    return (chosen > rejected).float().mean()


class RewardModelModule(pl.LightningModule):
    """Trains a one-output sequence classifier on preference pairs (see the module docstring).

    Args:
        reward_model: the model to train (full or LoRA).
        template: the reward model's input; placeholders ``{prompt}`` and ``{response}`` (UltraRM's by default). The
            export stores it, so a scorer reads the trained model the same way.
        max_length: tokens per input (capped at the model's limit); longer inputs lose their beginning.
        optimizer: optimizer over the trainable weights (e.g. ``torch.optim.AdamW`` with ``lr``).
        lr_scheduler: optional scheduler, stepped every optimizer step (``alarm_pl.optim.WarmupCosineLR`` with
            ``total_steps: null`` is filled in from the trainer).
    """

    def __init__(
        self,
        reward_model: RewardModelConfig = RewardModelConfig(),
        template: str = ULTRARM_TEMPLATE,
        max_length: int = 512,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        lr_scheduler: Optional[LRSchedulerCallable] = None,
    ) -> None:
        super().__init__()
        format_template(template, "", "", "", "")  # a template without {response} fails here, not at the first batch
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        self.strict_loading = False  # a LoRA checkpoint holds the adapter and the head only
        self.config, self.template, self.max_length = reward_model, template, max_length
        self.optimizer_factory, self.scheduler_factory = optimizer, lr_scheduler
        self.model: Optional[torch.nn.Module] = None
        self.tokenizer = None

    # ------------------------------------------------------------------ loading
    def load(self) -> None:
        """Load tokenizer and model (a new head if the checkpoint has none), add the adapter. Idempotent."""
        if self.model is not None:
            return
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        cfg = self.config
        what = "model.init_args.reward_model.model_name_or_path"
        path = resolve_model_reference(cfg.model_name_or_path, what, "sequence", cfg.dummy_overrides)
        model, info = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=1, dtype=torch_dtype_from_str(cfg.dtype), output_loading_info=True
        )
        if info.get("missing_keys"):
            log.warning(
                "%s %r: weights %s were not in the checkpoint and start randomly initialised (expected for a "
                "new reward head)",
                what,
                cfg.model_name_or_path,
                sorted(info["missing_keys"])[:5],
            )
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        configure_reward_tokenizer(self.tokenizer)
        model.config.pad_token_id = self.tokenizer.pad_token_id
        self.max_length = min(self.max_length, model_input_limit(model, self.tokenizer))
        self.model = self._adapt(model)

    def _adapt(self, model: torch.nn.Module) -> torch.nn.Module:
        if self.config.lora_r == 0:
            return model
        from peft import LoraConfig, TaskType, get_peft_model

        cfg = self.config
        lora = LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=cfg.lora_target_modules,
        )
        return get_peft_model(model, lora)  # SEQ_CLS: the classification head is trained in full

    # ------------------------------------------------------------------ Lightning hooks
    def setup(self, stage: str) -> None:
        self.load()

    def on_fit_start(self) -> None:
        # from_pretrained returns eval mode and Lightning keeps the modes it finds: dropout on for training
        self.model.train()

    def transfer_batch_to_device(self, batch, device, dataloader_idx: int):
        return batch  # texts; tokenized in the step

    def configure_callbacks(self) -> list[pl.Callback]:
        return [ResumeState()]  # dropout masks draw from the global generator: a resume restores it

    def configure_optimizers(self):
        return optimizer_config(
            self.optimizer_factory,
            self.scheduler_factory,
            [p for p in self.parameters() if p.requires_grad],
            self.trainer,
        )

    # ------------------------------------------------------------------ rewards and loss
    def rewards(self, prompts: list[str], responses: list[str]) -> Tensor:
        """(B,) rewards of (prompt, response) pairs: the template filled, the head read at the last real token."""
        texts = [format_template(self.template, p, r)[0] for p, r in zip(prompts, responses)]
        ids, mask, pad_id = reward_inputs(self.tokenizer, texts, self.max_length)
        return last_token_rewards(self.model, ids, mask, pad_id)

    def pair_rewards(self, batch: PreferenceBatch) -> tuple[Tensor, Tensor]:
        """(B,) rewards of the chosen and (B,) of the rejected responses, from one forward over the 2B texts."""
        both = self.rewards(batch.prompts + batch.prompts, batch.chosen + batch.rejected)  # (2B,)
        return both[: len(batch)], both[len(batch) :]

    def training_step(self, batch: PreferenceBatch, batch_idx: int) -> Tensor:
        chosen, rejected = self.pair_rewards(batch)
        loss = bradley_terry_loss(chosen, rejected)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch))
        self.log("train/accuracy", pairwise_accuracy(chosen, rejected), batch_size=len(batch))
        return loss

    def validation_step(self, batch: PreferenceBatch, batch_idx: int) -> None:
        self._evaluation_step(batch, "val")

    def test_step(self, batch: PreferenceBatch, batch_idx: int) -> None:
        self._evaluation_step(batch, "test")

    def _evaluation_step(self, batch: PreferenceBatch, stage: str) -> None:
        """Pair-weighted epoch means (Lightning weights each batch by ``batch_size``), so ``<stage>/accuracy`` is the
        exact share over the whole split."""
        chosen, rejected = self.pair_rewards(batch)
        size = len(batch)
        self.log(f"{stage}/loss", bradley_terry_loss(chosen, rejected), sync_dist=True, batch_size=size)
        self.log(
            f"{stage}/accuracy",
            pairwise_accuracy(chosen, rejected),
            sync_dist=True,
            batch_size=size,
            prog_bar=stage == "val",
        )
        self.log(f"{stage}/margin", (chosen - rejected).float().mean(), sync_dist=True, batch_size=size)
        self.log(f"{stage}/reward_chosen", chosen.float().mean(), sync_dist=True, batch_size=size)
        self.log(f"{stage}/reward_rejected", rejected.float().mean(), sync_dist=True, batch_size=size)

    # ------------------------------------------------------------------ checkpoints and export
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Keep the trainable weights only (the adapter and the head under LoRA, every weight otherwise)."""
        trainable = {name for name, p in self.named_parameters() if p.requires_grad}
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in trainable}
        checkpoint.pop("hyper_parameters", None)  # the YAML and command line are the source of truth

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.load()

    def export(self, out_dir: str, merged: bool = True) -> None:
        """Write the trained reward model to ``out_dir``, atomically, as one plain ``transformers`` sequence
        classifier (a LoRA adapter merged in) plus its tokenizer, with the training template in its config
        (``TEMPLATE_KEY``): ``RewardModelScorer(model_name_or_path=out_dir)`` scores with it as trained.

        Args:
            out_dir: the directory (replaced if it exists).
            merged: accepted for the CLI's module-agnostic ``--export_merged``; the export is always merged.
        """
        model = copy.deepcopy(self.model)
        if hasattr(model, "merge_and_unload"):
            model = model.merge_and_unload()
        config = hf_config(model)
        setattr(config, TEMPLATE_KEY, self.template)
        config.pad_token_id = self.tokenizer.pad_token_id
        with atomic_directory(out_dir) as tmp:
            model.save_pretrained(tmp)
            self.tokenizer.save_pretrained(tmp)
