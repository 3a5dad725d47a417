"""Typed argument groups of the module. Each field's docstring is its ``--help``; validation in ``__post_init__``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

Strategy = Literal["holistic_only", "aspect_only", "weighted_sum", "hierarchical"]


@dataclass
class PolicyConfig:
    """The policy: a Hugging Face causal or encoder-decoder LM with a LoRA adapter and a value head."""

    model_name_or_path: str = "tiny:mt-seq2seq"
    """Hub id, local directory saved with ``save_pretrained``, or ``tiny:<name>`` for the offline tiny assets."""
    architecture: Literal["auto", "seq2seq", "causal"] = "auto"
    """``auto`` reads ``config.is_encoder_decoder``."""
    lora_r: int = 16
    """LoRA rank (paper: 16). 0 trains the full model (no adapter; the reference is then a frozen copy)."""
    lora_alpha: int = 32
    """LoRA alpha (paper: 32)."""
    lora_dropout: float = 0.05
    """LoRA dropout (paper: 0.05)."""
    lora_target_modules: Optional[list[str]] = None
    """Module names to adapt; ``None`` lets peft pick its default for the architecture."""
    adapter_path: Optional[str] = None
    """Start from an already-trained peft adapter directory."""
    reference: Literal["disable_adapter", "frozen_adapter_copy"] = "disable_adapter"
    """How the reference policy is computed: the base model with the adapter disabled (no second copy; right when the
    adapter starts untrained), or a frozen copy of the starting adapter (right when ``adapter_path`` is set)."""
    quantization_bits: Optional[int] = None
    """4 or 8: load the base model through bitsandbytes (QLoRA). ``None`` keeps full precision."""
    dtype: str = "float32"
    """Base model dtype: float32, bfloat16, float16 or auto."""
    gradient_checkpointing: bool = False
    """Trade compute for memory in the policy forward."""

    def __post_init__(self) -> None:
        if self.lora_r < 0:
            raise ValueError(f"model.policy.lora_r must be >= 0, got {self.lora_r}")
        if self.quantization_bits not in (None, 4, 8):
            raise ValueError(f"model.policy.quantization_bits must be 4, 8 or null, got {self.quantization_bits}")
        if self.reference == "frozen_adapter_copy" and self.lora_r == 0:
            raise ValueError("model.policy.reference=frozen_adapter_copy needs a LoRA adapter (lora_r > 0)")


@dataclass
class GenerationConfig:
    """Sampling of rollouts (paper: pure sampling, top_k 0, top_p 1)."""

    max_new_tokens: int = 128
    """Upper bound on response tokens."""
    min_new_tokens: int = 0
    """Lower bound on response tokens (0: EOS may come first). The benchmark spec uses min = max for exact lengths."""
    do_sample: bool = True
    """Sample (True) or decode greedily (False) during training rollouts."""
    temperature: float = 1.0
    """Sampling temperature."""
    top_k: int = 0
    """0 disables top-k filtering."""
    top_p: float = 1.0
    """1.0 disables nucleus filtering."""
    eval_do_sample: bool = False
    """Decoding for validation/test generations (default greedy)."""

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1 or self.min_new_tokens > self.max_new_tokens:
            raise ValueError("model.generation: need 1 <= max_new_tokens and min_new_tokens <= max_new_tokens")


@dataclass
class RewardConfig:
    """How rewards are composed (PAPER.md §1): r_t = w_h·H·1[t=T] + 1[H ≥ τ]·Σ_k w_k·σ(a_k)_t."""

    strategy: Strategy = "hierarchical"
    """holistic_only | aspect_only | weighted_sum | hierarchical (ALaRM)."""
    threshold: float = 0.5
    """τ, in z-units of the normalised holistic reward (paper: MT 0.5, QA 0.6). H == τ passes the gate."""
    holistic_weight: float = 1.0
    """w_h (paper: MT 3, QA 5)."""
    degenerate_max_tokens: int = 2
    """Responses with at most this many tokens are degenerate (paper: 2)."""
    degenerate_holistic: float = -10.0
    """H assigned to degenerate responses, which get no aspect reward (paper: −10)."""


@dataclass
class PPOConfig:
    """PPO hyper-parameters (paper defaults)."""

    ppo_epochs: int = 4
    """Passes over each rollout."""
    num_minibatches: int = 2
    """Minibatches per pass (paper MT: batch 32 / minibatch 16 = 2)."""
    gradient_accumulation_steps: int = 1
    """Minibatches accumulated per optimizer step (the optimizer steps ppo_epochs·num_minibatches/this per rollout)."""
    clip_range: float = 0.2
    """ε of the clipped surrogate."""
    value_clip_range: float = 0.2
    """Clip of the value update around the old values."""
    vf_coef: float = 0.1
    """Weight of the value loss."""
    entropy_coef: float = 0.0
    """Weight of an entropy bonus (0: none, as in the paper)."""
    gamma: float = 1.0
    """Discount γ."""
    lam: float = 0.95
    """GAE λ."""
    whiten_advantages: bool = True
    """Whiten advantages with statistics gathered over all processes."""
    whiten_rewards: bool = False
    """Whiten the per-token rewards before GAE."""
    target_kl: Optional[float] = 0.1
    """Stop the PPO epochs of a rollout once approx_kl > 1.5 × target_kl (paper: 0.1); null disables."""
    max_grad_norm: Optional[float] = 1.0
    """Gradient clipping by norm (null: none)."""
    kl_estimator: Literal["k1", "k3"] = "k1"
    """Per-token KL estimator of the reward penalty."""

    def __post_init__(self) -> None:
        if self.ppo_epochs < 1 or self.num_minibatches < 1 or self.gradient_accumulation_steps < 1:
            raise ValueError("model.ppo: ppo_epochs, num_minibatches and gradient_accumulation_steps must be >= 1")
