"""Offline tiny assets: tokenizers trained in-process and small models built from config objects.

A configuration names them as ``tiny:<name>`` wherever a model path goes. On first use the asset is built
deterministically (seeded) and saved with ``save_pretrained`` under ``$ALARM_PL_CACHE`` (default
``~/.cache/alarm_pl``), then loaded through the same code path as any local model. Nothing is downloaded.

Assets:
- ``mt-seq2seq``: a T5-style encoder-decoder (2+2 layers, d_model 64) with a SentencePiece-style tokenizer,
  fine-tuned to convergence by the SFT stage (``alarm_pl.sft``) on the 512 labelled examples of the tiny task's
  ``sft`` pool, so that RL starts from a converged SFT policy that still leaves room on held-out prompts, as the
  paper's QA policy was SFT'd on 1k examples.
- ``mt-causal``: the decoder-only twin (GPT-2 style, 2 layers, n_embd 64, byte-level BPE).
- ``mt-seq2seq-init`` / ``mt-causal-init``: the same two models freshly initialised, before any training (the
  starting point of ``configs/tiny_sft.yaml``).
- ``mt-reward-init``: a freshly initialised GPT-2-style sequence classifier with one output (2 layers, n_embd 64,
  byte-level BPE), the starting point of the tiny task's learned reward model (``configs/tiny_rm.yaml``).
- ``bench-causal`` / ``bench-reward``: the benchmark spec of ``bench/`` (GPT-2 style, n_embd 128, 4 layers, 4 heads,
  byte-level BPE of ~1000 tokens; a policy and a frozen sequence-classification reward model of the same size).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import json
import logging
import random
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import torch

from alarm_pl.assets.cache import build_once, cache_dir
from alarm_pl.data.tiny_mt import corpus

TINY_SCHEME = "tiny:"
_VERSION = 3  # 2: the warm start is the SFT stage (alarm_pl.sft), EOS-terminated targets; 3: tiny task v2 (pools)


@dataclass(frozen=True)
class TinySpec:
    """What one tiny asset is made of (the hash of this spec names its cache directory).

    The supervised warm start (``sft_steps > 0``) is the SFT stage itself (``alarm_pl.sft.SFTModule``, full
    fine-tuning, AdamW at ``sft_lr``, no schedule, no gradient clipping) for ``sft_steps`` optimizer steps on the
    train split of the DataModule ``sft_data`` built with ``sft_data_args`` and ``batch_size=sft_batch_size`` (by
    default the 512 examples of the tiny task's ``sft`` pool, which never shares a sentence with the ``rl``, ``val``
    and ``test`` pools of the PPO configs). Change any
    of these values and the asset is rebuilt under a new name.
    """

    kind: str  # "seq2seq" | "causal" | "reward"
    tokenizer: str  # "sentencepiece" | "byte_bpe"
    vocab_size: int
    width: int
    layers: int
    heads: int
    sft_steps: int = 0
    sft_lr: float = 3e-3
    sft_batch_size: int = 32
    sft_data: str = "alarm_pl.data.prompts.TinyMTDataModule"
    sft_data_args: dict = field(
        default_factory=lambda: {"num_train": 512, "train_pool": "sft", "sloppy_references": 0.6}
    )
    seed: int = 0


TINY_ASSETS: dict[str, TinySpec] = {
    # SFT to convergence on the 512 examples of the task's `sft` pool: 60 epochs of 16 steps (configs/tiny_sft.yaml,
    # the same recipe with validation every 80 steps: val loss 0.943 at step 480, lowest 0.780 at 800, 0.799–0.803
    # from 880 to 1120; val chrF 65.3 at 480, 73.0–73.7 from 800 to 1120, on the 2026-11-27 Intel machine; the build
    # follows the CPU's float kernels: on a 2026-12-07 AMD machine val chrF is flat at 64.1–65.2 from step 400, its
    # val loss lowest 0.973 at 320 — docs/ABLATION.md, the 2026-12-07 re-run)
    "mt-seq2seq": TinySpec("seq2seq", "sentencepiece", 1000, 64, 2, 4, sft_steps=960),
    "mt-causal": TinySpec("causal", "byte_bpe", 1000, 64, 2, 4, sft_steps=480),
    # the same models before any training (the starting point of configs/tiny_sft.yaml)
    "mt-seq2seq-init": TinySpec("seq2seq", "sentencepiece", 1000, 64, 2, 4),
    "mt-causal-init": TinySpec("causal", "byte_bpe", 1000, 64, 2, 4),
    # the starting point of the tiny task's learned holistic reward model (configs/tiny_rm.yaml)
    "mt-reward-init": TinySpec("reward", "byte_bpe", 1000, 64, 2, 4),
    "bench-causal": TinySpec("causal", "byte_bpe", 1000, 128, 4, 4),
    "bench-reward": TinySpec("reward", "byte_bpe", 1000, 128, 4, 4),
}


def ensure_tiny_asset(name: str, key: str = "model path") -> Path:
    """Directory of the tiny asset ``name``, built on first use (``cache.build_once``).

    Raises:
        ValueError: ``name`` is not a known tiny asset (``key`` is the config key it came from).
    """
    if name not in TINY_ASSETS:
        raise ValueError(f"{key}: unknown tiny asset 'tiny:{name}'; known: {sorted(TINY_ASSETS)}")
    spec = TINY_ASSETS[name]
    digest = hashlib.sha256(json.dumps([_VERSION, asdict(spec)], sort_keys=True).encode()).hexdigest()[:10]
    return build_once(
        cache_dir() / "tiny" / f"{name}-{digest}", lambda out: build_tiny_asset(spec, out), f"tiny:{name}"
    )


def build_tiny_asset(spec: TinySpec, out_dir: Path) -> None:
    """Train the tokenizer, build the model from a config object, optionally SFT it, and save both.

    Deterministic for a spec, and invisible to the caller's random streams: torch, numpy and Python RNG states are
    restored afterwards, so a run that builds an asset behaves like a later run that finds it in the cache."""
    from alarm_pl.assets.tokenizer_builders import train_byte_bpe, train_sentencepiece

    with preserved_rng_states():
        torch.manual_seed(spec.seed)
        texts = corpus(4000, seed=spec.seed + 1000)
        train = train_sentencepiece if spec.tokenizer == "sentencepiece" else train_byte_bpe
        tokenizer = train(texts, vocab_size=spec.vocab_size)
        model = _build_model(spec, tokenizer)
        if not spec.sft_steps:
            model.save_pretrained(out_dir)
            tokenizer.save_pretrained(out_dir)
            return
        with tempfile.TemporaryDirectory(prefix=".init-", dir=out_dir.parent) as start:
            model.save_pretrained(start)
            tokenizer.save_pretrained(start)
            _supervised_warm_start(start, spec, out_dir)


@contextlib.contextmanager
def preserved_rng_states() -> Iterator[None]:
    """Run the body, then put back the torch (CPU and CUDA), numpy and Python random states of before."""
    import numpy as np

    states = (
        random.getstate(),
        np.random.get_state(),
        torch.get_rng_state(),
        torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
    )
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        if states[3] is not None:
            torch.cuda.set_rng_state_all(states[3])


def _build_model(spec: TinySpec, tokenizer):
    from transformers import (
        GPT2Config,
        GPT2ForSequenceClassification,
        GPT2LMHeadModel,
        T5Config,
        T5ForConditionalGeneration,
    )

    vocab = len(tokenizer)
    if spec.kind == "seq2seq":
        config = T5Config(
            vocab_size=vocab,
            d_model=spec.width,
            d_ff=4 * spec.width,
            d_kv=spec.width // spec.heads,
            num_layers=spec.layers,
            num_decoder_layers=spec.layers,
            num_heads=spec.heads,
            relative_attention_num_buckets=16,
            dropout_rate=0.0,
            feed_forward_proj="relu",
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.pad_token_id,
            tie_word_embeddings=True,
        )
        return T5ForConditionalGeneration(config)
    config = GPT2Config(
        vocab_size=vocab,
        n_embd=spec.width,
        n_layer=spec.layers,
        n_head=spec.heads,
        n_positions=256,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=1,
    )
    return GPT2ForSequenceClassification(config) if spec.kind == "reward" else GPT2LMHeadModel(config)


def _supervised_warm_start(start_dir: str, spec: TinySpec, out_dir: Path) -> None:
    """Fine-tune the model saved in ``start_dir`` with the SFT stage (see ``TinySpec``) on the CPU, quietly, and
    write the result to ``out_dir``: a short run gives a weak starting policy, like the paper's SFT checkpoints."""
    import lightning.pytorch as pl
    from lightning.fabric.utilities.warnings import PossibleUserWarning
    from lightning.pytorch.strategies import SingleDeviceStrategy

    from alarm_pl.config import PolicyConfig
    from alarm_pl.sft import SFTModule

    module_name, _, class_name = spec.sft_data.rpartition(".")
    data = getattr(importlib.import_module(module_name), class_name)(
        **spec.sft_data_args, batch_size=spec.sft_batch_size
    )
    module = SFTModule(
        policy=PolicyConfig(model_name_or_path=start_dir, lora_r=0),
        optimizer=functools.partial(torch.optim.AdamW, lr=spec.sft_lr),
        max_prompt_length=None,
        max_target_length=None,
    )
    lightning_log = logging.getLogger("lightning.pytorch")
    level = lightning_log.level
    lightning_log.setLevel(logging.WARNING)  # no "GPU available" banner (printed by Trainer()) in the caller's run
    try:
        trainer = pl.Trainer(
            accelerator="cpu",
            strategy=SingleDeviceStrategy(torch.device("cpu")),
            max_steps=spec.sft_steps,
            max_epochs=-1,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PossibleUserWarning)  # few workers, small batches: expected here
            for expected in ("You have overridden `transfer_batch_to_device`", r"`isinstance\(treespec, LeafSpec\)`"):
                warnings.filterwarnings("ignore", message=expected)
            trainer.fit(module, datamodule=data)
    finally:
        lightning_log.setLevel(level)
    module.policy.save_full_model(str(out_dir))
