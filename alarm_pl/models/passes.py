"""One full-sequence pass of a language model over prompts and given responses: the logits that predict each response
token and the trunk's last hidden state there (what the policy's log-probs, entropy and values are read from).

Only what a PPO pass needs is computed: no KV cache (``use_cache=False``: nothing is decoded afterwards), no
per-layer hidden states (a forward hook on the trunk keeps its output alone), logits only from the last prompt
position on for causal models (``logits_to_keep``, where the model accepts it), and no prompt columns that are padding
in every row of the batch (a minibatch carries the padding of its whole rollout batch otherwise).
"""

from __future__ import annotations

import functools
import inspect
from typing import Optional

import torch
from torch import Tensor, nn


def trim_prompt_padding(query_ids: Tensor, query_mask: Tensor, left: bool) -> tuple[Tensor, Tensor]:
    """Drop the prompt columns that are padding in every row.

    Args:
        query_ids: (B, P) prompt ids, left-padded (``left``) or right-padded.
        query_mask: (B, P) bool, True on real tokens.
        left: the padding side.

    Returns:
        (B, P') ids and mask, P' = the longest prompt of the batch (at least 1 column).
    """
    longest = max(int(query_mask.sum(dim=1).max()), 1) if query_mask.numel() else query_mask.shape[1]
    if longest >= query_mask.shape[1]:
        return query_ids, query_mask
    if left:
        return query_ids[:, -longest:], query_mask[:, -longest:]
    return query_ids[:, :longest], query_mask[:, :longest]


def hf_model(model: nn.Module) -> nn.Module:
    """The Hugging Face model itself (under the peft wrapper when there is one)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def trunk_output(output) -> Tensor:
    """The last hidden state from a trunk module's output (a ``ModelOutput`` or a tuple)."""
    return output[0] if isinstance(output, tuple) else output.last_hidden_state


@functools.lru_cache(maxsize=None)
def _accepts_logits_to_keep(model_class: type) -> bool:
    return "logits_to_keep" in inspect.signature(model_class.forward).parameters


def response_logits_and_hidden(
    model: nn.Module,
    query_ids: Tensor,
    query_mask: Tensor,
    response_ids: Tensor,
    response_mask: Tensor,
    seq2seq: bool,
    decoder_start_id: Optional[int],
    want_hidden: bool = True,
) -> tuple[Tensor, Optional[Tensor]]:
    """(B, T, V) logits predicting each response token and (B, T, H) the trunk's last hidden state there.

    Args:
        model: the (peft-wrapped) language model.
        query_ids, query_mask: (B, P) prompts, right-padded for encoder-decoders and left-padded for causal LMs.
        response_ids, response_mask: (B, T) right-padded responses (padding ids must be valid token ids).
        seq2seq: encoder-decoder (the responses are the decoder's targets) or causal (prompt and response concatenated).
        decoder_start_id: the encoder-decoder's first decoder input.
        want_hidden: False returns None for the hidden state (the reference policy needs logits only).
    """
    query_ids, query_mask = trim_prompt_padding(query_ids, query_mask, left=not seq2seq)
    captured: list[Tensor] = []
    handle = (
        hf_model(model).get_decoder().register_forward_hook(lambda m, a, out: captured.append(trunk_output(out)))
        if want_hidden
        else None
    )
    try:
        if seq2seq:
            decoder_in = torch.cat(
                [torch.full_like(response_ids[:, :1], decoder_start_id), response_ids[:, :-1]], dim=1
            )
            decoder_mask = torch.cat([torch.ones_like(response_mask[:, :1]), response_mask[:, :-1]], dim=1)
            out = model(
                input_ids=query_ids,
                attention_mask=query_mask.long(),
                decoder_input_ids=decoder_in,
                decoder_attention_mask=decoder_mask.long(),
                use_cache=False,
            )
            return out.logits, captured[-1] if want_hidden else None
        length = response_ids.shape[1]
        input_ids = torch.cat([query_ids, response_ids], dim=1)  # (B, P+T)
        attention = torch.cat([query_mask, response_mask], dim=1).long()
        positions = (attention.cumsum(dim=1) - 1).clamp(min=0)  # left padding must not shift positions
        keep = {"logits_to_keep": length + 1} if _accepts_logits_to_keep(type(hf_model(model))) else {}
        out = model(input_ids=input_ids, attention_mask=attention, position_ids=positions, use_cache=False, **keep)
        logits = out.logits[:, -(length + 1) : -1]  # position P-1+t predicts response token t
        hidden = captured[-1][:, -(length + 1) : -1] if want_hidden else None
        return logits, hidden
    finally:
        if handle is not None:
            handle.remove()
