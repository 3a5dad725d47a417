"""The authors' lineage: trl 0.11.4's original ``PPOTrainer`` (the last release with encoder-decoder PPO; the paper's
authors used a trl-0.5 fork of it) on the workload of ``configs/bench_seq2seq.yaml``.

Runs in its own virtual environment (``bash bench/setup_trl_venv.sh 0.11`` makes ``.venv-trl011``). The policy is the
very same tiny asset alarm_pl uses (``tiny:mt-seq2seq``, built by ``alarm_pl.assets.tiny.ensure_tiny_asset`` under
``$ALARM_PL_CACHE``); transformers 4.46 cannot read the tokenizer class that transformers 5 writes
(``TokenizersBackend``), so the asset is copied to a temporary directory whose ``tokenizer_config.json`` names
``PreTrainedTokenizerFast`` (the same ``tokenizer.json``, the same ids), and prompts are encoded without
``token_type_ids`` (T5's ``generate`` in 4.46 refuses them).

The loop is the authors' (``MT/train_ppo.py``): ``PPOTrainer.generate`` (all 16 prompts in one batch; the authors'
default of 4 per batch would only slow trl down) → decode → reward → ``PPOTrainer.step``. Settings matched to the
alarm_pl config: LoRA r 16 / α 32 / dropout 0 on ``q``, ``v`` (peft's T5 default); the reference policy is the
adapter disabled; 16 prompts per rollout (the same TinyMT prompts); exactly 32 sampled tokens (``min_new_tokens =
max_new_tokens = 32``, temperature 1, top-k 0, top-p 1); sentence chrF against the reference (sacrebleu) as the
reward; 4 PPO epochs × minibatches of 8; fixed KL β 0.05 (k1); γ 1, λ 0.95, clip 0.2, value clip 0.2, vf_coef 0.1;
gradient-norm clip 1.0; Adam lr 3e-5 (trl's default optimizer); float32; value-head dropout 0 (trl's default 0.1
would be the only dropout left).

Phases: generate = ``PPOTrainer.generate``; score = decoding + chrF; reference = ``step``'s own
``time/ppo/forward_pass`` (old log-probs and values, then the reference log-probs); update = ``step``'s
``compute_rewards`` + ``compute_advantages`` + ``optimize_step``; the rest of ``step`` (statistics) and the prompt
batch are ``other``. CPU seconds per phase come from wrapping the same pieces (``batched_forward_pass`` without grad
→ reference; with grad, ``train_minibatch``, ``compute_rewards`` and ``compute_advantages`` → update).

Usage: .venv-trl011/bin/python bench/bench_trl011.py --rollouts 10 --warmup 2 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(1, str(BENCH_DIR.parent))  # this checkout's alarm_pl (only alarm_pl.assets.tiny and its data)
from benchlib import PhaseCpuClock, RolloutTiming, report, summarise  # noqa: E402

BATCH, MINIBATCH, PPO_EPOCHS, RESPONSE_LENGTH = 16, 8, 4, 32
LORA_R, LORA_ALPHA, LEARNING_RATE, KL_COEF, MAX_GRAD_NORM = 16, 32, 3e-5, 0.05, 1.0


def readable_copy(asset_dir: Path, out_dir: Path) -> Path:
    """A copy of a tiny asset that transformers 4.46 loads: ``tokenizer_config.json`` names
    ``PreTrainedTokenizerFast`` (transformers 5 writes ``TokenizersBackend``). Model and ``tokenizer.json`` unchanged.
    """
    shutil.copytree(asset_dir, out_dir, dirs_exist_ok=True)
    config_path = out_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config.pop("backend", None)
    config_path.write_text(json.dumps(config, indent=2))
    return out_dir


def prompt_records(n: int = 2048) -> list[dict]:
    """The TinyMT training prompts of ``configs/bench_seq2seq.yaml`` (``prompt``, ``reference``)."""
    from alarm_pl.data.tiny_mt import records

    return list(records(n, "rl"))  # TinyMTDataModule's train split: pool "rl", seed 0


def build_trainer(policy_dir: str, seed: int):
    """(trainer, tokenizer) on the benchmark workload."""
    from peft import LoraConfig
    from transformers import AutoTokenizer
    from trl import AutoModelForSeq2SeqLMWithValueHead, PPOConfig, PPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    tokenizer.padding_side = "right"
    lora = LoraConfig(
        task_type="SEQ_2_SEQ_LM",
        r=LORA_R,
        lora_alpha=LORA_ALPHA,
        lora_dropout=0.0,
        target_modules=["q", "v"],
        bias="none",
    )
    policy = AutoModelForSeq2SeqLMWithValueHead.from_pretrained(
        policy_dir, peft_config=lora, is_trainable=True, summary_dropout_prob=0.0
    )
    config = PPOConfig(
        batch_size=BATCH,
        mini_batch_size=MINIBATCH,
        gradient_accumulation_steps=1,
        ppo_epochs=PPO_EPOCHS,
        learning_rate=LEARNING_RATE,
        adap_kl_ctrl=False,
        init_kl_coef=KL_COEF,
        kl_penalty="kl",
        gamma=1.0,
        lam=0.95,
        cliprange=0.2,
        cliprange_value=0.2,
        vf_coef=0.1,
        max_grad_norm=MAX_GRAD_NORM,
        early_stopping=False,
        seed=seed,
        remove_unused_columns=False,
        accelerator_kwargs={"cpu": True},
    )
    return PPOTrainer(config, policy, ref_model=None, tokenizer=tokenizer), tokenizer


def instrument(trainer, clock: PhaseCpuClock) -> None:
    """CPU seconds per phase from the pieces of ``PPOTrainer.step`` (see the module docstring)."""
    import torch

    clock.wrap(trainer, "generate", "generate")
    clock.wrap(trainer, "batched_forward_pass", lambda: "update" if torch.is_grad_enabled() else "reference")
    for name in ("train_minibatch", "compute_rewards", "compute_advantages"):
        clock.wrap(trainer, name, "update")


def run(trainer, tokenizer, records: list[dict], rollouts: int) -> list[RolloutTiming]:
    """``rollouts`` PPO steps over consecutive prompt batches; one ``RolloutTiming`` per step."""
    import torch
    from sacrebleu.metrics import CHRF

    clock = PhaseCpuClock()
    instrument(trainer, clock)

    chrf = CHRF()
    generation = {
        "do_sample": True,
        "top_k": 0,
        "top_p": 1.0,
        "temperature": 1.0,
        "min_new_tokens": RESPONSE_LENGTH,
        "max_new_tokens": RESPONSE_LENGTH,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    timings, last, last_cpu = [], time.perf_counter(), time.process_time()
    for step in range(rollouts):
        batch = records[step * BATCH % len(records) :][:BATCH]
        queries = [torch.tensor(tokenizer(r["prompt"], return_token_type_ids=False)["input_ids"]) for r in batch]
        start = time.perf_counter()
        responses = trainer.generate(queries, batch_size=BATCH, return_prompt=False, **generation)
        generate_s = time.perf_counter() - start
        start, start_cpu = time.perf_counter(), time.process_time()
        texts = tokenizer.batch_decode(responses, skip_special_tokens=True)
        rewards = [torch.tensor(chrf.sentence_score(t, [r["reference"]]).score) for t, r in zip(texts, batch)]
        score_s, score_cpu = time.perf_counter() - start, time.process_time() - start_cpu
        stats = trainer.step(queries, responses, rewards)
        now, now_cpu = time.perf_counter(), time.process_time()
        phases = {
            "generate": generate_s,
            "score": score_s,
            "reference": stats["time/ppo/forward_pass"],
            "update": stats["time/ppo/compute_rewards"]
            + stats["time/ppo/compute_advantages"]
            + stats["time/ppo/optimize_step"],
        }
        tokens = sum(len(r) - 1 for r in responses)  # minus the decoder start token trl keeps
        timings.append(
            RolloutTiming(
                now - last, phases, len(batch), tokens, now_cpu - last_cpu, {**clock.take(), "score": score_cpu}
            )
        )
        last, last_cpu = now, now_cpu
    return timings


def main(argv: list[str] | None = None) -> dict:
    """Parse arguments, train warm-up + measured rollouts, print the table and the ``BENCH_JSON`` line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollouts", type=int, default=10, help="measured rollouts (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=2, help="rollouts run before measuring (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.rollouts < 1 or args.warmup < 0:
        parser.error("--rollouts must be >= 1 and --warmup >= 0")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    import transformers
    import trl

    from alarm_pl.assets.tiny import ensure_tiny_asset

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_trl011_") as tmp:
        policy_dir = readable_copy(ensure_tiny_asset("mt-seq2seq"), Path(tmp) / "mt-seq2seq")
        trainer, tokenizer = build_trainer(str(policy_dir), args.seed)
        timings = run(trainer, tokenizer, prompt_records(), args.warmup + args.rollouts)
    summary = summarise(
        "trl011",
        timings[args.warmup :],
        args.warmup,
        {"trl": trl.__version__, "torch": torch.__version__, "transformers": transformers.__version__},
    )
    report(summary)
    return summary


if __name__ == "__main__":
    main()
