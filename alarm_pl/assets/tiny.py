"""Offline tiny assets: tokenizers trained in-process and small models built from config objects.

A configuration names them as ``tiny:<name>`` wherever a model path goes. On first use the asset is built
deterministically (seeded) and saved with ``save_pretrained`` under ``$ALARM_PL_CACHE`` (default
``~/.cache/alarm_pl``), then loaded through the same code path as any local model. Nothing is downloaded.

Assets:
- ``mt-seq2seq``: a T5-style encoder-decoder (2+2 layers, d_model 64) with a SentencePiece-style tokenizer, briefly
  supervised on the tiny Spanish→English task so that RL starts from a weak SFT policy, as in the paper.
- ``mt-causal``: the decoder-only twin (GPT-2 style, 2 layers, n_embd 64, byte-level BPE).
- ``bench-causal`` / ``bench-reward``: the benchmark spec of ``bench/`` (GPT-2 style, n_embd 128, 4 layers, 4 heads,
  byte-level BPE of ~1000 tokens; a policy and a frozen sequence-classification reward model of the same size).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from alarm_pl.data.tiny_mt import PROMPT_PREFIX, corpus, sentence_pairs

TINY_SCHEME = "tiny:"
_VERSION = 1


@dataclass(frozen=True)
class TinySpec:
    """What one tiny asset is made of (the hash of this spec names its cache directory)."""

    kind: str  # "seq2seq" | "causal" | "reward"
    tokenizer: str  # "sentencepiece" | "byte_bpe"
    vocab_size: int
    width: int
    layers: int
    heads: int
    sft_steps: int = 0
    sft_lr: float = 3e-3
    sft_batch_size: int = 32
    seed: int = 0


TINY_ASSETS: dict[str, TinySpec] = {
    "mt-seq2seq": TinySpec("seq2seq", "sentencepiece", 600, 64, 2, 4, sft_steps=70),
    "mt-causal": TinySpec("causal", "byte_bpe", 600, 64, 2, 4, sft_steps=70),
    "bench-causal": TinySpec("causal", "byte_bpe", 1000, 128, 4, 4),
    "bench-reward": TinySpec("reward", "byte_bpe", 1000, 128, 4, 4),
}


def cache_dir() -> Path:
    return Path(os.environ.get("ALARM_PL_CACHE", Path.home() / ".cache" / "alarm_pl"))


def resolve_model_path(name_or_path: str, key: str) -> str:
    """A ``tiny:<name>`` asset (built on first use) or whatever ``resolve_pretrained`` accepts."""
    if name_or_path.startswith(TINY_SCHEME):
        return str(ensure_tiny_asset(name_or_path[len(TINY_SCHEME):], key))
    from alarm_pl.models.loading import resolve_pretrained

    return resolve_pretrained(name_or_path, key)


def ensure_tiny_asset(name: str, key: str = "model path") -> Path:
    """Directory of the tiny asset ``name``, building it atomically (temp dir + rename) when missing."""
    if name not in TINY_ASSETS:
        raise ValueError(f"{key}: unknown tiny asset 'tiny:{name}'; known: {sorted(TINY_ASSETS)}")
    spec = TINY_ASSETS[name]
    digest = hashlib.sha256(json.dumps([_VERSION, asdict(spec)], sort_keys=True).encode()).hexdigest()[:10]
    target = cache_dir() / "tiny" / f"{name}-{digest}"
    if (target / "config.json").exists():
        return target
    if _distributed_rank() > 0:  # transformers saves model files on rank 0 only: let rank 0 build, then read it
        torch.distributed.barrier()
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        build_tiny_asset(spec, tmp)
        if not (tmp / "config.json").exists() or not any(tmp.glob("*.safetensors")):
            raise RuntimeError(f"building tiny:{name} in {tmp} wrote no complete model: {sorted(os.listdir(tmp))}")
        os.replace(tmp, target)
    except OSError:
        if not (target / "config.json").exists():  # a concurrent builder did not win either
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if _distributed_rank() == 0:
            torch.distributed.barrier()
    return target


def _distributed_rank() -> int:
    """This process's rank when a process group of several processes is running, else -1."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist.get_rank()
    return -1


def build_tiny_asset(spec: TinySpec, out_dir: Path) -> None:
    """Train the tokenizer, build the model from a config object, optionally SFT it, and save both."""
    from alarm_pl.assets.tokenizer_builders import train_byte_bpe, train_sentencepiece

    torch.manual_seed(spec.seed)
    texts = corpus(4000, seed=spec.seed + 1000)
    train = train_sentencepiece if spec.tokenizer == "sentencepiece" else train_byte_bpe
    tokenizer = train(texts, vocab_size=spec.vocab_size)
    model = _build_model(spec, tokenizer)
    if spec.sft_steps:
        _supervised_warm_start(model, tokenizer, spec)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def _build_model(spec: TinySpec, tokenizer):
    from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel, T5Config, T5ForConditionalGeneration

    vocab = len(tokenizer)
    if spec.kind == "seq2seq":
        config = T5Config(vocab_size=vocab, d_model=spec.width, d_ff=4 * spec.width, d_kv=spec.width // spec.heads,
                          num_layers=spec.layers, num_decoder_layers=spec.layers, num_heads=spec.heads,
                          relative_attention_num_buckets=16, dropout_rate=0.0, feed_forward_proj="relu",
                          pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                          decoder_start_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
        return T5ForConditionalGeneration(config)
    config = GPT2Config(vocab_size=vocab, n_embd=spec.width, n_layer=spec.layers, n_head=spec.heads, n_positions=256,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=tokenizer.bos_token_id,
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, num_labels=1)
    return GPT2ForSequenceClassification(config) if spec.kind == "reward" else GPT2LMHeadModel(config)


def _supervised_warm_start(model, tokenizer, spec: TinySpec) -> None:
    """A short teacher-forced SFT on the tiny task (a weak starting policy, like the paper's SFT checkpoints)."""
    pairs = sentence_pairs(spec.sft_steps * spec.sft_batch_size, seed=spec.seed + 2000)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.sft_lr)
    model.train()
    for step in range(spec.sft_steps):
        batch = pairs[step * spec.sft_batch_size:(step + 1) * spec.sft_batch_size]
        loss = _sft_loss(model, tokenizer, [PROMPT_PREFIX + es for es, _ in batch], [en for _, en in batch], spec.kind)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


def _sft_loss(model, tokenizer, prompts: list[str], targets: list[str], kind: str) -> torch.Tensor:
    eos = tokenizer.eos_token_id
    if kind == "seq2seq":
        enc = tokenizer(prompts, return_tensors="pt", padding=True)
        labels = tokenizer(targets, return_tensors="pt", padding=True)["input_ids"]
        labels = labels.masked_fill(labels == tokenizer.pad_token_id, -100)
        return model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], labels=labels).loss
    rows, label_rows = [], []
    for prompt, target in zip(prompts, targets):
        p_ids = tokenizer(prompt)["input_ids"]
        t_ids = tokenizer(target)["input_ids"] + [eos]
        rows.append(p_ids + t_ids)
        label_rows.append([-100] * len(p_ids) + t_ids)
    width = max(len(r) for r in rows)
    input_ids = torch.tensor([r + [tokenizer.pad_token_id] * (width - len(r)) for r in rows])
    labels = torch.tensor([r + [-100] * (width - len(r)) for r in label_rows])
    attention = (labels != -100) | (torch.arange(width)[None, :] < torch.tensor([len(r) for r in rows])[:, None])
    return model(input_ids=input_ids, attention_mask=attention.long(), labels=labels).loss
