"""The policy: a Hugging Face LM (causal or encoder-decoder) with a LoRA adapter and a value head on its trunk.

The reference policy is the same model with the adapter disabled (no second copy in memory), or, when training starts
from an already-trained adapter, a frozen copy of that adapter (``reference="frozen_adapter_copy"``).

Tensor conventions: ``query_ids`` (B, P) are left-padded for causal policies and right-padded for encoder-decoder ones;
``response_ids`` (B, T) are right-padded; masks are ``True`` on real tokens.
"""

from __future__ import annotations

import contextlib
import copy
import os
import tempfile
from typing import Iterator, NamedTuple

import torch
from torch import Tensor, nn

from alarm_pl.config import GenerationConfig, PolicyConfig
from alarm_pl.faults import guard_memory
from alarm_pl.models.loading import (
    quantization_config,
    resolve_model_reference,
    resolve_pretrained,
    torch_dtype_from_str,
)
from alarm_pl.models.passes import hf_model, response_logits_and_hidden
from alarm_pl.models.sampling import (
    SampledScores,
    StepRecorder,
    merged_adapter,
    response_mask_from_ids,
    scores_are_exact,
)
from alarm_pl.models.surgery import disable_dropout, merge_adapter_into_base, untie_output_embedding
from alarm_pl.ppo.functional import entropy_from_logits, logprobs_from_logits

REFERENCE_ADAPTER = "reference"


class PolicyOutput(NamedTuple):
    """Per-response-token outputs of one policy forward.

    Attributes:
        logprobs: (B, T) log π(y_t | x, y_<t) of the given response tokens.
        values: (B, T) value-head estimates V(s_t), the state in which y_t is chosen.
        entropy: (B, T) entropy of π(· | x, y_<t).
    """

    logprobs: Tensor
    values: Tensor
    entropy: Tensor


class Generation(NamedTuple):
    """Sampled responses: (B, T) right-padded ids and bool mask (EOS, when produced, is the last real token)."""

    response_ids: Tensor
    response_mask: Tensor


class Policy(nn.Module):
    """LoRA-adapted LM + value head.

    Args:
        config: the ``model.policy`` argument group.
        for_ppo: also build what PPO adds to the LM: the value head and, for full fine-tuning (``lora_r == 0``), the
            frozen copy of the starting weights that serves as the reference policy. False loads the LM alone, as
            supervised fine-tuning (``alarm_pl.sft.SFTModule``) trains it.
    """

    def __init__(self, config: PolicyConfig, for_ppo: bool = True) -> None:
        super().__init__()
        self.config = config
        self.for_ppo = for_ppo
        self.model: nn.Module | None = None
        self.value_head: nn.Linear | None = None
        self.tokenizer = None
        self.is_seq2seq = False
        self.reference_model: nn.Module | None = None

    # ------------------------------------------------------------------ loading
    def load(self) -> None:
        """Load tokenizer and model, add the adapter (and, for PPO, the value head). Idempotent."""
        if self.model is not None:
            return
        from transformers import AutoConfig, AutoTokenizer

        path = resolve_model_reference(
            self.config.model_name_or_path, "model.policy.model_name_or_path", "lm", self.config.dummy_overrides
        )
        hf_config = AutoConfig.from_pretrained(path)
        arch = self.config.architecture
        self.is_seq2seq = bool(hf_config.is_encoder_decoder) if arch == "auto" else arch == "seq2seq"
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "right" if self.is_seq2seq else "left"
        kwargs = {"dtype": torch_dtype_from_str(self.config.dtype)}
        quant = quantization_config(self.config.quantization_bits)
        if quant is not None:
            kwargs["quantization_config"] = quant
        model = self._auto_class().from_pretrained(path, **kwargs)
        if self.config.gradient_checkpointing:
            model.gradient_checkpointing_enable()
        if self.config.lora_r == 0 and self.for_ppo:  # full fine-tuning: the reference is a frozen copy of the start
            self.reference_model = copy.deepcopy(model).requires_grad_(False).eval()
        self.model = self._adapt(model)
        if not self.for_ppo:
            return
        disable_dropout(self.model)
        hidden = (
            hf_config.get_text_config().hidden_size if hasattr(hf_config, "get_text_config") else hf_config.hidden_size
        )
        self.value_head = nn.Linear(hidden, 1)
        nn.init.normal_(self.value_head.weight, std=1.0 / (hidden + 1))
        nn.init.zeros_(self.value_head.bias)

    def _auto_class(self):
        from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

        return AutoModelForSeq2SeqLM if self.is_seq2seq else AutoModelForCausalLM

    def _adapt(self, model: nn.Module) -> nn.Module:
        cfg = self.config
        if cfg.lora_r == 0:
            return model
        from peft import LoraConfig, PeftModel, TaskType, get_peft_model, prepare_model_for_kbit_training

        if cfg.quantization_bits is not None:
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
        if cfg.adapter_path is not None:
            adapter = resolve_pretrained(cfg.adapter_path, "model.policy.adapter_path", marker="adapter_config.json")
            model = PeftModel.from_pretrained(model, adapter, is_trainable=True)
            if cfg.reference == "frozen_adapter_copy":
                model.load_adapter(adapter, adapter_name=REFERENCE_ADAPTER, is_trainable=False)
            return model
        if cfg.reference == "frozen_adapter_copy":
            raise ValueError("model.policy.reference=frozen_adapter_copy needs model.policy.adapter_path")
        task = TaskType.SEQ_2_SEQ_LM if self.is_seq2seq else TaskType.CAUSAL_LM
        lora = LoraConfig(
            task_type=task,
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=cfg.lora_target_modules,
        )
        return get_peft_model(model, lora)

    def no_dropout(self) -> None:
        """Put the policy in the mode of every pass of a rollout and of its PPO epochs: no dropout anywhere.

        T5/mT5 checkpoints ship ``dropout_rate: 0.1`` and LoRA has its own dropout; with dropout on in the updates
        but off when the rollout's log-probs were taken, the PPO ratio is not 1 before the first update and the KL
        early stop fires on noise (the authors' policy stays in eval mode; TRL and OpenRLHF switch dropout off).
        Every dropout probability of a PPO policy is 0 from loading on (``disable_dropout``). Eval mode is used
        as well, except under gradient checkpointing, which transformers applies only in training mode.
        """
        self.train(self.config.gradient_checkpointing)

    def fingerprint(self) -> dict[str, str]:
        """What identifies this policy in a checkpoint (``checkpointing/fingerprint.py``): the model reference, the
        model's kind and size, the adapter's shape, the reference policy and the precision. Call after ``load``."""
        base = self._base_config()
        text = base.get_text_config() if hasattr(base, "get_text_config") else base
        shape = (
            f"{base.model_type} {'seq2seq' if self.is_seq2seq else 'causal'} vocab={text.vocab_size} "
            f"hidden={text.hidden_size} layers={text.num_hidden_layers}"
        )
        adapter = "full fine-tuning"
        if self.config.lora_r:
            lora = self.model.peft_config["default"]
            adapter = f"LoRA r={lora.r} alpha={lora.lora_alpha} targets={sorted(lora.target_modules or [])}"
        return {
            "model": self.config.model_name_or_path,
            "model_shape": shape,
            "adapter": adapter,
            "reference": self.config.reference if self.config.lora_r else "frozen copy",
            "precision": f"{self.config.dtype}, {self.config.quantization_bits or 'no'} quantization bits",
        }

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The adapter (or the whole model when ``lora_r == 0``) and the value head."""
        return [p for p in self.parameters() if p.requires_grad]

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        query_ids: Tensor,
        query_mask: Tensor,
        response_ids: Tensor,
        response_mask: Tensor,
        trunk_grad: bool = True,
        entropy_grad: bool = True,
    ) -> PolicyOutput:
        """Log-probs, values and entropy of the given responses, each (B, T), exactly 0 on padding.

        ``trunk_grad=False`` runs the language model without autograd, so that a loss on the values trains the value
        head alone (the critic warm-up: the policy does not move). ``entropy_grad=False`` computes the entropy without
        autograd: a statistic only (PPO without an entropy bonus), whose backward through the (B, T, V) softmax would
        be wasted.
        """
        with torch.set_grad_enabled(trunk_grad and torch.is_grad_enabled()):
            logits, hidden = self._logits_and_hidden(query_ids, query_mask, response_ids, response_mask)
        mask = response_mask.bool()
        logprobs = logprobs_from_logits(logits, response_ids) * mask
        if self.config.value_head_detached:
            hidden = hidden.detach()
        values = self.value_head(hidden.to(self.value_head.weight.dtype)).squeeze(-1) * mask  # (B, T)
        with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
            entropy = entropy_from_logits(logits) * mask
        return PolicyOutput(logprobs.float(), values.float(), entropy.float())

    def _logits_and_hidden(
        self, query_ids, query_mask, response_ids, response_mask, model=None, want_hidden: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        """(B, T, V) logits predicting each response token and (B, T, H) the trunk's hidden state there
        (``passes.response_logits_and_hidden``)."""
        response_ids = response_ids.masked_fill(~response_mask.bool(), self.tokenizer.pad_token_id)
        start = self._base_config().decoder_start_token_id if self.is_seq2seq else None
        return response_logits_and_hidden(
            self.model if model is None else model,
            query_ids,
            query_mask,
            response_ids,
            response_mask,
            self.is_seq2seq,
            start,
            want_hidden,
        )

    def _base_config(self):
        return hf_model(self.model).config

    @property
    def decoder_start_token_id(self) -> int:
        """The encoder-decoder model's ``decoder_start_token_id`` (the first decoder input)."""
        return self._base_config().decoder_start_token_id

    @contextlib.contextmanager
    def reference_mode(self) -> Iterator[None]:
        """Inside this context the adapted model computes the reference policy (adapter disabled, or its frozen
        copy). Full fine-tuning (``lora_r == 0``) uses ``reference_model`` instead."""
        if self.config.reference == "frozen_adapter_copy":
            self.model.set_adapter(REFERENCE_ADAPTER)
            try:
                yield
            finally:
                self.model.set_adapter("default")
                for name, param in self.model.named_parameters():
                    if f".{REFERENCE_ADAPTER}." in name:
                        param.requires_grad_(False)
        else:
            with self.model.disable_adapter():
                yield

    @contextlib.contextmanager
    def starting_policy(self) -> Iterator[None]:
        """Inside this context generation and forward passes use the policy training started from (the reference
        policy): the adapter disabled, its frozen starting copy, or, for full fine-tuning, the frozen copy of the
        starting weights."""
        if self.reference_model is None:
            with self.reference_mode():
                yield
            return
        trained, self.model = self.model, self.reference_model
        try:
            yield
        finally:
            self.model = trained

    @torch.no_grad()
    def reference_logprobs(self, query_ids, query_mask, response_ids, response_mask) -> Tensor:
        """(B, T) log π_ref of the response tokens, 0 on padding."""
        if self.reference_model is not None:
            logits, _ = self._logits_and_hidden(
                query_ids, query_mask, response_ids, response_mask, self.reference_model, want_hidden=False
            )
        else:
            with self.reference_mode():
                logits, _ = self._logits_and_hidden(
                    query_ids, query_mask, response_ids, response_mask, want_hidden=False
                )
        return (
            logprobs_from_logits(logits, response_ids.masked_fill(~response_mask.bool(), 0)) * response_mask
        ).float()

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def generate(self, query_ids: Tensor, query_mask: Tensor, config: GenerationConfig, do_sample: bool) -> Generation:
        """Sample (or greedily decode) responses; returns right-padded ids with the EOS kept as last real token.

        Raises:
            OutOfMemoryFault: on every process when any ran out of memory (``alarm_pl/faults.py``).
        """
        return guard_memory(
            "generation", lambda: self._generate(query_ids, query_mask, config, do_sample, record=False)
        )[0]

    @torch.no_grad()
    def generate_with_scores(
        self, query_ids: Tensor, query_mask: Tensor, config: GenerationConfig, do_sample: bool
    ) -> tuple[Generation, SampledScores]:
        """``generate``, plus the sampled tokens' log-probs and values read from generation's own pass
        (``models/sampling.py``): what ``forward`` would give on the responses, without running it, where
        ``generation_scores_exact`` holds."""
        generated, scores = guard_memory(
            "generation", lambda: self._generate(query_ids, query_mask, config, do_sample, record=True)
        )
        return generated, scores

    def generation_scores_exact(self, device_type: str) -> bool:
        """Whether ``generate_with_scores`` equals ``forward`` up to float32 rounding here (``scores_are_exact``)."""
        return scores_are_exact(hf_model(self.model).dtype, self.config.quantization_bits is not None, device_type)

    def _generate(
        self, query_ids: Tensor, query_mask: Tensor, config: GenerationConfig, do_sample: bool, record: bool
    ) -> tuple[Generation, SampledScores | None]:
        tok = self.tokenizer
        kwargs = dict(
            max_new_tokens=config.max_new_tokens,
            min_new_tokens=config.min_new_tokens or None,
            do_sample=do_sample,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
        if do_sample:
            kwargs.update(temperature=config.temperature, top_k=config.top_k, top_p=config.top_p)
        else:
            kwargs.update(temperature=None, top_k=None, top_p=None)
        base = hf_model(self.model)
        recorder = (
            StepRecorder(base, base.get_decoder(), "decoder_input_ids" if self.is_seq2seq else "input_ids")
            if record
            else contextlib.nullcontext()
        )
        fold = (
            config.merge_adapter
            and self.config.lora_r > 0
            and self.config.quantization_bits is None
            and base.dtype == torch.float32
        )  # in lower precision W + ΔW would round ΔW away
        with merged_adapter(self.model) if fold else contextlib.nullcontext(), recorder:
            out = self.model.generate(input_ids=query_ids, attention_mask=query_mask.long(), **kwargs)
        ids = out[:, 1:] if self.is_seq2seq else out[:, query_ids.shape[1] :]  # drop decoder start / prompt
        mask = response_mask_from_ids(ids, tok.eos_token_id)
        ids = ids.masked_fill(~mask, tok.pad_token_id)
        scores = recorder.finish(ids, mask, self.value_head) if record else None
        return Generation(ids, mask), scores

    def tokenize_prompts(
        self, prompts: list[str], max_length: int | None, device: torch.device
    ) -> tuple[Tensor, Tensor]:
        """(B, P) ids and bool mask of the prompts, padded on the side the architecture needs."""
        enc = self.tokenizer(
            prompts, return_tensors="pt", padding=True, truncation=max_length is not None, max_length=max_length
        )
        return enc["input_ids"].to(device), enc["attention_mask"].bool().to(device)

    # ------------------------------------------------------------------ export
    def export(self, out_dir: str, merged: bool = False) -> None:
        """Write a standard peft adapter directory (plus ``value_head.pt`` and the tokenizer); ``merged`` also
        writes the merged full model under ``out_dir/merged`` loadable by plain ``transformers``."""
        os.makedirs(out_dir, exist_ok=True)
        if self.config.lora_r:
            self.model.save_pretrained(out_dir, selected_adapters=["default"])
        else:
            self.model.save_pretrained(out_dir)
        self.tokenizer.save_pretrained(out_dir)
        torch.save(self.value_head.state_dict(), os.path.join(out_dir, "value_head.pt"))
        if merged and self.config.lora_r:
            self.save_full_model(os.path.join(out_dir, "merged"))

    def save_full_model(self, out_dir: str) -> None:
        """Write the LM as one plain ``transformers`` model plus its tokenizer: the trained ``default`` adapter merged
        into the base weights (full fine-tuning: the model as trained). No value head. The directory loads with
        ``AutoModelFor*.from_pretrained`` and as ``model.policy.model_name_or_path``.

        A quantized (QLoRA) base is not merged in place: the base is reloaded unquantized, in ``config.dtype`` on
        the CPU, and the adapter is merged into that, so the export holds full-precision weights."""
        if not self.config.lora_r:
            model = self.model
        elif self.config.quantization_bits is None:
            model = copy.deepcopy(self.model)
            untie_output_embedding(model)
            model = model.merge_and_unload(adapter_names=["default"])
        else:
            with tempfile.TemporaryDirectory() as adapter_dir:
                self.model.save_pretrained(adapter_dir, selected_adapters=["default"])
                model = merge_adapter_into_base(self._auto_class(), self.config, adapter_dir)
        model.save_pretrained(out_dir)
        self.tokenizer.save_pretrained(out_dir)
