"""Typed argument groups of the module. Each field's docstring is its ``--help``; validation in ``__post_init__``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Optional

Strategy = Literal["holistic_only", "aspect_only", "weighted_sum", "hierarchical"]


@dataclass
class PolicyConfig:
    """The policy: a Hugging Face causal or encoder-decoder LM with a LoRA adapter and a value head."""

    model_name_or_path: str = "tiny:mt-seq2seq"
    """Hub id, local directory saved with ``save_pretrained``, ``tiny:<name>`` for the offline tiny assets, or
    ``dummy:<architecture>`` for the real architecture with seeded random weights (``alarm_pl/assets/dummy.py``;
    e.g. ``dummy:mt5-base``, ``dummy:t5-large``, ``dummy:/path/to/config.json``)."""
    dummy_overrides: Optional[dict[str, Any]] = None
    """With a ``dummy:`` model: config.json keys to replace, to shrink the architecture for a CPU while keeping its
    class (e.g. ``{num_layers: 2, num_decoder_layers: 2, d_model: 64, d_ff: 128, num_heads: 4, d_kv: 16,
    vocab_size: 2048}`` for T5/mT5)."""
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
    value_head_detached: bool = False
    """Feed the value head the trunk's hidden state detached from autograd: the value loss then trains the value head
    alone and learning the critic never moves the policy. False shares the trunk (the value loss, × ``ppo.vf_coef``,
    also trains the adapter), as trl's value head did in the paper's runs."""
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
    old_logprobs_from: Literal["auto", "generation", "forward"] = "auto"
    """Where a rollout's old log-probs and values come from: ``generation`` reads them from ``generate``'s own steps
    (the unprocessed logits' log-softmax and the trunk's hidden state: no second policy pass, ``models/sampling.py``);
    ``forward`` runs the policy once more over the finished responses; ``auto`` takes generation's where the two
    agree to float32 rounding (float32, unquantized policy, no autocast) and the forward elsewhere."""
    merge_adapter: bool = True
    """Fold the LoRA adapter into its base weights while generating (float32, unquantized base weights; not with a
    tied, adapted output embedding): one matmul per adapted layer and decoding step instead of three. The base
    weights are restored exactly afterwards."""

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
    degenerate_max_tokens: int = 1
    """Responses with at most this many tokens, EOS included, are degenerate. 1 = empty (EOS-only) responses, the
    authors' rule: they flag trl outputs of at most 2 tokens, which for their encoder-decoder policies are the decoder
    start token plus the response through its first EOS (``too_short_idx`` in ``MT/train_ppo.py``,
    ``long-form-QA/train_ppo.py``). 0 switches the rule off."""
    degenerate_holistic: float = -10.0
    """H assigned to degenerate responses during training (authors: −10). Under every strategy they get w_h·H on their
    last token and no aspect reward; generation files and win rates report their reward model's H instead, with
    ``degenerate: true``."""


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
    value_clip_range: Optional[float] = 0.2
    """Clip of the value update around the old values, in reward units (paper/trl: 0.2); null: no clip. With
    returns of several units the clip lets the critic move only this much per rollout (see ``value_loss``)."""
    vf_coef: float = 0.1
    """Weight of the value loss."""
    entropy_coef: float = 0.0
    """Weight of an entropy bonus (0: none, as in the paper)."""
    gamma: float = 1.0
    """Discount γ."""
    lam: float = 0.95
    """GAE λ."""
    advantage_normalization: Literal["whiten", "center", "none"] = "whiten"
    """What the advantages go through before the PPO epochs, with statistics gathered over all processes:
    ``whiten`` (subtract the batch mean, divide by the batch std; trl, the paper), ``center`` (subtract the mean,
    keep the reward's scale) or ``none``. Whitening makes any spread unit-sized: when every response earns the same
    reward, the advantages are only the critic's error, and whitening blows that noise up into full-size updates
    that move a policy which has nothing left to learn. ``center`` keeps such an update as small as the noise."""
    whiten_rewards: bool = False
    """Whiten the per-token rewards before GAE."""
    target_kl: Optional[float] = 0.1
    """Stop the PPO epochs of a rollout once the ``early_stop`` KL > kl_stop_factor × target_kl (paper: 0.1); null
    disables."""
    early_stop: Literal["epoch_mean", "last_minibatch"] = "epoch_mean"
    """Which KL the early stop compares, after each epoch: ``epoch_mean``: approx_kl (k2) averaged over the epoch's
    minibatches; ``last_minibatch``: trl 0.5's rule, the k1 policy KL mean(log π_old − log π) of the epoch's last
    minibatch only (``PPOTrainer.step``: ``policykl = train_stats["policy/policykl"]`` then ``_early_stop``), which the
    paper's runs used. Both are averaged over processes."""
    kl_stop_factor: float = 1.5
    """The early stop's margin over ``target_kl`` (paper: 1.5, the factor of trl 0.5's ``PPOTrainer._early_stop``,
    which the authors' fork keeps)."""
    critic_warmup_rollouts: int = 0
    """Rollouts at the start of training during which only the value head learns and the policy does not move
    (OpenRLHF's ``freezing_actor_steps``, verl's ``critic_warmup``). An untrained value head makes every advantage
    roughly the whole reward, so the first updates push the policy by noise rather than by how a response compares
    with what the policy usually earns. 0 disables (the paper has no warm-up)."""
    max_grad_norm: Optional[float] = 1.0
    """Gradient clipping by norm (null: none; trl 0.5's default, which the paper's runs used)."""
    kl_estimator: Literal["k1", "k3"] = "k1"
    """Per-token KL estimator of the reward penalty."""

    def __post_init__(self) -> None:
        if self.ppo_epochs < 1 or self.num_minibatches < 1 or self.gradient_accumulation_steps < 1:
            raise ValueError("model.ppo: ppo_epochs, num_minibatches and gradient_accumulation_steps must be >= 1")
        if self.kl_stop_factor <= 0:
            raise ValueError(f"model.ppo.kl_stop_factor must be > 0, got {self.kl_stop_factor}")
        if self.critic_warmup_rollouts < 0:
            raise ValueError(f"model.ppo.critic_warmup_rollouts must be >= 0, got {self.critic_warmup_rollouts}")


@dataclass
class SelectionConfig:
    """Which aspect rewards are active (PAPER.md §1 step 1); see ``alarm_pl/callbacks/selection.py``."""

    mode: Literal["fixed", "auto", "online"] = "fixed"
    """fixed: the listed aspects; auto (the paper's way): before the first PPO update, measure consistency on the
    starting policy's greedy vs sampled responses to ``num_prompts`` training prompts, then decide once; online (our
    extension): measure on the policy being trained, rollout by rollout, after a warm-up of ``warmup_rollouts``, and
    re-decide every ``reselect_every`` rollouts."""
    aspects: Optional[list[str]] = None
    """fixed: the active aspect names; auto/online: the candidates considered. null = every configured aspect scorer."""
    num_prompts: int = 256
    """auto: training prompts of the selection pass, over all processes (each takes its share, rounded up). The paper
    does not state how many prompts its offline study used."""
    warmup_rollouts: int = 4
    """online: rollouts of paired (greedy vs sampled) scoring before the first decision; no aspect is active
    during the warm-up (pure holistic reward)."""
    max_inconsistency: Optional[float] = None
    """auto/online: activate the aspects whose inconsistency is at or below this bound (a share in [0, 1]); combined
    with ``top_k`` when both are set (at most k aspects, each within the bound). Set ``top_k: null`` for all within."""
    top_k: Optional[int] = 1
    """auto/online: activate the k most consistent aspects (paper: 1). null = no limit (needs ``max_inconsistency``)."""
    reselect_every: int = 10
    """online: rollouts between two decisions after the first."""
    hysteresis: float = 0.05
    """online: an active aspect is dropped only when its inconsistency exceeds the bound, or a rival's, by more than
    this margin; a new one is added only when it is below the bound, or beats an active one, by more than it."""
    min_pairs: int = 8
    """auto/online: H-decisive pairs (sign of ΔH non-zero) an aspect needs before it can be selected (decayed counts
    in online mode). auto fails with a clear error when no candidate has this many after its pass."""
    decay: float = 0.9
    """online: factor applied to the accumulated counts before each rollout after the first decision (1 keeps all
    evidence; the effective window is about 1 / (1 − decay) rollouts)."""

    def __post_init__(self) -> None:
        if self.mode not in ("fixed", "auto", "online"):
            raise ValueError(f"model.selection.mode must be fixed, auto or online, got {self.mode!r}")
        if self.aspects is not None and len(set(self.aspects)) != len(self.aspects):
            raise ValueError(f"model.selection.aspects has duplicates: {self.aspects}")
        if self.max_inconsistency is not None and not 0.0 <= self.max_inconsistency <= 1.0:
            raise ValueError(f"model.selection.max_inconsistency must be in [0, 1], got {self.max_inconsistency}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"model.selection.top_k must be >= 1 or null, got {self.top_k}")
        if self.mode != "fixed" and self.top_k is None and self.max_inconsistency is None:
            raise ValueError(f"model.selection.mode={self.mode} needs max_inconsistency or top_k (both are null)")
        for key in ("num_prompts", "warmup_rollouts", "reselect_every", "min_pairs"):
            if getattr(self, key) < 1:
                raise ValueError(f"model.selection.{key} must be >= 1, got {getattr(self, key)}")
        if self.hysteresis < 0:
            raise ValueError(f"model.selection.hysteresis must be >= 0, got {self.hysteresis}")
        if not 0.0 < self.decay <= 1.0:
            raise ValueError(f"model.selection.decay must be in (0, 1], got {self.decay}")


@dataclass
class RewardModelConfig:
    """The reward model trained by ``alarm_pl.reward_training.RewardModelModule``: a Hugging Face sequence
    classifier with one output, trained fully or through a LoRA adapter."""

    model_name_or_path: str = "tiny:mt-reward-init"
    """Where training starts: hub id, local directory, ``tiny:<name>`` or ``dummy:<architecture>`` (e.g.
    ``dummy:ultrarm-13b`` with ``dummy_overrides``). A language-model checkpoint without a one-output head gets a new,
    randomly initialised head (a warning names it)."""
    dummy_overrides: Optional[dict[str, Any]] = None
    """With a ``dummy:`` model: config.json keys to replace (shrinking it for a CPU)."""
    lora_r: int = 0
    """LoRA rank; 0 trains every weight."""
    lora_alpha: int = 32
    """LoRA alpha."""
    lora_dropout: float = 0.05
    """LoRA dropout."""
    lora_target_modules: Optional[list[str]] = None
    """Module names to adapt; ``None`` lets peft pick its default for the architecture. The one-output head is always
    trained in full (peft's ``modules_to_save`` for sequence classification)."""
    dtype: str = "float32"
    """Weights' dtype: float32, bfloat16, float16 or auto."""

    def __post_init__(self) -> None:
        if self.lora_r < 0:
            raise ValueError(f"model.reward_model.lora_r must be >= 0, got {self.lora_r}")
