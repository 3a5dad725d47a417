"""Supervised examples (prompt, reference) → model tensors with the loss on response tokens only.

Label convention (both architectures): ``labels`` has the shape of the logits' first two dimensions and holds, at
each logits position, the token that position must predict, or -100 where nothing is learned (prompt tokens,
padding). The loss is then the mean negative log-likelihood over the positions whose label is not -100
(``alarm_pl.sft.response_nll``).

Every target ends with the tokenizer's EOS, so the policy learns to stop; a target longer than ``max_target_length``
is cut to ``max_target_length - 1`` tokens before its EOS (as T5 tokenizers truncate).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor

IGNORE_INDEX = -100  # the ignore_index of torch.nn.functional.cross_entropy


class SFTBatch(NamedTuple):
    """Model inputs of one supervised batch.

    Attributes:
        input_ids: (B, S) encoder input (seq2seq) or prompt followed by response (causal), padded with the pad id.
        attention_mask: (B, S) long, 1 on real tokens.
        labels: (B, L) the token each logits position predicts, -100 where there is no loss. Seq2seq: L is the
            decoder length (labels[i, t] is response token t). Causal: L = S and labels[i, t] = input_ids[i, t + 1]
            where that is a response token.
        decoder_input_ids: (B, L) seq2seq only: the decoder start token, then the response shifted right (padding
            where labels are -100). None for causal models.
        position_ids: (B, S) causal only: 0 at each row's first real token, so that left padding shifts nothing.
    """

    input_ids: Tensor
    attention_mask: Tensor
    labels: Tensor
    decoder_input_ids: Optional[Tensor] = None
    position_ids: Optional[Tensor] = None

    @property
    def num_target_tokens(self) -> int:
        """Number of positions that carry loss (response tokens, EOS included)."""
        return int((self.labels != IGNORE_INDEX).sum())


def target_ids(tokenizer, targets: list[str], max_length: Optional[int]) -> list[list[int]]:
    """Token ids of each target without special tokens, cut to ``max_length - 1``, then the EOS id appended."""
    if tokenizer.eos_token_id is None:
        raise ValueError("supervised fine-tuning needs a tokenizer with an EOS token (the policy learns to stop)")
    if max_length is not None and max_length < 2:
        raise ValueError(f"max_target_length must be >= 2 (at least one token and the EOS), got {max_length}")
    rows = tokenizer(targets, add_special_tokens=False)["input_ids"]
    keep = None if max_length is None else max_length - 1
    return [row[:keep] + [tokenizer.eos_token_id] for row in rows]


def prompt_ids(tokenizer, prompts: list[str], max_length: Optional[int]) -> list[list[int]]:
    """Token ids of each prompt exactly as ``Policy.tokenize_prompts`` makes them for generation (special tokens
    and truncation included), unpadded."""
    return tokenizer(prompts, truncation=max_length is not None, max_length=max_length)["input_ids"]


def _pad(rows: list[list[int]], value: int, side: str) -> Tensor:
    width = max(len(row) for row in rows)
    padded = [
        ([value] * (width - len(row)) + row) if side == "left" else (row + [value] * (width - len(row))) for row in rows
    ]
    return torch.tensor(padded, dtype=torch.long)


def seq2seq_batch(prompts: list[list[int]], targets: list[list[int]], pad_id: int, decoder_start_id: int) -> SFTBatch:
    """Encoder-decoder batch: prompts right-padded as encoder input, targets right-padded as labels.

    Args:
        prompts: B lists of prompt token ids.
        targets: B lists of target token ids (EOS last).
        pad_id: the pad token id.
        decoder_start_id: the model's ``decoder_start_token_id``.
    """
    input_ids = _pad(prompts, pad_id, "right")  # (B, S)
    attention = _pad([[1] * len(p) for p in prompts], 0, "right")
    labels = _pad(targets, IGNORE_INDEX, "right")  # (B, L)
    shifted = torch.cat([torch.full_like(labels[:, :1], decoder_start_id), labels[:, :-1]], dim=1)
    decoder_input_ids = shifted.masked_fill(shifted == IGNORE_INDEX, pad_id)
    return SFTBatch(input_ids, attention, labels, decoder_input_ids=decoder_input_ids)


def causal_batch(prompts: list[list[int]], targets: list[list[int]], pad_id: int, padding_side: str) -> SFTBatch:
    """Decoder-only batch: each row is its prompt then its target, padded on ``padding_side``; only the positions
    that predict a target token (the prompt's last token up to the target's second-to-last) carry a label.

    Args:
        prompts: B lists of prompt token ids (each non-empty: the first response token is predicted from it).
        targets: B lists of target token ids (EOS last).
        pad_id: the pad token id.
        padding_side: ``"left"`` or ``"right"``.
    """
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    if any(len(p) == 0 for p in prompts):
        raise ValueError("a decoder-only SFT example needs at least one prompt token to predict its response from")
    rows, label_rows = [], []
    for prompt, target in zip(prompts, targets):
        rows.append(prompt + target)
        # logits position j predicts token j + 1: label the positions len(prompt)-1 … len(row)-2, the last none
        label_rows.append([IGNORE_INDEX] * (len(prompt) - 1) + target + [IGNORE_INDEX])
    input_ids = _pad(rows, pad_id, padding_side)  # (B, S)
    attention = _pad([[1] * len(r) for r in rows], 0, padding_side)
    labels = _pad(label_rows, IGNORE_INDEX, padding_side)
    positions = (attention.cumsum(dim=1) - 1).clamp(min=0)
    return SFTBatch(input_ids, attention, labels, position_ids=positions)
