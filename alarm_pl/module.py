"""The PPO LightningModule: orchestrates one rollout per training step; the maths lives in ``ppo/functional.py`` and
``rewards/compose.py``.

One training step (DESIGN.md): generate → old log-probs + values → reference log-probs → score → rollout callbacks
→ reward − β·KL → GAE → whitened advantages → ``ppo.ppo_epochs`` × minibatches of manual optimisation →
KL-controller update → logs.

The rollout callbacks run in a fixed order (``callbacks/base.py``): aspect selection (``AspectSelection``), then the
reward composition of the configured strategy (``RewardComposition``), both installed by ``configure_callbacks``,
then any user ``RolloutCallback`` from ``trainer.callbacks``, which sees — and may adjust — the composed
``token_rewards`` that PPO trains on. The callbacks see this module only through the ``PolicyScorer`` protocol
(``score_prompts``).

Validation and test (the evaluated policy beside the starting one) are the ``PolicyEvaluation`` mixin's
(``eval/baseline.py``); per-rollout metrics go through ``step_metrics.log_step_metrics``.

``trainer.max_steps`` counts **rollouts** (PPO steps in the paper's sense), not optimizer steps: each rollout takes
several optimizer steps, but only its last one goes through Lightning's optimizer wrapper, so ``global_step`` advances
by exactly one per rollout.
"""

from __future__ import annotations

import math
import time
from typing import Optional, Union

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy
from torch import Tensor

from alarm_pl.callbacks.base import rollout_pipeline
from alarm_pl.callbacks.composition import RewardComposition
from alarm_pl.callbacks.selection import AspectSelection
from alarm_pl.checkpointing import ResumeState
from alarm_pl.checkpointing.module_hooks import PolicyCheckpointHooks
from alarm_pl.config import GenerationConfig, PolicyConfig, PPOConfig, RewardConfig, SelectionConfig
from alarm_pl.data.prompts import PromptBatch
from alarm_pl.eval.baseline import PolicyEvaluation
from alarm_pl.faults import NonFiniteError, is_out_of_memory, memory_advice
from alarm_pl.models.policy import Generation, Policy
from alarm_pl.models.sampling import SampledScores
from alarm_pl.ppo import functional as F
from alarm_pl.ppo.kl import AdaptiveKLController, FixedKLController
from alarm_pl.rewards.base import Score, Scorer, ScoringInput
from alarm_pl.rewards.pipeline import ScoredBatch, ScoringPipeline
from alarm_pl.rollout import Rollout
from alarm_pl.step_metrics import log_step_metrics, rollout_metrics

KLController = Union[AdaptiveKLController, FixedKLController]


class ALaRMModule(PolicyCheckpointHooks, PolicyEvaluation, pl.LightningModule):
    """PPO with hierarchical rewards over a LoRA-adapted policy.

    Args:
        holistic: the holistic reward scorer (a reward model, or a reference-based score for offline runs).
        aspects: candidate aspect scorers; which of them count is decided by ``selection``.
        policy: the policy (model, LoRA, reference policy, quantization).
        generation: rollout and evaluation decoding.
        reward: strategy, threshold τ, holistic weight w_h, degenerate-response rule.
        selection: which aspects are active (fixed list, automatic, or online re-selection).
        ppo: PPO hyper-parameters.
        kl_controller: β of the KL penalty: adaptive (paper: β₀ 0.2, target 6, horizon 10,000) or fixed.
        optimizer: optimizer over the adapter and value head (e.g. ``torch.optim.AdamW`` with ``lr``).
        lr_scheduler: optional scheduler, stepped once per rollout.
        max_prompt_length: prompts are truncated to this many tokens (paper QA: 1024).
        generations_dir: where validation/test generation files go (default: the logger's directory).
        evaluate_baseline: every test run, and the first validation of a run, also decode the split with the
            starting policy (the reference: adapter disabled) and log ``<stage>/baseline/*`` beside ``<stage>/*``
            (and write its generation file), so that a run shows whether training helped. Costs one more decoding
            pass over the split.
    """

    def __init__(
        self,
        holistic: Scorer,
        aspects: Optional[list[Scorer]] = None,
        policy: PolicyConfig = PolicyConfig(),
        generation: GenerationConfig = GenerationConfig(),
        reward: RewardConfig = RewardConfig(),
        selection: SelectionConfig = SelectionConfig(),
        ppo: PPOConfig = PPOConfig(),
        kl_controller: Optional[KLController] = None,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        lr_scheduler: Optional[LRSchedulerCallable] = None,
        max_prompt_length: Optional[int] = 512,
        generations_dir: Optional[str] = None,
        evaluate_baseline: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["holistic", "aspects", "kl_controller", "optimizer", "lr_scheduler"])
        self.automatic_optimization = False
        self.strict_loading = False  # checkpoints hold the trainable weights only (adapter + value head)
        self.policy = Policy(policy)
        self.scoring = ScoringPipeline(holistic, aspects or [], reward)
        self.generation_config, self.reward_config, self.selection_config, self.ppo_config = (
            generation,
            reward,
            selection,
            ppo,
        )
        self.kl_controller = kl_controller if kl_controller is not None else AdaptiveKLController()
        self.optimizer_factory, self.scheduler_factory = optimizer, lr_scheduler
        if max_prompt_length is not None and max_prompt_length < 1:
            raise ValueError(f"model.max_prompt_length must be >= 1 or null (no truncation), got {max_prompt_length}")
        self.max_prompt_length = max_prompt_length
        self.init_policy_evaluation(generations_dir, evaluate_baseline)

    # ------------------------------------------------------------------ Lightning hooks
    def setup(self, stage: str) -> None:
        self.policy.load()
        self.scoring.setup(self.device)

    def teardown(self, stage: str) -> None:
        self.scoring.teardown()

    def transfer_batch_to_device(self, batch, device, dataloader_idx: int):
        return batch  # prompt batches are texts; they are tokenized on the device in the step

    def configure_callbacks(self) -> list[pl.Callback]:
        return [
            AspectSelection(self.selection_config, self.scoring.aspect_names),
            RewardComposition(self.reward_config),
            ResumeState(),
        ]

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.policy.trainable_parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer), "interval": "step"},
        }

    def on_fit_start(self) -> None:
        strategy = type(self.trainer.strategy)
        if strategy not in (SingleDeviceStrategy, DDPStrategy):  # exact types: DeepSpeedStrategy subclasses DDP
            raise RuntimeError(
                f"trainer.strategy: {strategy.__name__} is not supported yet; use a single device or "
                "'ddp' (the only strategy whose per-backward gradient sync under several optimizer "
                "steps per rollout is tested)"
            )
        if "16-mixed" == str(self.trainer.precision):
            raise RuntimeError(
                "trainer.precision=16-mixed is not supported (PPO's inner optimizer steps bypass the "
                "loss scaler); use bf16-mixed or 32-true"
            )

    # ------------------------------------------------------------------ one rollout
    def training_step(self, batch: PromptBatch, batch_idx: int) -> None:
        rollout = self.make_rollout(batch)
        for callback in rollout_pipeline(self.trainer.callbacks):  # selection → composition → user callbacks
            rollout = callback.on_rollout_scored(self.trainer, self, rollout)
        if rollout.token_rewards is None:
            raise RuntimeError(
                "the rollout callbacks left token_rewards unset (a user RolloutCallback must hand back "
                "the composed rewards it received, adjusted or not)"
            )
        if not bool(torch.isfinite(rollout.token_rewards).all()):
            raise NonFiniteError(
                "the composed token rewards hold NaN or inf after the rollout callbacks; a user "
                "RolloutCallback must hand back finite rewards (nothing was trained on them)"
            )
        start = time.perf_counter()
        try:
            stats = self.ppo_update(rollout)
        except Exception as err:  # noqa: BLE001 - only out-of-memory errors get the advice
            if is_out_of_memory(err):
                raise torch.OutOfMemoryError(memory_advice("the PPO update", err)) from err
            raise
        stats["time/update"] = time.perf_counter() - start
        if self._trainer is not None:  # not self.log_dict: 0.8 ms per key (alarm_pl/step_metrics.py)
            log_step_metrics(self.trainer, rollout_metrics(rollout, stats))

    def make_rollout(self, batch: PromptBatch) -> Rollout:
        """Generate responses for the prompts and compute everything PPO and the callbacks need: the old log-probs and
        values (from generation's own pass where that is exact, ``generation.old_logprobs_from``), the reference
        log-probs, the scores."""
        times = {}
        start = time.perf_counter()
        query_ids, query_mask = self.policy.tokenize_prompts(batch.prompts, self.max_prompt_length, self.device)
        self.policy.no_dropout()
        cfg = self.generation_config
        if self._old_from_generation():
            generated, old = self.policy.generate_with_scores(query_ids, query_mask, cfg, cfg.do_sample)
        else:
            generated, old = self.policy.generate(query_ids, query_mask, cfg, cfg.do_sample), None
        response_ids, response_mask = generated
        times["time/generate"] = time.perf_counter() - start

        start = time.perf_counter()
        if old is None:
            with torch.no_grad():
                out = self.policy(query_ids, query_mask, response_ids, response_mask)
            old = SampledScores(out.logprobs, out.values)
        ref_logprobs = self.policy.reference_logprobs(query_ids, query_mask, response_ids, response_mask)
        times["time/reference"] = time.perf_counter() - start

        start = time.perf_counter()
        inputs, scored = self._decode_and_score(
            batch.prompts, batch.references, batch.metadata, generated, update_normalizers=True
        )
        times["time/score"] = time.perf_counter() - start
        times.update({f"dropped/{name}": float(count) for name, count in scored.dropped_by.items()})
        keep = response_mask & ~scored.dropped.unsqueeze(1)  # (B, T): a dropped sample takes no part in the update
        return Rollout(
            query_ids=query_ids,
            query_mask=query_mask,
            response_ids=response_ids,
            response_mask=keep,
            inputs=inputs,
            old_logprobs=old.logprobs * keep,
            ref_logprobs=ref_logprobs * keep,
            values=old.values * keep,
            scores=scored.scores,
            holistic_name=self.scoring.holistic_scorer.name,
            holistic=scored.holistic,
            aspect_rewards=scored.aspect_rewards,
            degenerate=scored.degenerate,
            stats=times,
        )

    def _old_from_generation(self) -> bool:
        """``generation.old_logprobs_from``: generation's own scores, or a separate forward (``auto``: where exact)."""
        source = self.generation_config.old_logprobs_from
        return source == "generation" or (source == "auto" and self.policy.generation_scores_exact(self.device.type))

    @torch.no_grad()
    def score_prompts(self, batch: PromptBatch, do_sample: bool) -> tuple[Tensor, dict[str, Score]]:
        """The ``PolicyScorer`` protocol of the rollout callbacks (aspect selection): responses of the current
        policy (eval mode, no update, normalisers not fed), scored: (H (B,), {aspect: raw Score})."""
        self.policy.eval()
        _, scored = self.generate_and_score(batch, do_sample)
        return scored.holistic, {name: scored.scores[name] for name in self.scoring.aspect_names}

    def generate_and_score(self, batch: PromptBatch, do_sample: bool) -> tuple[ScoringInput, ScoredBatch]:
        """Responses to a prompt batch with the given decoding, scored without touching running normalisers
        (evaluation, calibration)."""
        query_ids, query_mask = self.policy.tokenize_prompts(batch.prompts, self.max_prompt_length, self.device)
        generated = self.policy.generate(query_ids, query_mask, self.generation_config, do_sample)
        return self._decode_and_score(
            batch.prompts, batch.references, batch.metadata, generated, update_normalizers=False
        )

    def _decode_and_score(
        self, prompts, references, metadata, generated: Generation, update_normalizers: bool
    ) -> tuple[ScoringInput, ScoredBatch]:
        inputs = self.scoring.build_inputs(self.policy.tokenizer, prompts, references, metadata, *generated)
        return inputs, self.scoring.score(inputs, update_normalizers=update_normalizers)

    # ------------------------------------------------------------------ PPO
    def ppo_update(self, rollout: Rollout) -> dict[str, float]:
        """Advantages from the rollout, then ``ppo_epochs`` × minibatches of clipped PPO updates."""
        cfg, mask = self.ppo_config, rollout.response_mask
        beta = self.kl_controller.value
        rewards = F.kl_penalized_rewards(
            rollout.token_rewards, rollout.old_logprobs, rollout.ref_logprobs, mask, beta, cfg.kl_estimator
        )
        if cfg.whiten_rewards:
            rewards = F.masked_whiten(rewards, mask, shift_mean=False, reduce=self._sum_across_processes)
        advantages, returns = F.compute_gae(rewards, rollout.values, mask, cfg.gamma, cfg.lam)
        if cfg.advantage_normalization == "whiten":
            advantages = F.masked_whiten(advantages, mask, reduce=self._sum_across_processes)
        elif cfg.advantage_normalization == "center":
            advantages = F.masked_center(advantages, mask, reduce=self._sum_across_processes)
        stats = self._ppo_epochs(rollout, advantages, returns)

        kl = F.kl_estimate(rollout.old_logprobs, rollout.ref_logprobs, cfg.kl_estimator) * mask
        mean_kl = self._mean_across_processes(kl.sum(dim=1).mean())
        world = self.trainer.world_size if self._trainer is not None else 1
        self.kl_controller.update(float(mean_kl), n_steps=rollout.batch_size * world)
        if self.lr_schedulers() is not None:
            self.lr_schedulers().step()
        stats.update(
            {
                "kl": float(mean_kl),
                "kl_coef": beta,
                "explained_variance": float(F.explained_variance(rollout.values, returns, mask)),
                "value_mean": float(F.masked_mean(rollout.values, mask)),
                "return_mean": float(F.masked_mean(returns, mask)),
            }
        )
        return stats

    def _ppo_epochs(self, rollout: Rollout, advantages: Tensor, returns: Tensor) -> dict[str, float]:
        cfg = self.ppo_config
        optimizer = self.optimizers()
        batch = rollout.batch_size
        minibatch = math.ceil(batch / cfg.num_minibatches)
        history: list[dict[str, Tensor]] = []
        self.policy.no_dropout()  # the same mode as the rollout's passes: the ratio starts at exactly 1
        for epoch in range(cfg.ppo_epochs):
            epoch_stats = []
            order = torch.randperm(batch, device=self.device).split(minibatch)
            for i, idx in enumerate(order):
                epoch_stats.append(self._minibatch_backward(rollout, advantages, returns, idx))
                epoch_end = i == len(order) - 1
                stop = epoch_end and self._should_stop(epoch_stats)
                if (i + 1) % cfg.gradient_accumulation_steps == 0 or epoch_end:
                    self._optimizer_step(optimizer, counted=epoch_end and (stop or epoch == cfg.ppo_epochs - 1))
            history.extend(epoch_stats)
            if stop:
                break
        summary = {key: float(torch.stack([h[key] for h in history]).mean()) for key in history[0]}
        summary["ppo_epochs_run"] = float(epoch + 1)
        return summary

    def _minibatch_backward(
        self, rollout: Rollout, advantages: Tensor, returns: Tensor, idx: Tensor
    ) -> dict[str, Tensor]:
        cfg = self.ppo_config
        mask = rollout.response_mask[idx]
        critic_only = self.critic_warming_up
        out = self.policy(
            rollout.query_ids[idx],
            rollout.query_mask[idx],
            rollout.response_ids[idx],
            mask,
            trunk_grad=not critic_only,
            entropy_grad=cfg.entropy_coef != 0,
        )
        pg_loss, pg_stats = F.policy_loss(
            out.logprobs, rollout.old_logprobs[idx], advantages[idx], mask, cfg.clip_range
        )
        vf_loss, vf_stats = F.value_loss(out.values, rollout.values[idx], returns[idx], mask, cfg.value_clip_range)
        entropy = F.masked_mean(out.entropy, mask)
        loss = cfg.vf_coef * vf_loss if critic_only else pg_loss + cfg.vf_coef * vf_loss - cfg.entropy_coef * entropy
        self.manual_backward(loss / cfg.gradient_accumulation_steps)
        stats = {
            "loss/policy": pg_loss,
            "loss/value": vf_loss,
            "entropy": entropy,
            **pg_stats._asdict(),
            **vf_stats._asdict(),
        }
        return {k: v.detach().float() for k, v in stats.items()}

    @property
    def critic_warming_up(self) -> bool:
        """Whether this rollout trains the value head alone (``ppo.critic_warmup_rollouts``; resumes count on)."""
        return self.global_step < self.ppo_config.critic_warmup_rollouts

    def _should_stop(self, epoch_stats: list[dict[str, Tensor]]) -> bool:
        """Early stop of the PPO epochs when the ``ppo.early_stop`` KL (averaged over processes) exceeds
        ``ppo.kl_stop_factor`` × ``ppo.target_kl``: approx_kl averaged over the epoch, or trl's k1 policy_kl of the
        epoch's last minibatch."""
        cfg = self.ppo_config
        if cfg.target_kl is None:
            return False
        if cfg.early_stop == "last_minibatch":
            kl = epoch_stats[-1]["policy_kl"]
        else:
            kl = torch.stack([s["approx_kl"] for s in epoch_stats]).mean()
        return bool(self._mean_across_processes(kl) > cfg.kl_stop_factor * cfg.target_kl)

    def _optimizer_step(self, optimizer, counted: bool) -> None:
        """Clip and step. ``counted`` steps go through Lightning's wrapper (one per rollout, so that ``global_step``
        counts rollouts); the others step the wrapped torch optimizer directly.

        Gradients are already averaged across processes: under manual optimisation Lightning's DDP strategy prepares
        the DDP reducer before every ``manual_backward`` (``DDPStrategy.pre_backward``), so each of the several
        backward passes of a rollout is synchronised, not only the first after DDP's forward. ``tests/test_ddp.py``
        checks it with two processes, and that the check fails when that preparation is switched off."""
        params = self.policy.trainable_parameters()
        norm = torch.nn.utils.clip_grad_norm_(params, self.ppo_config.max_grad_norm or math.inf)
        if not bool(torch.isfinite(norm)):  # the same on every process: gradients are already averaged
            last = getattr(self.trainer.checkpoint_callback, "last_model_path", "") or "none yet"
            raise NonFiniteError(
                f"rollout {self.global_step + 1}: the gradient norm is {float(norm)} (a NaN/inf "
                f"loss); this optimizer step was not applied and training stops. The last checkpoint "
                f"is {last}; resume from it with a lower learning rate or model.ppo.max_grad_norm"
            )
        if counted:
            optimizer.step()
        else:
            optimizer.optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def _sum_across_processes(self, tensor: Tensor) -> Tensor:
        if self._trainer is None or self.trainer.world_size == 1:
            return tensor
        return self.trainer.strategy.reduce(tensor, reduce_op="sum")

    def _mean_across_processes(self, tensor: Tensor) -> Tensor:
        if self._trainer is None or self.trainer.world_size == 1:
            return tensor
        return self.trainer.strategy.reduce(tensor, reduce_op="mean")

    # ------------------------------------------------------------------ export
    def export(self, out_dir: str, merged: bool = False) -> None:
        """Write a standard peft adapter directory (and optionally the merged model); see ``Policy.export``."""
        self.policy.export(out_dir, merged=merged)
