"""What a rollout can take from generation's own pass instead of running the policy again.

``generate`` already runs the policy on every response token, one step at a time. With dropout off (every PPO pass
runs that way) and full precision, the log-softmax of each step's *unprocessed* logits at the sampled token is the
old log-probability that a separate forward over the finished responses would compute, and the trunk's last hidden
state at each step is the state the value head reads there. ``StepRecorder`` reads both while ``generate`` runs, so
the rollout needs no second policy pass (PPO's old log-probs and values); only the reference policy's pass remains.

The two can differ where generation's numerics are not the forward's: a KV cache in bfloat16/float16 or a quantized
base rounds differently from a full-sequence pass, and autocast runs the matmuls in low precision.
``scores_are_exact`` tells when they agree (float32, unquantized, no autocast); ``tests/test_sampling.py`` checks
the agreement on both tiny policy kinds with mixed lengths and left-padded causal prompts.

``merged_adapter`` folds a LoRA adapter into its base weights for the duration of ``generate`` (every decoding step
then runs one matmul per adapted layer instead of three) and puts the very same base tensors back afterwards.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, NamedTuple, Optional

import torch
from torch import Tensor, nn

from alarm_pl.models.passes import trunk_output


class SampledScores(NamedTuple):
    """The old policy's outputs on its own sampled responses, read from generation's pass.

    Attributes:
        logprobs: (B, T) log π(y_t | x, y_<t) under the unprocessed logits (no temperature, top-k/p or min-length
            processing: those shape sampling, not the policy PPO trains), 0 on padding.
        values: (B, T) value-head estimates V(s_t), 0 on padding.
    """

    logprobs: Tensor
    values: Tensor


def response_mask_from_ids(ids: Tensor, eos_token_id: int | None) -> Tensor:
    """(B, T) bool: True up to and including each row's first EOS (all True for rows that never emit EOS).

    Args:
        ids: (B, T) generated ids, anything after the first EOS is padding.
        eos_token_id: the EOS id, or None (no stopping token: every position is real).
    """
    if eos_token_id is None:
        return torch.ones_like(ids, dtype=torch.bool)
    is_eos = ids == eos_token_id  # (B, T)
    eos_before = torch.cumsum(is_eos.long(), dim=1) - is_eos.long()  # EOS strictly before t
    return eos_before == 0


def scores_are_exact(dtype: torch.dtype, quantized: bool, device_type: str) -> bool:
    """Whether generation's per-step log-probs and hidden states equal a full forward's up to float32 rounding.

    Args:
        dtype: the policy's parameter dtype.
        quantized: the base model is loaded through bitsandbytes.
        device_type: ``cpu`` or ``cuda`` (autocast is checked for it).
    """
    return dtype == torch.float32 and not quantized and not torch.is_autocast_enabled(device_type)


class StepRecorder:
    """Forward hooks that record, during one ``generate`` call, the log-prob of each sampled token and the trunk's
    last hidden state at each step.

    Each decoding step runs the language model once: its logits at the last position give the distribution of the
    token sampled at that step, which the *next* step receives as its input; so each step's log-softmax is kept until
    then (one (B, V) tensor at a time, never (B, T, V)). The last sampled token is never fed back: ``finish`` reads
    its log-prob from the generated ids.

    Args:
        model: the Hugging Face model whose ``generate`` runs (the peft model's base model).
        trunk: the module whose output's first element is the last hidden state the value head reads
            (``model.get_decoder()``: the decoder stack of an encoder-decoder, the transformer of a causal LM).
        input_key: the forward argument holding the step's input ids (``decoder_input_ids`` or ``input_ids``).
    """

    def __init__(self, model: nn.Module, trunk: nn.Module, input_key: str) -> None:
        self.model, self.trunk, self.input_key = model, trunk, input_key
        self.logprobs: list[Tensor] = []  # T-1 of (B,): steps 0 .. T-2
        self.fed: list[Tensor] = []  # T-1 of (B,): the token each later step received (tokens 0 .. T-2)
        self.hidden: list[Tensor] = []  # T of (B, H)
        self._pending: Optional[Tensor] = None  # (B, V) log-softmax of the latest step
        self._handles = []

    def __enter__(self) -> "StepRecorder":
        self._handles = [
            self.model.register_forward_hook(self._on_logits, with_kwargs=True),
            self.trunk.register_forward_hook(self._on_hidden),
        ]
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _on_logits(self, module, args, kwargs, output) -> None:
        step_ids = kwargs.get(self.input_key)
        if step_ids is None and args:
            step_ids = args[0]
        if self._pending is not None:
            token = step_ids[:, -1]  # (B,) sampled at the previous step
            self.fed.append(token)
            self.logprobs.append(self._pending.gather(1, token.unsqueeze(1)).squeeze(1))
        self._pending = output.logits[:, -1].float().log_softmax(dim=-1)  # (B, V)

    def _on_hidden(self, module, args, output) -> None:
        self.hidden.append(trunk_output(output)[:, -1])  # (B, H)

    def finish(self, response_ids: Tensor, response_mask: Tensor, value_head: nn.Module) -> SampledScores:
        """The recorded scores of the generated ``response_ids`` (B, T) / ``response_mask`` (B, T).

        Raises:
            RuntimeError: the steps recorded do not match the generated tokens (a ``generate`` that runs the model
                more or fewer times than once per token, e.g. assisted decoding); use the separate forward
                (``model.generation.old_logprobs_from: forward``).
        """
        length = response_ids.shape[1]
        mask = response_mask.bool()
        fed = torch.stack(self.fed, dim=1) if self.fed else response_ids[:, :0]  # (B, T-1)
        if (
            self._pending is None
            or len(self.hidden) != length
            or fed.shape[1] != length - 1
            or not torch.equal(fed[mask[:, :-1]], response_ids[:, :-1][mask[:, :-1]])
        ):
            raise RuntimeError(
                f"generation ran the model {len(self.hidden)} times for {length} tokens, or fed it other tokens than "
                "it returned, so its scores cannot stand in for the old log-probs; set "
                "model.generation.old_logprobs_from: forward"
            )
        last = self._pending.gather(1, response_ids[:, -1:]).squeeze(1)  # (B,)
        logprobs = torch.stack([*self.logprobs, last], dim=1)  # (B, T)
        hidden = torch.stack(self.hidden, dim=1)  # (B, T, H)
        values = value_head(hidden.to(value_head.weight.dtype)).squeeze(-1)  # (B, T)
        return SampledScores((logprobs * mask).float(), (values * mask).float())


@contextlib.contextmanager
def merged_adapter(peft_model: nn.Module) -> Iterator[bool]:
    """Inside this context the active LoRA adapter is folded into its base weights (W + ΔW) and the adapter path is
    switched off, so the model computes the adapted policy with one matmul per layer; on exit the original base
    tensors are put back untouched (no ``W + ΔW − ΔW`` rounding drift across rollouts).

    Yields False, and changes nothing, where folding would not compute the same policy: adapters other than plain
    LoRA on ``Linear``/``Embedding`` layers (DoRA, quantized layers), a base weight shared with another module
    (tied embeddings: folding an ``lm_head`` adapter would change the input embedding too), or adapters that are
    switched off already (inside ``disable_adapter()``, e.g. decoding with the starting policy: the model computes
    the base policy, and folding the active adapter in would compute the trained one instead).
    """
    folds = _foldable_layers(peft_model)
    if folds is None:
        yield False
        return
    originals = []
    try:
        with torch.no_grad():
            for layer, name in folds:
                weight = layer.get_base_layer().weight
                originals.append((weight, weight.data))
                weight.data = weight.data + layer.get_delta_weight(name).to(weight.dtype)
        with peft_model.disable_adapter():
            yield True
    finally:
        for weight, data in originals:
            weight.data = data


def _foldable_layers(peft_model: nn.Module) -> Optional[list[tuple[nn.Module, str]]]:
    """(layer, adapter name) of every LoRA layer to fold, or None when folding is not exact (see ``merged_adapter``)."""
    try:
        from peft.tuners.lora import Embedding, Linear
    except ImportError:
        return None
    if not hasattr(peft_model, "disable_adapter") or not hasattr(peft_model, "active_adapters"):
        return None
    active = list(peft_model.active_adapters)
    if len(active) != 1:
        return None
    counts: dict[int, int] = {}
    for _, param in peft_model.named_parameters(remove_duplicate=False):
        counts[id(param)] = counts.get(id(param), 0) + 1
    folds = []
    for module in peft_model.modules():
        if not hasattr(module, "lora_A") or active[0] not in module.lora_A:
            continue
        base = module.get_base_layer()
        if (
            type(module) not in (Linear, Embedding)
            or module.use_dora.get(active[0], False)
            or module.disable_adapters
            or getattr(base.weight, "quant_state", None) is not None
            or counts.get(id(base.weight), 0) > 1
        ):
            return None
        folds.append((module, active[0]))
    return folds or None
