"""GrammarScorer with the offline Harper backend (harper-py): spans, alignment to policy tokens, metric, rules."""

from __future__ import annotations

import pytest
import torch
from test_grammar import make_input

from alarm_pl.rewards.aspects.grammar import GrammarScorer
from alarm_pl.rewards.base import ScorerError, ScoringInput

pytest.importorskip("harper")


@pytest.fixture(scope="module")
def harper_scorer():
    scorer = GrammarScorer(backend="harper", correct_value=0.25, error_value=-1.0)
    scorer.setup(torch.device("cpu"))
    return scorer


def test_marks_exactly_the_tokens_of_each_lint(harper_scorer):
    responses = ["This is an test of the the linter.", "He go to school.", "", "Mr President, I thank you."]
    score = harper_scorer.score(make_input(responses))
    # 0: "an" = chars [8, 10) -> word token " an"(7,10) = 2; "the the" = [19, 26) -> " the"(18,22), " the"(22,26)
    #    = 5, 6. 2 lints / 8 tokens.
    # 1: "go" (He go: agreement) = [3, 5) -> " go"(2,5) = 1. 1 lint / 4 tokens.
    # 2: empty: nothing placed, metric 0.     3: clean: every token 0.25, metric 0.
    c, e = 0.25, -1.0
    expected = torch.tensor([[c, c, e, c, c, e, e, c], [c, e, c, c, 0, 0, 0, 0], [0] * 8, [c, c, c, c, c, 0, 0, 0]])
    torch.testing.assert_close(score.values, expected)
    torch.testing.assert_close(score.metric, torch.tensor([2 / 8, 1 / 4, 0.0, 0.0]))
    assert score.higher_is_better is False


def test_lint_spans_are_string_indices_with_accents_and_emoji(harper_scorer):
    # "ñ" is 2 UTF-8 bytes and "😀" 4 bytes / 2 UTF-16 units: byte or UTF-16 offsets would shift "a" off by 4 or 1.
    text = "The señor 😀 ate a apple."
    spans = harper_scorer.check([text])[0]
    assert sorted(text[s:e] for s, e in spans) == ["a", "señor"]  # "a apple" (a/an) and the Spanish "señor"
    assert (16, 17) in spans


def test_alignment_through_a_real_tokenizer(harper_scorer):
    from alarm_pl.assets.dummy import dummy_corpus
    from alarm_pl.assets.tokenizer_builders import train_t5_tokenizer
    from alarm_pl.rewards.align import decode_with_spans

    tokenizer = train_t5_tokenizer(dummy_corpus()[:3000], vocab_size=1200, extra_ids=0)
    ids = tokenizer("She go to school and ate a apple.").input_ids  # ends with </s>, as a policy response does
    text, token_spans = decode_with_spans(tokenizer, ids)
    mask = torch.ones(1, len(ids), dtype=torch.bool)
    inputs = ScoringInput([""], [text], [None], [{}], torch.tensor([ids]), mask, [token_spans])
    score = harper_scorer.score(inputs)
    # This vocabulary (trained on the tiny MT task) lacks "She", "go" and "school": T5 pieces
    # ▁S h e ▁ g o ▁to ▁ s c h o o l ▁a nd ▁a te ▁a ▁apple . </s>; Harper flags "go" = chars [4, 6) -> pieces 4, 5
    # and the article "a" = [25, 26) -> piece 18 (" a" spans [24, 26)). </s> (empty span) is a clean real token.
    assert tokenizer.convert_ids_to_tokens(ids)[4:6] == ["g", "o"] and text[slice(*token_spans[18])] == " a"
    flagged = [j for j, v in enumerate(score.values[0].tolist()) if v == -1.0]
    assert flagged == [4, 5, 18]
    assert score.values[0, -1] == 0.25 and score.placed[0].all()
    assert score.metric.item() == pytest.approx(2 / len(ids))


def test_disabled_rules_and_bad_settings():
    scorer = GrammarScorer(backend="harper", disabled_rules=["RepeatedWords"])
    scorer.setup(torch.device("cpu"))
    assert scorer.check(["This is an test of the the linter."]) == [[(8, 10)]]  # a/an only, no repetition
    with pytest.raises(ScorerError, match=r"\['NoSuchRule'\] are not Harper rule names"):
        GrammarScorer(backend="harper", disabled_rules=["NoSuchRule"]).setup(torch.device("cpu"))
    with pytest.raises(ScorerError, match="English only.*'es'"):
        GrammarScorer(backend="harper", language="es").setup(torch.device("cpu"))
    with pytest.raises(ScorerError, match="setup"):
        GrammarScorer(backend="harper").check(["text"])
    with pytest.raises(ValueError, match="'http', 'local' or 'harper'"):
        GrammarScorer(backend="java")
