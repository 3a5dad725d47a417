"""The peer: trl 1.12's PPO trainer (``trl.experimental.ppo.PPOTrainer``) on the workload of configs/bench_causal.yaml.

Runs in its own virtual environment (``bash bench/setup_trl_venv.sh`` makes ``.venv-trl``). The tiny models are the
very same files alarm_pl uses: ``alarm_pl.assets.tiny.ensure_tiny_asset`` (imported from this checkout; it needs only
torch, transformers and tokenizers) builds them once under ``$ALARM_PL_CACHE`` and both trainers load them from there.

Settings matched to the alarm_pl config: LoRA r 8 / α 16 / dropout 0 on ``c_attn``; the reference policy is the
adapter disabled; 16 prompts per rollout (the same TinyMT prompts); exactly 32 sampled tokens (no stop token,
temperature 1, top-k 0, top-p 1); 4 PPO epochs × 2 minibatches of 8, one optimizer step per minibatch; k1 KL with a
fixed β 0.05; γ 1, λ 0.95, clip 0.2, value clip 0.2, vf_coef 0.1; AdamW lr 3e-5 constant; float32 (trl's bf16 and
gradient-checkpointing defaults are switched off). What cannot be matched is trl's design (bench/README.md): the
value function is a separate, fully trained sequence-classifier (initialised from the reward model, as in trl's
examples) rather than a head on the policy trunk.

trl exposes no per-phase timers, so its module-level helpers are wrapped: ``batch_generation`` → generate;
``forward`` without grad (the reference policy) and ``get_reward`` on the value model (old values) → reference;
``get_reward`` on the reward model → score; from the first ``forward`` with grad to the end of the step → update.

Usage: .venv-trl/bin/python bench/bench_trl.py --rollouts 10 --warmup 2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(1, str(BENCH_DIR.parent))  # this checkout's alarm_pl (only alarm_pl.assets.tiny and its data are used)
from benchlib import RolloutTiming, report, summarise  # noqa: E402

BATCH, RESPONSE_LENGTH, PPO_EPOCHS, MINIBATCHES = 16, 32, 4, 2
LORA_R, LORA_ALPHA, LEARNING_RATE, KL_COEF = 8, 16, 3e-5, 0.05


class PhaseClock:
    """Accumulates wall and CPU seconds per phase for the current rollout; ``close`` turns them into a
    ``RolloutTiming``."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.update_start: tuple[float, float] | None = None
        self.rollouts: list[RolloutTiming] = []
        self.last_end: tuple[float, float] | None = None

    @staticmethod
    def now() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    def add(self, phase: str, start: tuple[float, float]) -> None:
        """Add the wall and CPU seconds since ``start`` (a ``now()``) to ``phase``."""
        wall, cpu = self.now()
        self.phases[phase] = self.phases.get(phase, 0.0) + wall - start[0]
        self.cpu[phase] = self.cpu.get(phase, 0.0) + cpu - start[1]

    def close(self, episodes: int, tokens: int) -> None:
        """End of a rollout (trl's ``on_step_end``): record it and reset."""
        if self.update_start is not None:
            self.add("update", self.update_start)
        wall, cpu = self.now()
        self.rollouts.append(
            RolloutTiming(
                wall - self.last_end[0], dict(self.phases), episodes, tokens, cpu - self.last_end[1], dict(self.cpu)
            )
        )
        self.phases, self.cpu, self.update_start, self.last_end = {}, {}, None, (wall, cpu)


def instrument(ppo_module, clock: PhaseClock, reward_model_ref: list) -> None:
    """Wrap trl's module-level ``batch_generation``, ``forward`` and ``get_reward`` with the phase clock.

    Args:
        ppo_module: ``trl.experimental.ppo.ppo_trainer`` (``train`` looks these names up there at call time).
        clock: where the seconds go.
        reward_model_ref: one-element list holding the reward model (set once the trainer exists).
    """
    import torch

    generate, forward, get_reward = ppo_module.batch_generation, ppo_module.forward, ppo_module.get_reward

    def timed_generation(*args, **kwargs):
        start = clock.now()
        out = generate(*args, **kwargs)
        clock.add("generate", start)
        return out

    def timed_forward(*args, **kwargs):
        if torch.is_grad_enabled():  # PPO epochs: the update runs from the first such call to the step's end
            if clock.update_start is None:
                clock.update_start = clock.now()
            return forward(*args, **kwargs)
        start = clock.now()
        out = forward(*args, **kwargs)
        clock.add("reference", start)
        return out

    def timed_reward(model, *args, **kwargs):
        start = clock.now()
        out = get_reward(model, *args, **kwargs)
        clock.add("score" if model is reward_model_ref[0] else "reference", start)
        return out

    ppo_module.batch_generation, ppo_module.forward, ppo_module.get_reward = (
        timed_generation,
        timed_forward,
        timed_reward,
    )


def load_models(policy_dir: str, reward_dir: str):
    """(tokenizer, policy, reward model, value model) from the tiny asset directories; the value model starts as a
    copy of the reward model, as in trl's PPO examples."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(policy_dir, padding_side="left")
    policy = AutoModelForCausalLM.from_pretrained(policy_dir)
    reward = AutoModelForSequenceClassification.from_pretrained(reward_dir, num_labels=1).requires_grad_(False)
    value = AutoModelForSequenceClassification.from_pretrained(reward_dir, num_labels=1)
    return tokenizer, policy, reward.eval(), value


def prompt_datasets(tokenizer, num_train: int = 2048, num_eval: int = 16):
    """Tokenized TinyMT prompts (the alarm_pl data module's records, same seeds) as ``datasets.Dataset``."""
    from datasets import Dataset

    from alarm_pl.data.tiny_mt import records

    def encode(n: int, pool: str) -> Dataset:
        return Dataset.from_dict({"input_ids": [tokenizer(r["prompt"])["input_ids"] for r in records(n, pool)]})

    return encode(num_train, "rl"), encode(num_eval, "val")


def build_trainer(
    rollouts: int,
    out_dir: str,
    clock: PhaseClock,
    seed: int,
    batch: int = BATCH,
    response_length: int = RESPONSE_LENGTH,
):
    """The trl PPOTrainer on the benchmark workload (``batch`` prompts, exactly ``response_length`` new tokens),
    instrumented; returns the trainer."""
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl.experimental.ppo import PPOConfig, PPOTrainer, ppo_trainer

    from alarm_pl.assets.tiny import ensure_tiny_asset

    tokenizer, policy, reward, value = load_models(
        str(ensure_tiny_asset("bench-causal")), str(ensure_tiny_asset("bench-reward"))
    )
    train, evaluation = prompt_datasets(tokenizer)
    args = PPOConfig(
        output_dir=out_dir,
        seed=seed,
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=1,
        num_mini_batches=MINIBATCHES,
        num_ppo_epochs=PPO_EPOCHS,
        response_length=response_length,
        stop_token=None,
        temperature=1.0,
        total_episodes=batch * rollouts,
        local_rollout_forward_batch_size=batch,
        learning_rate=LEARNING_RATE,
        lr_scheduler_type="constant",
        kl_coef=KL_COEF,
        kl_estimator="k1",
        cliprange=0.2,
        cliprange_value=0.2,
        vf_coef=0.1,
        gamma=1.0,
        lam=0.95,
        whiten_rewards=False,
        bf16=False,
        fp16=False,
        gradient_checkpointing=False,
        use_cpu=True,
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        num_sample_generations=0,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    peft_config = LoraConfig(
        task_type="CAUSAL_LM", r=LORA_R, lora_alpha=LORA_ALPHA, lora_dropout=0.0, target_modules=["c_attn"]
    )
    reward_ref: list = [reward]
    instrument(ppo_trainer, clock, reward_ref)

    class StepClock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            clock.last_end = clock.now()

        def on_step_end(self, args, state, control, **kwargs):
            clock.close(batch, batch * response_length)  # no stop token: every response has exactly that length

    trainer = PPOTrainer(
        args=args,
        processing_class=tokenizer,
        model=policy,
        ref_model=None,
        reward_model=reward,
        train_dataset=train,
        value_model=value,
        eval_dataset=evaluation,
        peft_config=peft_config,
        callbacks=[StepClock()],
    )
    reward_ref[0] = trainer.reward_model  # the trainer may move it; identity is what the wrapper compares
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # it would print every step's metrics dict
    return trainer


def main(argv: list[str] | None = None) -> dict:
    """Parse arguments, train warm-up + measured rollouts, print the table and the ``BENCH_JSON`` line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollouts", type=int, default=10, help="measured rollouts (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=2, help="rollouts run before measuring (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=BATCH, help="prompts per rollout (default: %(default)s)")
    parser.add_argument(
        "--response-length",
        type=int,
        default=RESPONSE_LENGTH,
        help="new tokens per response, exactly (default: %(default)s; prompt + response <= 256, the "
        "tiny models' positions)",
    )
    parser.add_argument(
        "--skip-gc-collect",
        action="store_true",
        help="diagnostic: make trl's two explicit gc.collect() calls per rollout no-ops",
    )
    args = parser.parse_args(argv)
    if args.rollouts < 1 or args.warmup < 0 or args.batch < MINIBATCHES or args.batch % MINIBATCHES:
        parser.error(f"--rollouts must be >= 1, --warmup >= 0, --batch a multiple of {MINIBATCHES} (the minibatches)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    import transformers
    import trl

    if args.threads:
        torch.set_num_threads(args.threads)
    clock = PhaseClock()
    if args.skip_gc_collect:
        from types import SimpleNamespace

        from trl.experimental.ppo import ppo_trainer

        ppo_trainer.gc = SimpleNamespace(collect=lambda *a: 0)  # only trl's module sees this stub
    with tempfile.TemporaryDirectory(prefix="bench_trl_") as out_dir:
        trainer = build_trainer(
            args.warmup + args.rollouts, out_dir, clock, args.seed, args.batch, args.response_length
        )
        trainer.train()
    if len(clock.rollouts) != args.warmup + args.rollouts:
        raise RuntimeError(f"trl ran {len(clock.rollouts)} rollouts, expected {args.warmup + args.rollouts}")
    summary = summarise(
        "trl",
        clock.rollouts[args.warmup :],
        args.warmup,
        {
            "trl": trl.__version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "skip_gc_collect": args.skip_gc_collect,
            "batch": args.batch,
            "response_length": args.response_length,
        },
    )
    report(summary)
    return summary


if __name__ == "__main__":
    main()
