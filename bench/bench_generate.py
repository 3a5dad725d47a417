"""How much of sampling is Hugging Face ``generate`` itself, and how much the model's own forward passes?

For a tiny policy (``tiny:mt-seq2seq`` or ``tiny:bench-causal``) with a LoRA adapter as in the benchmark configs,
16 prompts, exactly 32 sampled tokens (temperature 1, top-k 0, top-p 1), times in CPU seconds (median of
``--repeats`` rounds, the variants interleaved in each round; one torch thread):

- ``generate (LoRA unmerged)``: ``model.generate`` on the peft model, as a plain peft user would;
- ``generate (LoRA folded)``: the same inside ``alarm_pl.models.sampling.merged_adapter`` (what alarm_pl does);
- ``generate (static cache)``: folded, ``cache_implementation="static"`` (on CPU without ``torch.compile``);
- ``own loop (LoRA folded)``: the bare minimum — the encoder once (seq2seq), then one forward per token with the
  KV cache, softmax + ``torch.multinomial``; no logits processors, stopping criteria or bookkeeping.

``generate``'s overhead is the first folded row minus the own loop. Run: ``python bench/bench_generate.py``
(``--policy bench-causal`` for the causal one). ``--device cuda`` runs the same on a GPU, timed in wall seconds after
``torch.cuda.synchronize()`` (CPU seconds there only count the host); there transformers compiles the forward for
the static-cache row itself (its ``compile_config``). Not run on a GPU yet.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

BATCH, NEW_TOKENS = 16, 32
LORA = {"mt-seq2seq": (16, 32, ["q", "v"]), "bench-causal": (8, 16, ["c_attn"])}  # r, α, targets of the configs


def load(policy: str, device: str):
    """(peft model in eval mode, tokenizer, encoded batch of the TinyMT prompts, seq2seq?)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    from alarm_pl.assets.tiny import ensure_tiny_asset
    from alarm_pl.data.tiny_mt import records

    path = ensure_tiny_asset(policy)
    seq2seq = policy == "mt-seq2seq"
    tokenizer = AutoTokenizer.from_pretrained(path, padding_side="right" if seq2seq else "left")
    model = (AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM).from_pretrained(path)
    r, alpha, targets = LORA[policy]
    model = get_peft_model(model, LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=targets))
    for name, param in model.named_parameters():  # a trained-looking adapter: lora_B starts at zero
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.02)
    prompts = [r["prompt"] for r in records(BATCH, "rl")]  # 16 prompts of the PPO training pool
    batch = tokenizer(prompts, return_tensors="pt", padding=True, return_token_type_ids=False).to(device)
    return model.to(device).eval(), tokenizer, batch, seq2seq


def hf_generate(model, tokenizer, batch, **extra) -> torch.Tensor:
    return model.generate(
        **batch,
        do_sample=True,
        top_k=0,
        top_p=1.0,
        temperature=1.0,
        min_new_tokens=NEW_TOKENS,
        max_new_tokens=NEW_TOKENS,
        pad_token_id=tokenizer.pad_token_id,
        **extra,
    )


def own_loop(model, tokenizer, batch, seq2seq: bool) -> torch.Tensor:
    """Sampling with nothing but the model's forward, the KV cache and ``torch.multinomial`` (no EOS handling: the
    benchmark always generates exactly ``NEW_TOKENS``)."""
    mask = batch["attention_mask"]
    if seq2seq:
        encoder_outputs = model.get_encoder()(input_ids=batch["input_ids"], attention_mask=mask)
        step = torch.full((BATCH, 1), model.config.decoder_start_token_id, device=mask.device)
        inputs = {"encoder_outputs": encoder_outputs, "attention_mask": mask, "decoder_input_ids": step}
    else:
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        inputs = {"input_ids": batch["input_ids"], "attention_mask": mask, "position_ids": positions}
    cache, tokens = None, []
    for _ in range(NEW_TOKENS):
        out = model(**inputs, cache=cache, use_cache=True)  # transformers 5: ``cache`` (was ``past_key_values``)
        cache = out.cache
        token = torch.multinomial(out.logits[:, -1].softmax(-1), 1)  # (B, 1)
        tokens.append(token)
        if seq2seq:
            inputs["decoder_input_ids"] = token
        else:
            mask = torch.cat([mask, mask.new_ones(BATCH, 1)], dim=1)
            inputs = {"input_ids": token, "attention_mask": mask, "position_ids": inputs["position_ids"][:, -1:] + 1}
    return torch.cat(tokens, dim=1)


def timed_round_robin(variants: dict, repeats: int, model) -> dict[str, tuple[float, float]]:
    """(median CPU s, median wall s) of each variant's call over ``repeats`` rounds, the variants interleaved within
    each round (so a change of machine load between rounds hits them all alike), after one warm-up round. A variant
    is ``(fold, fn)``: ``fold`` runs it inside ``merged_adapter(model)``. On CUDA the wall time waits for the device."""
    from alarm_pl.models.sampling import merged_adapter

    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    times = {name: ([], []) for name in variants}
    for round_ in range(repeats + 1):
        for name, (fold, fn) in variants.items():
            with merged_adapter(model) if fold else contextlib.nullcontext(True) as folded:
                assert folded, "the benchmark's adapter should fold"
                sync()
                c, w = time.process_time(), time.perf_counter()
                fn()
                sync()
                if round_:  # round 0 warms up
                    times[name][0].append(time.process_time() - c)
                    times[name][1].append(time.perf_counter() - w)
    return {name: (statistics.median(cpu), statistics.median(wall)) for name, (cpu, wall) in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", choices=sorted(LORA), default="mt-seq2seq")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device on this machine (torch.cuda.is_available() is False)")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model, tokenizer, batch, seq2seq = load(args.policy, args.device)
    base = model.get_base_model()
    variants = {
        "generate (LoRA unmerged)": (False, lambda: hf_generate(model, tokenizer, batch)),
        "generate (LoRA folded)": (True, lambda: hf_generate(base, tokenizer, batch)),
        "generate (static cache)": (True, lambda: hf_generate(base, tokenizer, batch, cache_implementation="static")),
        "own loop (LoRA folded)": (True, lambda: own_loop(base, tokenizer, batch, seq2seq)),
    }
    with torch.no_grad():
        rows = timed_round_robin(variants, args.repeats, model)
    print(
        f"tiny:{args.policy} on {args.device}, {BATCH} prompts × {NEW_TOKENS} tokens, 1 thread, median of "
        f"{args.repeats}"
    )
    print(f"{'':<26} {'CPU s':>7} {'wall s':>7} {'CPU ms/token step':>18}")
    for name, (cpu, wall) in rows.items():
        print(f"{name:<26} {cpu:>7.4f} {wall:>7.4f} {1000 * cpu / NEW_TOKENS:>18.2f}")
    own = rows["own loop (LoRA folded)"][0]
    print(
        f"generate's overhead over the own loop (folded): {100 * (rows['generate (LoRA folded)'][0] / own - 1):.0f} %"
        f"; folding saves {100 * (1 - rows['generate (LoRA folded)'][0] / rows['generate (LoRA unmerged)'][0]):.0f} %"
    )


if __name__ == "__main__":
    main()
