"""Supervised fine-tuning (SFT): the stage before ALaRM, from the same CLI and the same DataModules.

``python -m alarm_pl fit --config configs/mt_sft.yaml --export_dir DIR`` trains the policy on (prompt, reference)
pairs — every record of an SFT split needs a ``reference`` — with the loss on response tokens only (prompt tokens of
decoder-only models and padding carry none; every target ends with EOS), and writes to ``DIR`` a plain
``transformers`` model (a LoRA adapter merged in) that PPO takes as ``model.policy.model_name_or_path``.

Validation and test decode greedily (``generation.eval_do_sample``) and go through PPO's evaluation path: the same
scorers (by default sentence chrF against the reference as ``holistic``), the same generation files
(``eval/collector.py``) and corpus BLEU/chrF, logged as ``val/bleu`` and ``val/chrf`` beside the teacher-forced
``val/loss``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Optional, Sequence

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from alarm_pl.checkpointing import ResumeState, fingerprint
from alarm_pl.config import GenerationConfig, PolicyConfig, RewardConfig
from alarm_pl.data.prompts import DataFormatError, PromptBatch, PromptDataModule, PromptRecord
from alarm_pl.data.sft_batch import IGNORE_INDEX, SFTBatch, causal_batch, prompt_ids, seq2seq_batch, target_ids
from alarm_pl.eval.collector import EvalCollector
from alarm_pl.eval.hooks import GenerationEvaluation
from alarm_pl.eval.records import atomic_directory, jsonable, run_identity
from alarm_pl.models.policy import Policy
from alarm_pl.optim import optimizer_config
from alarm_pl.rewards.aspects.reference import ReferenceScorer
from alarm_pl.rewards.base import Scorer
from alarm_pl.rewards.pipeline import ScoringPipeline

_STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}


def response_nll(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean negative log-likelihood of the labelled tokens (the response tokens, EOS included).

    Args:
        logits: (B, L, V) logits; position t predicts ``labels[:, t]``.
        labels: (B, L) token ids, -100 where there is no loss (prompt, padding).

    Returns:
        Scalar: Σ −log softmax(logits)[label] over labelled positions / their number (only those positions are
        upcast to float32, so long prompts cost no extra memory).
    """
    keep = labels != IGNORE_INDEX  # (B, L)
    return torch.nn.functional.cross_entropy(logits[keep].float(), labels[keep])


def require_references(records: Sequence[PromptRecord], split: str) -> None:
    """Raise ``DataFormatError`` naming the first record of ``split`` without a reference (its file:line when the
    record came from a file, and always the split and index)."""
    for index, record in enumerate(records):
        if record.reference is None or not record.reference.strip():
            where = f"{split} split, example {index}"
            where = f"{record.source} ({where})" if record.source else where
            raise DataFormatError(
                f"{where}: no 'reference'; supervised fine-tuning learns from (prompt, reference) "
                f"pairs, so every example of an SFT split needs a non-empty reference"
            )


class SFTModule(GenerationEvaluation, pl.LightningModule):
    """Supervised fine-tuning of a causal or encoder-decoder policy, fully or through LoRA (QLoRA with
    ``policy.quantization_bits``, CUDA only).

    Args:
        policy: the policy to fine-tune (``lora_r: 0`` trains every weight; no value head is built).
        generation: decoding of validation/test generations (greedy unless ``eval_do_sample``).
        optimizer: optimizer over the trainable weights (e.g. ``torch.optim.AdamW`` with ``lr``).
        lr_scheduler: optional scheduler, stepped every optimizer step (``alarm_pl.optim.WarmupCosineLR`` for the
            authors' warm-up + cosine; its ``total_steps: null`` is filled in from the trainer).
        max_prompt_length: prompts are truncated to this many tokens, exactly as PPO truncates them.
        max_target_length: references are truncated to this many tokens, EOS included (authors' MT SFT: 128).
        holistic: the scorer written as ``holistic`` in the generation files (default: sentence chrF against the
            reference); name PPO's scorers here to make SFT's files comparable with PPO's.
        aspects: optional aspect scorers whose metrics go into the generation files.
        generations_dir: where validation/test generation files go (default: the logger's directory).
    """

    def __init__(
        self,
        policy: PolicyConfig = PolicyConfig(lora_r=0),
        generation: GenerationConfig = GenerationConfig(),
        optimizer: OptimizerCallable = torch.optim.AdamW,
        lr_scheduler: Optional[LRSchedulerCallable] = None,
        max_prompt_length: Optional[int] = 512,
        max_target_length: Optional[int] = 128,
        holistic: Optional[Scorer] = None,
        aspects: Optional[list[Scorer]] = None,
        generations_dir: Optional[str] = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["holistic", "aspects", "optimizer", "lr_scheduler"])
        self.strict_loading = False  # a LoRA checkpoint holds the adapter only
        self.policy = Policy(policy, for_ppo=False)
        self.scoring = ScoringPipeline(holistic or ReferenceScorer(metric="chrf"), aspects or [], RewardConfig())
        self.generation_config = generation
        self.optimizer_factory, self.scheduler_factory = optimizer, lr_scheduler
        self.max_prompt_length, self.max_target_length = max_prompt_length, max_target_length
        self.eval_collector = EvalCollector(generations_dir)

    # ------------------------------------------------------------------ Lightning hooks
    def setup(self, stage: str) -> None:
        self.policy.load()
        self.scoring.setup(self.device)
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if isinstance(datamodule, PromptDataModule):  # fail before training, not at the first bad batch
            for split in _STAGE_SPLITS.get(stage, ()):
                if split != "val" or stage != "fit" or self.trainer.limit_val_batches != 0:
                    require_references(datamodule.records(split), split)

    def on_fit_start(self) -> None:
        # from_pretrained returns the model in eval mode and Lightning keeps the modes it finds: dropout on for SFT
        self.policy.train()

    def teardown(self, stage: str) -> None:
        self.scoring.teardown()

    def transfer_batch_to_device(self, batch, device, dataloader_idx: int):
        return batch  # texts; tokenized on the device in the step

    def configure_optimizers(self):
        return optimizer_config(
            self.optimizer_factory, self.scheduler_factory, self.policy.trainable_parameters(), self.trainer
        )

    # ------------------------------------------------------------------ the loss
    def make_batch(self, prompts: list[str], references: list[str]) -> SFTBatch:
        """Tokenize (prompt, reference) pairs into model tensors on this module's device (``data/sft_batch.py``)."""
        tok = self.policy.tokenizer
        prompts_ids = prompt_ids(tok, prompts, self.max_prompt_length)
        targets = target_ids(tok, references, self.max_target_length)
        if self.policy.is_seq2seq:
            batch = seq2seq_batch(prompts_ids, targets, tok.pad_token_id, self.policy.decoder_start_token_id)
        else:
            batch = causal_batch(prompts_ids, targets, tok.pad_token_id, tok.padding_side)
        return SFTBatch(*(None if t is None else t.to(self.device) for t in batch))

    def logits(self, batch: SFTBatch) -> Tensor:
        """(B, L) → (B, L, V) logits aligned with ``batch.labels``."""
        if batch.decoder_input_ids is not None:
            return self.policy.model(
                input_ids=batch.input_ids,
                attention_mask=batch.attention_mask,
                decoder_input_ids=batch.decoder_input_ids,
            ).logits
        return self.policy.model(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids
        ).logits

    def _loss(self, batch: PromptBatch, split: str) -> tuple[Tensor, int]:
        for i, reference in enumerate(batch.references):
            if reference is None or not reference.strip():
                index = batch.indices[i] if batch.indices is not None else i
                raise DataFormatError(
                    f"{split} split, example {index}: no 'reference'; supervised fine-tuning needs "
                    "one for every example"
                )
        sft = self.make_batch(batch.prompts, batch.references)
        return response_nll(self.logits(sft), sft.labels), sft.num_target_tokens

    def training_step(self, batch: PromptBatch, batch_idx: int) -> Tensor:
        loss, tokens = self._loss(batch, "train")
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch))
        self.log("train/target_tokens", float(tokens), batch_size=len(batch))
        return loss

    # ------------------------------------------------------------------ evaluation
    def validation_step(self, batch: PromptBatch, batch_idx: int) -> None:
        self._evaluation_step(batch, "val")

    def test_step(self, batch: PromptBatch, batch_idx: int) -> None:
        self._evaluation_step(batch, "test")

    def _evaluation_step(self, batch: PromptBatch, stage: str) -> None:
        loss, tokens = self._loss(batch, stage)
        self.log(f"{stage}/loss", loss, sync_dist=True, batch_size=tokens)  # token-weighted over the epoch
        query_ids, query_mask = self.policy.tokenize_prompts(batch.prompts, self.max_prompt_length, self.device)
        generated = self.policy.generate(
            query_ids, query_mask, self.generation_config, self.generation_config.eval_do_sample
        )
        inputs = self.scoring.build_inputs(
            self.policy.tokenizer, batch.prompts, batch.references, batch.metadata, *generated
        )
        scored = self.scoring.score(inputs, update_normalizers=False)
        self.eval_collector.add(batch, inputs, scored, self.scoring.holistic_scorer.name, self.scoring.aspect_names)
        self.log(f"{stage}/response_length", inputs.lengths.float().mean(), sync_dist=True, batch_size=len(batch))

    def run_identity(self, stage: str) -> dict:
        """The ``run`` field of this run's generation records: the configuration's hash, the checkpoint, the
        decoding, the step and the stage."""
        return run_identity(
            jsonable(dict(self.hparams)),
            self.trainer.ckpt_path,
            jsonable(asdict(self.generation_config)),
            self.evaluated_step,
            stage=stage,
        )

    # ------------------------------------------------------------------ checkpoints and export
    def configure_callbacks(self) -> list[pl.Callback]:
        return [ResumeState()]  # dropout masks draw from the global generator: a resume restores it

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Keep the trainable weights only (the adapter under LoRA, every weight under full fine-tuning)."""
        trainable = {name for name, p in self.named_parameters() if p.requires_grad}
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in trainable}
        checkpoint.pop("hyper_parameters", None)  # the YAML and command line are the source of truth, as for PPO
        fingerprint.stamp(checkpoint, {"module": type(self).__name__, **self.policy.fingerprint()})

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Refuse a checkpoint of another module or policy (``checkpointing/fingerprint.py``)."""
        super().on_load_checkpoint(checkpoint)  # GenerationEvaluation: the checkpoint's step names the test files
        self.policy.load()
        fingerprint.check(
            checkpoint,
            {"module": type(self).__name__, **self.policy.fingerprint()},
            self.trainer.ckpt_path,
            rank_zero_warn,
        )

    def export(self, out_dir: str, merged: bool = False) -> None:
        """Write the fine-tuned policy to ``out_dir`` as one plain ``transformers`` model plus tokenizer (a LoRA
        adapter merged into the base weights), atomically: what PPO loads as ``model.policy.model_name_or_path``.

        Args:
            out_dir: the directory (replaced if it exists).
            merged: accepted for the CLI's module-agnostic ``--export_merged``; an SFT export is always merged.
        """
        with atomic_directory(out_dir) as tmp:
            self.policy.save_full_model(tmp)
