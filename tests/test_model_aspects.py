"""Model-based aspects (TokenClassificationAspect, SequenceRegressionAspect) on hand-set tiny models."""

from __future__ import annotations

import math

import pytest
import torch
from test_reward_model import reference_score, save_sequence_model, tiny_tokenizer
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import BertConfig, BertForTokenClassification, PreTrainedTokenizerFast

from alarm_pl.rewards.aspects.model_aspects import SequenceRegressionAspect, TokenClassificationAspect, token_at_char
from alarm_pl.rewards.base import ScorerError, ScoringInput
from alarm_pl.rewards.normalize import FixedNormalizer, shape_aspect

WORDS = ["[PAD]", "[UNK]", "[SEP]", ".", "!", ",", "Q", ":", "A", "Why", "Cats", "purr", "Dogs", "bark", "Yes"]
POSITIVE_TOKENS = ("!", "[SEP]")
PV, NV = 0.7, -0.2  # asymmetric, so a swapped sign or label shows


def save_punctuation_classifier(path) -> None:
    """A 0-layer BERT token classifier whose label depends only on the token: "!" and "[SEP]" → 1, all else → 0.

    Word embedding [0, 10, 0, 0] for the positive tokens and [10, 0, 0, 0] otherwise (position/type embeddings 0);
    LayerNorm maps them to [-.58, 1.73, -.58, -.58] / [1.73, -.58, -.58, -.58]; the classifier reads logit c from
    dimension c, so the argmax is 1 exactly for the positive tokens.
    """
    vocab = {w: i for i, w in enumerate(WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", sep_token="[SEP]")
    config = BertConfig(
        vocab_size=len(WORDS),
        hidden_size=4,
        num_hidden_layers=0,
        num_attention_heads=1,
        intermediate_size=8,
        num_labels=2,
        max_position_embeddings=64,
    )
    model = BertForTokenClassification(config)
    with torch.no_grad():
        emb = model.bert.embeddings
        emb.word_embeddings.weight.zero_()[:, 0] = 10.0
        for word in POSITIVE_TOKENS:
            emb.word_embeddings.weight[vocab[word]] = torch.tensor([0.0, 10.0, 0.0, 0.0])
        emb.position_embeddings.weight.zero_()
        emb.token_type_embeddings.weight.zero_()
        model.classifier.weight.copy_(torch.eye(4)[:2])
        model.classifier.bias.zero_()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)


def make_input(prompts: list[str], responses: list[str], spans: list[list[tuple[int, int]]]) -> ScoringInput:
    """Right-padded ScoringInput with the given policy token spans."""
    width = max(len(s) for s in spans)
    mask = torch.tensor([[j < len(s) for j in range(width)] for s in spans])  # (B, T)
    return ScoringInput(
        prompts=prompts,
        responses=responses,
        references=[None] * len(prompts),
        metadata=[{} for _ in prompts],
        response_ids=mask.long(),
        response_mask=mask,
        token_spans=spans,
    )


# Policy tokens deliberately differ from the reward model's words: "r." carries the first sentence's end.
SENTENCES = make_input(
    ["Why!", "Why!", "Why!"],
    ["Cats purr. Dogs bark!", "Yes!", ""],
    [[(0, 4), (4, 8), (8, 10), (10, 15), (15, 20), (20, 21)], [(0, 3), (3, 4)], []],
)


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("punctuation_classifier")
    save_punctuation_classifier(path)
    return str(path)


def make_aspect(path: str, **kwargs) -> TokenClassificationAspect:
    aspect = TokenClassificationAspect(
        path,
        positive_value=PV,
        negative_value=NV,
        template="Q: {prompt} A: {response}",
        positive_label=1,
        negative_label=0,
        **kwargs,
    )
    aspect.setup(torch.device("cpu"))
    return aspect


def test_sentence_values_land_on_the_policy_tokens_ending_each_sentence(classifier_dir):
    score = make_aspect(classifier_dir).score(SENTENCES)
    # response 0: "Cats purr." ends with "." → NV on policy token 2 ("r."); "Dogs bark!" ends with "!" → PV on 5.
    # response 1: "Yes!" → PV on token 1.  response 2: empty → nothing, metric 0.5 (the authors' rate without
    # sentences, long-form-QA/train_ppo.py).
    expected = torch.tensor([[0, 0, NV, 0, 0, PV], [0, PV, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    torch.testing.assert_close(score.values, expected)
    assert score.placed.tolist() == (expected != 0).tolist()
    torch.testing.assert_close(score.metric, torch.tensor([0.5, 1.0, 0.5]))  # 1 of 2, 1 of 1, no units
    assert score.higher_is_better


def test_subsentence_units(classifier_dir):
    text = "Cats purr and Dogs bark, Yes Cats purr and bark!"
    words = [(0, 4), (4, 9), (9, 13), (13, 18), (18, 24), (24, 28), (28, 33), (33, 38), (38, 42), (42, 48)]
    assert text[18:24] == " bark," and text[42:48] == " bark!"
    score = make_aspect(classifier_dir, unit="subsentence", min_words=5).score(make_input(["Why!"], [text], [words]))
    # two sub-sentences of 5 words: "... bark," (ends with "," → NV on token 4), "... bark!" (PV on token 9)
    assert score.values.tolist() == [[0, 0, 0, 0, pytest.approx(NV), 0, 0, 0, 0, pytest.approx(PV)]]
    assert score.metric.tolist() == [0.5]


def test_units_cut_off_by_truncation_are_not_counted(classifier_dir):
    # max_length 3 keeps only the last three words "Dogs bark !" (left truncation): the first sentence is unseen.
    score = make_aspect(classifier_dir, max_length=3).score(
        make_input(["Why!"], SENTENCES.responses[:1], SENTENCES.token_spans[:1])
    )
    assert score.placed.tolist() == [[False, False, False, False, False, True]]
    assert score.metric.tolist() == [1.0]


def test_token_at_char():
    offsets = torch.tensor([[0, 0], [0, 4], [5, 9], [9, 10]])  # a special token, "Cats", "purr", "."
    assert [token_at_char(offsets, c) for c in (0, 3, 4, 5, 9, 10)] == [1, 1, None, 2, 3, None]


def test_unit_validation_and_setup_required(classifier_dir):
    with pytest.raises(ValueError, match="unit"):
        TokenClassificationAspect(classifier_dir, unit="paragraph")
    with pytest.raises(ScorerError, match="factuality.*setup"):
        TokenClassificationAspect(classifier_dir).score(SENTENCES)


COMPLETENESS_MEAN, COMPLETENESS_STD = -0.44677690555995353, 8.301160619054132  # FineGrainedRLHF fine_grained_config.yml


def test_completeness_is_sigmoid_of_scaled_z_and_reports_raw(tmp_path):
    tok = tiny_tokenizer()
    model = save_sequence_model(tmp_path, tok).eval()
    normalizer = FixedNormalizer(COMPLETENESS_MEAN, COMPLETENESS_STD, scale=0.3)
    aspect = SequenceRegressionAspect(str(tmp_path), normalizer=normalizer, collapse_prompt_whitespace=True)
    aspect.setup(torch.device("cpu"))
    inputs = make_input(["where  is\nthe cat", "hi"], ["on the mat.", "hello"], [[(0, 2), (2, 6), (6, 11)], [(0, 5)]])
    score = aspect.score(inputs)
    with torch.no_grad():  # default template "{prompt} answer: {response}", the prompt's whitespace collapsed
        raw = torch.tensor(
            [
                reference_score(model, tok, "where is the cat answer: on the mat."),
                reference_score(model, tok, "hi answer: hello"),
            ]
        )
    torch.testing.assert_close(score.metric, raw, atol=1e-5, rtol=1e-5)
    assert score.placed.tolist() == [[False, False, True], [True, False, False]]
    torch.testing.assert_close(score.values[score.placed], raw, atol=1e-5, rtol=1e-5)  # the raw output is placed
    reward = shape_aspect(score, aspect, update=False)  # (B, T)
    # FineGrainedRLHF PreferenceReward: sigmoid(((r - mean) / std) * 0.3 + 0), here in plain Python floats
    expected = [1 / (1 + math.exp(-0.3 * (r - COMPLETENESS_MEAN) / COMPLETENESS_STD)) for r in raw.tolist()]
    assert reward[score.placed].tolist() == pytest.approx(expected, abs=1e-6)
    assert reward[~score.placed].abs().sum() == 0
    assert aspect.name == "completeness"
