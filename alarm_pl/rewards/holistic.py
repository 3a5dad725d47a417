"""The holistic reward: one frozen preference reward model scoring the whole response (PAPER.md §1).

The paper uses UltraRM-13B (a Llama-2 regression head read at the last non-pad token) with the template
``Human: {prompt}\\nAssistant: {response}``. The raw reward is the metric (higher is better) and is also placed on
each response's last real token; normalisation into H (``(raw − μ) / σ``) is the scorer's ``normalizer``.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from alarm_pl.models.reward_model import FrozenRewardModel, HeadKind
from alarm_pl.rewards.base import Score, Scorer, ScorerError, ScoringInput


def questions(inputs: ScoringInput) -> list[Optional[str]]:
    """Each record's ``metadata["question"]`` (None where absent), the value of a template's ``{question}``."""
    return [meta.get("question") if isinstance(meta, dict) else None for meta in inputs.metadata]


def placement(configured: Optional[str], default: torch.device, what: str) -> torch.device:
    """The device a reward model is loaded on: ``configured`` (e.g. ``cuda:1``, ``cpu``) or else ``default``.

    Raises:
        ValueError: ``configured`` is not a device name, or names a CUDA device this machine does not have.
    """
    if configured is None:
        return torch.device(default)
    try:
        device = torch.device(configured)
    except RuntimeError as err:
        raise ValueError(f"{what}: {configured!r} is not a device (e.g. 'cpu', 'cuda', 'cuda:1')") from err
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = device.index if device.index is not None else 0
        if index >= count:
            raise ValueError(
                f"{what}: {configured!r} requested but this machine has {count} CUDA device(s); "
                f"use 'cpu' or a device index below {count}, or leave it unset (the module's device)"
            )
    return device


class RewardModelScorer(Scorer):
    """A frozen reward model as a scorer: the holistic reward here; the model-based aspects subclass it.

    Args:
        model_name_or_path: local directory, hub id, ``tiny:<name>`` asset or ``dummy:<architecture>`` (e.g.
            ``dummy:ultrarm-13b``) of an ``AutoModelForSequenceClassification`` with one output.
        template: the model's input; placeholders ``{prompt}``, ``{response}``, ``{reference}`` and ``{question}``
            (the record's ``metadata["question"]``). None (the default): the template saved with the model by
            ``alarm_pl.reward_training`` (a reward model trained here), else UltraRM's
            ``Human: {prompt}\\nAssistant: {response}``.
        batch_size: responses per forward pass.
        max_length: tokens per input (capped at the model's limit); longer inputs lose their beginning.
        quantization_bits: 4 (NF4) or 8 (LLM.int8) with bitsandbytes on CUDA, or None.
        dtype: ``float32``, ``bfloat16``, ``float16`` or ``auto`` (the checkpoint's).
        key_mapping: regexes renaming checkpoint weights for a head saved under another name (UltraRM:
            ``{"^regression_head": "score"}``).
        allow_cpu_quantization: let ``quantization_bits`` quantize on a machine without CUDA (bitsandbytes' CPU
            kernels: slow, for CPU smoke runs and tests; off by default so that a GPU config run on a CPU by mistake
            fails at once instead of crawling).
        dummy_overrides: with a ``dummy:`` model, config.json keys to replace (shrinking it for a CPU).
        device: where this reward model runs, e.g. ``cuda:1`` (a GPU of its own) or ``cpu``; None: the training
            module's device. Inputs and outputs move across devices here, so any placement works; in a multi-process
            (DDP) run every process would use the same device, so leave it None there.
        **kwargs: ``name``, ``weight``, ``normalizer``, ``shaping`` of ``Scorer``.
    """

    default_name = "holistic"
    head_kind: HeadKind = "sequence"  # subclasses backed by token classifiers set "token"

    def __init__(
        self,
        model_name_or_path: str,
        template: Optional[str] = None,
        batch_size: int = 8,
        max_length: int = 1024,
        quantization_bits: Optional[int] = None,
        dtype: str = "float32",
        key_mapping: Optional[dict[str, str]] = None,
        allow_cpu_quantization: bool = False,
        dummy_overrides: Optional[dict[str, Any]] = None,
        device: Optional[str] = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name_or_path, self.template = model_name_or_path, template
        self.batch_size, self.max_length = batch_size, max_length
        self.quantization_bits, self.dtype = quantization_bits, dtype
        self.key_mapping, self.allow_cpu_quantization = key_mapping, allow_cpu_quantization
        self.dummy_overrides, self.device = dummy_overrides, device
        self.model: Optional[FrozenRewardModel] = None

    def setup(self, device: torch.device) -> None:
        """Load the frozen reward model onto its ``device`` argument, or else onto ``device`` (once)."""
        if self.model is not None:
            return
        self.model = FrozenRewardModel.from_pretrained(
            self.model_name_or_path,
            kind=self.head_kind,
            template=self.template,
            batch_size=self.batch_size,
            max_length=self.max_length,
            quantization_bits=self.quantization_bits,
            dtype=self.dtype,
            device=placement(self.device, device, f"scorer {self.name!r} device"),
            what=f"scorer {self.name!r} model_name_or_path",
            key_mapping=self.key_mapping,
            allow_cpu_quantization=self.allow_cpu_quantization,
            dummy_overrides=self.dummy_overrides,
        )

    def teardown(self) -> None:
        self.model = None

    def raw_rewards(self, inputs: ScoringInput) -> torch.Tensor:
        """(B,) float32 raw reward-model output for each (prompt, response, reference)."""
        if self.model is None:
            raise ScorerError(f"scorer {self.name!r}: call setup(device) before score()")
        try:
            texts = [
                text
                for text, _ in self.model.format(inputs.prompts, inputs.responses, inputs.references, questions(inputs))
            ]
        except ValueError as err:
            raise ScorerError(f"scorer {self.name!r}: {err}") from err
        return self.model.score_texts(texts)

    def score(self, inputs: ScoringInput) -> Score:
        """Raw reward on each response's last real token; metric = raw reward (higher is better)."""
        raw = self.raw_rewards(inputs).to(inputs.response_mask.device)  # (B,)
        return Score.sequence(raw, inputs.response_mask, metric=raw, higher_is_better=True)
