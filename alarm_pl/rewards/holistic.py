"""The holistic reward: one frozen preference reward model scoring the whole response (PAPER.md §1).

The paper uses UltraRM-13B (a Llama-2 regression head read at the last non-pad token) with the template
``Human: {prompt}\\nAssistant: {response}``. The raw reward is the metric (higher is better) and is also placed on
each response's last real token; normalisation into H (``(raw − μ) / σ``) is the scorer's ``normalizer``.
"""

from __future__ import annotations

from typing import Optional

import torch

from alarm_pl.models.reward_model import ULTRARM_TEMPLATE, FrozenRewardModel, HeadKind
from alarm_pl.rewards.base import Score, Scorer, ScorerError, ScoringInput


def questions(inputs: ScoringInput) -> list[Optional[str]]:
    """Each record's ``metadata["question"]`` (None where absent), the value of a template's ``{question}``."""
    return [meta.get("question") if isinstance(meta, dict) else None for meta in inputs.metadata]


class RewardModelScorer(Scorer):
    """A frozen reward model as a scorer: the holistic reward here; the model-based aspects subclass it.

    Args:
        model_name_or_path: local directory, hub id or ``tiny:<name>`` asset of an
            ``AutoModelForSequenceClassification`` with one output.
        template: the model's input; placeholders ``{prompt}``, ``{response}``, ``{reference}`` and ``{question}``
            (the record's ``metadata["question"]``).
        batch_size: responses per forward pass.
        max_length: tokens per input (capped at the model's limit); longer inputs lose their beginning.
        quantization_bits: 4 (NF4) or 8 (LLM.int8) with bitsandbytes on CUDA, or None.
        dtype: ``float32``, ``bfloat16``, ``float16`` or ``auto`` (the checkpoint's).
        key_mapping: regexes renaming checkpoint weights for a head saved under another name (UltraRM:
            ``{"^regression_head": "score"}``).
        allow_cpu_quantization: quantize without CUDA (bitsandbytes CPU kernels; tests only).
        **kwargs: ``name``, ``weight``, ``normalizer``, ``shaping`` of ``Scorer``.
    """

    default_name = "holistic"
    head_kind: HeadKind = "sequence"  # subclasses backed by token classifiers set "token"

    def __init__(self, model_name_or_path: str, template: str = ULTRARM_TEMPLATE, batch_size: int = 8,
                 max_length: int = 1024, quantization_bits: Optional[int] = None, dtype: str = "float32",
                 key_mapping: Optional[dict[str, str]] = None, allow_cpu_quantization: bool = False,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.model_name_or_path, self.template = model_name_or_path, template
        self.batch_size, self.max_length = batch_size, max_length
        self.quantization_bits, self.dtype = quantization_bits, dtype
        self.key_mapping, self.allow_cpu_quantization = key_mapping, allow_cpu_quantization
        self.model: Optional[FrozenRewardModel] = None

    def setup(self, device: torch.device) -> None:
        """Load the frozen reward model onto ``device`` (once)."""
        if self.model is not None:
            return
        self.model = FrozenRewardModel.from_pretrained(
            self.model_name_or_path, kind=self.head_kind, template=self.template, batch_size=self.batch_size,
            max_length=self.max_length, quantization_bits=self.quantization_bits, dtype=self.dtype, device=device,
            what=f"scorer {self.name!r} model_name_or_path", key_mapping=self.key_mapping,
            allow_cpu_quantization=self.allow_cpu_quantization)

    def teardown(self) -> None:
        self.model = None

    def raw_rewards(self, inputs: ScoringInput) -> torch.Tensor:
        """(B,) float32 raw reward-model output for each (prompt, response, reference)."""
        if self.model is None:
            raise ScorerError(f"scorer {self.name!r}: call setup(device) before score()")
        try:
            texts = [text for text, _ in self.model.format(inputs.prompts, inputs.responses, inputs.references,
                                                             questions(inputs))]
        except ValueError as err:
            raise ScorerError(f"scorer {self.name!r}: {err}") from err
        return self.model.score_texts(texts)

    def score(self, inputs: ScoringInput) -> Score:
        """Raw reward on each response's last real token; metric = raw reward (higher is better)."""
        raw = self.raw_rewards(inputs).to(inputs.response_mask.device)  # (B,)
        return Score.sequence(raw, inputs.response_mask, metric=raw, higher_is_better=True)
