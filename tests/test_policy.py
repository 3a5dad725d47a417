"""Policy forward, generation masks and exact reward alignment for both policy kinds (mixed lengths, padding)."""

import pytest
import torch

from alarm_pl.config import GenerationConfig, PolicyConfig, RewardConfig
from alarm_pl.models.policy import Policy
from alarm_pl.models.sampling import response_mask_from_ids
from alarm_pl.rewards.base import last_token_mask
from alarm_pl.rewards.compose import compose_rewards
from alarm_pl.rewards.pipeline import ScoringPipeline
from tests.helpers import LastTokenIdScorer

PROMPTS = [
    "translate Spanish to English: El perro come pan.",
    "translate Spanish to English: ¿Dónde está mi madre?",
    "translate Spanish to English: La niña es alta.",
    "translate Spanish to English: Nuestro vecino ve una bicicleta nueva en el parque cada día.",
]


@pytest.fixture(scope="module", params=["tiny:mt-seq2seq", "tiny:mt-causal"])
def policy(request):
    torch.manual_seed(0)
    p = Policy(PolicyConfig(model_name_or_path=request.param, lora_r=4, lora_alpha=8, lora_dropout=0.0))
    p.load()
    p.eval()
    return p


def test_response_mask_keeps_first_eos_and_drops_the_rest():
    ids = torch.tensor([[5, 6, 2, 7, 2], [5, 2, 0, 0, 0], [5, 6, 7, 8, 9]])
    # row 0: EOS (2) at t=2 is the last real token; row 2 never stops: every token real
    expected = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]).bool()
    assert torch.equal(response_mask_from_ids(ids, eos_token_id=2), expected)


def _generate(policy, n_tokens=30):
    q, qm = policy.tokenize_prompts(PROMPTS, 64, torch.device("cpu"))
    torch.manual_seed(1)
    ids, mask = policy.generate(q, qm, GenerationConfig(max_new_tokens=n_tokens), do_sample=False)
    return q, qm, ids, mask


def test_batched_logprobs_equal_unbatched(policy):
    """Padding (left for causal prompts, right for responses) must not change any real token's log-prob or value."""
    q, qm, ids, mask = _generate(policy)
    assert mask.sum(dim=1).unique().numel() > 1 or mask.shape[0] == 1, "want mixed lengths"
    batched = policy(q, qm, ids, mask)
    for i in range(len(PROMPTS)):
        qi, qmi = policy.tokenize_prompts([PROMPTS[i]], 64, torch.device("cpu"))
        n = int(mask[i].sum())
        single = policy(qi, qmi, ids[i : i + 1, :n], mask[i : i + 1, :n])
        torch.testing.assert_close(batched.logprobs[i, :n], single.logprobs[0], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(batched.values[i, :n], single.values[0], atol=1e-4, rtol=1e-4)
        assert torch.all(batched.logprobs[i, n:] == 0) and torch.all(batched.values[i, n:] == 0)


def test_reference_equals_policy_before_training_and_differs_after(policy):
    q, qm, ids, mask = _generate(policy)
    ref = policy.reference_logprobs(q, qm, ids, mask)
    torch.testing.assert_close(ref, policy(q, qm, ids, mask).logprobs, atol=1e-5, rtol=1e-5)  # LoRA B starts at 0
    with torch.no_grad():
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.add_(0.05)
    changed = policy(q, qm, ids, mask).logprobs
    assert (changed - ref).abs().max() > 1e-3
    torch.testing.assert_close(policy.reference_logprobs(q, qm, ids, mask), ref)  # reference ignores the adapter
    with torch.no_grad():
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.sub_(0.05)


def test_rewards_sit_on_each_responses_own_tokens(policy):
    """PAPER.md §5: the holistic reward lands on each response's own last real token, dense values on its own tokens."""
    q, qm, ids, mask = _generate(policy)
    lengths = mask.sum(dim=1)
    assert lengths.unique().numel() > 1, "want mixed lengths in the batch"
    pipeline = ScoringPipeline(
        LastTokenIdScorer(name="holistic"),
        [LastTokenIdScorer(name="dense", shaping="identity")],
        RewardConfig(degenerate_max_tokens=0),
    )
    inputs = pipeline.build_inputs(policy.tokenizer, PROMPTS, [None] * 4, [{}] * 4, ids, mask)
    scored = pipeline.score(inputs)
    assert torch.equal(scored.holistic, lengths.float())  # H = the response's own length
    rewards = compose_rewards(scored.holistic, scored.aspect_rewards["dense"], mask, "weighted_sum", 0.0, 1.0)
    for i, n in enumerate(lengths.tolist()):
        expected = torch.arange(1, n + 1).float()  # dense value = position + 1 on real tokens
        expected[n - 1] += n  # + H on the last real token
        torch.testing.assert_close(rewards[i, :n], expected)
        assert torch.all(rewards[i, n:] == 0)
    assert torch.equal(last_token_mask(mask).nonzero()[:, 1], lengths - 1)


def test_decoded_texts_match_tokenizer_decode(policy):
    q, qm, ids, mask = _generate(policy)
    inputs = ScoringPipeline.build_inputs(policy.tokenizer, PROMPTS, [None] * 4, [{}] * 4, ids, mask)
    for i in range(len(PROMPTS)):
        real = ids[i][mask[i]].tolist()
        assert inputs.responses[i] == policy.tokenizer.decode(real, skip_special_tokens=True)
        assert len(inputs.token_spans[i]) == len(real)
