"""Generation's own pass as the old policy (models/sampling.py) and the trimmed full-sequence pass (models/passes.py):
equal to a separate forward on both policy kinds, mixed lengths, left-padded causal prompts; the folded adapter leaves
the base weights bit-identical; the rollout takes the forward only where generation's scores are not exact."""

import dataclasses

import pytest
import torch

from alarm_pl.config import GenerationConfig, PolicyConfig
from alarm_pl.models.passes import trim_prompt_padding
from alarm_pl.models.policy import Policy
from alarm_pl.models.sampling import StepRecorder, merged_adapter, scores_are_exact

PROMPTS = [
    "translate Spanish to English: El perro come pan.",
    "translate Spanish to English: ¿Dónde está mi madre?",
    "translate Spanish to English: La niña es alta.",
    "translate Spanish to English: Nuestro vecino ve una bicicleta nueva en el parque cada día por la mañana.",
]
TOL = dict(atol=2e-5, rtol=2e-5)


def _trained_policy(name: str, **overrides) -> Policy:
    """A LoRA policy whose adapter is not the identity (random B), dropout configured on."""
    torch.manual_seed(0)
    config = dict(model_name_or_path=name, lora_r=4, lora_alpha=8, lora_dropout=0.1)
    policy = Policy(PolicyConfig(**{**config, **overrides}))
    policy.load()
    with torch.no_grad():
        for param_name, param in policy.model.named_parameters():
            if "lora_B" in param_name:
                param.normal_(0.0, 0.05)
    return policy.eval()


@pytest.fixture(scope="module", params=["tiny:mt-seq2seq", "tiny:mt-causal"])
def policy(request):
    return _trained_policy(request.param)


def _prompts(policy):
    query_ids, query_mask = policy.tokenize_prompts(PROMPTS, 64, torch.device("cpu"))
    if not policy.is_seq2seq:  # left padding: the short prompts start with padding columns
        assert not query_mask[:, 0].all() and query_mask[:, -1].all()
    return query_ids, query_mask


@pytest.mark.parametrize(
    "decoding",
    [
        dict(do_sample=True, temperature=0.7, top_k=50, top_p=0.9),  # processors change the sampling scores, not π
        dict(do_sample=True),
        dict(do_sample=False),
    ],
)
def test_generation_scores_equal_the_forward(policy, decoding):
    query_ids, query_mask = _prompts(policy)
    decoding = dict(decoding)
    do_sample = decoding.pop("do_sample")
    config = GenerationConfig(max_new_tokens=24, **decoding)
    torch.manual_seed(3)
    generated, scores = policy.generate_with_scores(query_ids, query_mask, config, do_sample)
    lengths = generated.response_mask.sum(dim=1)
    if do_sample:
        assert lengths.unique().numel() > 1, "want mixed response lengths (EOS inside the batch)"
    with torch.no_grad():
        forward = policy(query_ids, query_mask, *generated)
    torch.testing.assert_close(scores.logprobs, forward.logprobs, **TOL)
    torch.testing.assert_close(scores.values, forward.values, **TOL)
    assert torch.all(scores.logprobs[~generated.response_mask] == 0)
    assert torch.all(scores.values[~generated.response_mask] == 0)


def test_generation_scores_are_the_unprocessed_policy(policy):
    """At temperature 0.5 the sampling distribution is sharper than π: the recorded log-probs must be π's."""
    query_ids, query_mask = _prompts(policy)
    torch.manual_seed(4)
    generated, scores = policy.generate_with_scores(
        query_ids, query_mask, GenerationConfig(max_new_tokens=12, temperature=0.5), True
    )
    with torch.no_grad():
        logits, _ = policy._logits_and_hidden(query_ids, query_mask, *generated)
    tempered = torch.log_softmax(logits / 0.5, dim=-1).gather(-1, generated.response_ids.unsqueeze(-1)).squeeze(-1)
    real = generated.response_mask
    assert (scores.logprobs[real] - tempered[real]).abs().max() > 1e-2  # a recorder of processed scores would fail
    plain = torch.log_softmax(logits, dim=-1).gather(-1, generated.response_ids.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(scores.logprobs[real], plain[real], **TOL)


def test_trimmed_pass_equals_the_plain_model_call(policy):
    """The trimmed, cache-free, hooked pass gives the logits and hidden states of the plain full call."""
    query_ids, query_mask = _prompts(policy)
    padded_ids = torch.cat([query_ids, torch.full_like(query_ids[:, :3], policy.tokenizer.pad_token_id)], dim=1)
    padded_mask = torch.cat([query_mask, torch.zeros_like(query_mask[:, :3])], dim=1)
    if not policy.is_seq2seq:  # extra padding on the causal side is on the left
        padded_ids, padded_mask = padded_ids.roll(3, dims=1), padded_mask.roll(3, dims=1)
    generated = policy.generate(query_ids, query_mask, GenerationConfig(max_new_tokens=10), do_sample=False)
    ids, mask = generated
    with torch.no_grad():
        logits, hidden = policy._logits_and_hidden(padded_ids, padded_mask, ids, mask)
        if policy.is_seq2seq:
            decoder_in = torch.cat([torch.full_like(ids[:, :1], policy.decoder_start_token_id), ids[:, :-1]], dim=1)
            out = policy.model(
                input_ids=query_ids,
                attention_mask=query_mask.long(),
                decoder_input_ids=decoder_in,
                output_hidden_states=True,
            )
            expected_logits, expected_hidden = out.logits, out.decoder_hidden_states[-1]
        else:
            attention = torch.cat([query_mask, mask], dim=1).long()
            out = policy.model(
                input_ids=torch.cat([query_ids, ids], dim=1),
                attention_mask=attention,
                position_ids=(attention.cumsum(1) - 1).clamp(min=0),
                output_hidden_states=True,
            )
            p = query_ids.shape[1]
            expected_logits, expected_hidden = (
                out.logits[:, p - 1 : p - 1 + ids.shape[1]],
                out.hidden_states[-1][:, p - 1 : p - 1 + ids.shape[1]],
            )
    real = mask.bool()
    torch.testing.assert_close(logits[real], expected_logits[real], **TOL)
    torch.testing.assert_close(hidden[real], expected_hidden[real], **TOL)


def test_trim_prompt_padding_both_sides():
    ids = torch.tensor([[0, 0, 5, 6], [0, 0, 0, 7]])
    mask = ids != 0
    trimmed_ids, trimmed_mask = trim_prompt_padding(ids, mask, left=True)
    assert trimmed_ids.tolist() == [[5, 6], [0, 7]] and trimmed_mask.tolist() == [[True, True], [False, True]]
    right_ids, right_mask = trim_prompt_padding(ids.flip(1), mask.flip(1), left=False)
    assert right_ids.tolist() == [[6, 5], [7, 0]] and right_mask.sum().item() == 3
    full = torch.tensor([[1, 2], [3, 4]])
    assert trim_prompt_padding(full, full > 0, left=True)[0] is full


def test_merged_adapter_computes_the_adapted_policy_and_restores_the_base_exactly():
    policy = _trained_policy("tiny:mt-seq2seq", lora_dropout=0.0)
    query_ids, query_mask = _prompts(policy)
    ids, mask = policy.generate(query_ids, query_mask, GenerationConfig(max_new_tokens=8), do_sample=False)
    bases = {n: p for n, p in policy.model.named_parameters() if "base_layer" in n}
    before = {n: (p.data_ptr(), p.detach().clone()) for n, p in bases.items()}
    with torch.no_grad():
        adapted = policy(query_ids, query_mask, ids, mask).logprobs
        with merged_adapter(policy.model) as folded:
            merged = policy(query_ids, query_mask, ids, mask).logprobs
            moved = any(not torch.equal(p, before[n][1]) for n, p in bases.items())
        reference = policy.reference_logprobs(query_ids, query_mask, ids, mask)
    assert folded and moved
    torch.testing.assert_close(merged, adapted, **TOL)
    assert (adapted - reference).abs().max() > 1e-3  # the adapter matters, so the fold had something to do
    for name, param in bases.items():
        assert param.data_ptr() == before[name][0] and torch.equal(param, before[name][1])


def test_merged_adapter_leaves_a_disabled_adapter_alone():
    """Decoding with the starting policy (adapter disabled: validation/test baselines) must stay the base policy, and
    the caller's disabled state must survive the generation."""
    policy = _trained_policy("tiny:mt-seq2seq", lora_dropout=0.0)
    query_ids, query_mask = _prompts(policy)
    config = GenerationConfig(max_new_tokens=8)
    with torch.no_grad(), policy.starting_policy():
        torch.manual_seed(0)
        base_ids, base_mask = policy.generate(query_ids, query_mask, config, do_sample=False)
        base = policy(query_ids, query_mask, base_ids, base_mask).logprobs  # still inside: the base policy
        with merged_adapter(policy.model) as folded:
            assert not folded
        after = policy(query_ids, query_mask, base_ids, base_mask).logprobs
        adapted_inside = policy.reference_logprobs(query_ids, query_mask, base_ids, base_mask)
    adapted = policy(query_ids, query_mask, base_ids, base_mask).logprobs  # outside: the trained policy
    torch.testing.assert_close(base, adapted_inside, **TOL)
    assert torch.equal(base, after)
    assert (adapted - base).abs().max() > 1e-3  # the adapter matters, so a wrong fold would show
    with torch.no_grad():
        plain = policy.generate(query_ids, query_mask, dataclasses.replace(config, merge_adapter=False), False)
        with policy.starting_policy():
            unmerged = policy.generate(query_ids, query_mask, dataclasses.replace(config, merge_adapter=False), False)
    assert torch.equal(unmerged.response_ids, base_ids)  # the same base policy with the fold switched off
    assert not torch.equal(plain.response_ids, base_ids)  # and the trained policy decodes differently


def test_merged_adapter_refuses_a_tied_adapted_output_embedding():
    policy = _trained_policy("tiny:mt-seq2seq", lora_target_modules=["q", "v", "lm_head"])
    with merged_adapter(policy.model) as folded:
        assert not folded


def test_scores_are_exact_only_in_float32_unquantized_without_autocast():
    assert scores_are_exact(torch.float32, quantized=False, device_type="cpu")
    assert not scores_are_exact(torch.bfloat16, quantized=False, device_type="cpu")
    assert not scores_are_exact(torch.float32, quantized=True, device_type="cpu")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not scores_are_exact(torch.float32, quantized=False, device_type="cpu")


def test_recorder_refuses_steps_that_do_not_match_the_tokens():
    policy = _trained_policy("tiny:mt-causal")
    query_ids, query_mask = _prompts(policy)
    base = policy.model.get_base_model()
    with StepRecorder(base, base.get_decoder(), "input_ids") as recorder:
        with torch.no_grad():
            out = base.generate(
                input_ids=query_ids,
                attention_mask=query_mask.long(),
                max_new_tokens=5,
                do_sample=False,
                pad_token_id=policy.tokenizer.pad_token_id,
            )
    ids = out[:, query_ids.shape[1] :]
    mask = torch.ones_like(ids, dtype=torch.bool)
    recorder.finish(ids, mask, policy.value_head)  # consistent: no error
    with pytest.raises(RuntimeError, match="old_logprobs_from: forward"):
        recorder.finish((ids + 1) % len(policy.tokenizer), mask, policy.value_head)
    with pytest.raises(RuntimeError, match="old_logprobs_from: forward"):
        recorder.finish(ids[:, :4], mask[:, :4], policy.value_head)


def test_entropy_without_grad_is_the_same_statistic():
    policy = _trained_policy("tiny:mt-causal")
    query_ids, query_mask = _prompts(policy)
    ids, mask = policy.generate(query_ids, query_mask, GenerationConfig(max_new_tokens=6), do_sample=False)
    with_grad = policy(query_ids, query_mask, ids, mask)
    without = policy(query_ids, query_mask, ids, mask, entropy_grad=False)
    assert with_grad.entropy.requires_grad and not without.entropy.requires_grad
    assert without.logprobs.requires_grad and without.values.requires_grad
    torch.testing.assert_close(without.entropy, with_grad.entropy.detach())


@pytest.mark.parametrize(
    "source, dtype, forwards",
    [("auto", "float32", 0), ("generation", "float32", 0), ("forward", "float32", 1), ("auto", "bfloat16", 1)],
)
def test_rollout_runs_the_policy_forward_only_where_needed(source, dtype, forwards, monkeypatch):
    """``auto`` reads old log-probs and values from generation in float32 and runs the forward in bfloat16."""
    from alarm_pl.data.prompts import PromptBatch
    from alarm_pl.module import ALaRMModule
    from tests.helpers import LastTokenIdScorer

    module = ALaRMModule(
        LastTokenIdScorer(name="holistic"),
        policy=PolicyConfig(model_name_or_path="tiny:mt-causal", lora_r=4, lora_alpha=8, dtype=dtype),
        generation=GenerationConfig(max_new_tokens=8, old_logprobs_from=source),
    )
    module.setup("fit")
    calls = []
    forward = module.policy.forward
    monkeypatch.setattr(module.policy, "forward", lambda *a, **k: calls.append(1) or forward(*a, **k))
    torch.manual_seed(5)
    rollout = module.make_rollout(PromptBatch(prompts=PROMPTS, references=[None] * 4, metadata=[{}] * 4))
    assert len(calls) == forwards
    with torch.no_grad():
        expected = forward(rollout.query_ids, rollout.query_mask, rollout.response_ids, rollout.response_mask)
    torch.testing.assert_close(rollout.old_logprobs, expected.logprobs, **TOL)
    torch.testing.assert_close(rollout.values, expected.values, **TOL)
