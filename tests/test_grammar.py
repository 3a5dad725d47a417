"""GrammarScorer against the LanguageTool-compatible test server (tests/lt_server.py)."""

from __future__ import annotations

import socket
import time

import pytest
import torch
from lt_server import find_errors, lt_server  # noqa: F401 - lt_server is a fixture

from alarm_pl.rewards.aspects.grammar import GrammarScorer, utf16_to_index
from alarm_pl.rewards.base import ScorerError, ScoringInput


def word_tokens(text: str) -> list[tuple[int, int]]:
    """Policy-like token spans: each word with its leading space ("I", " saw", " the", ...)."""
    spans, start = [], 0
    for i in range(1, len(text) + 1):
        if i == len(text) or text[i] == " ":
            spans.append((start, i))
            start = i
    return spans if text else []


def make_input(responses: list[str]) -> ScoringInput:
    """Right-padded ScoringInput whose tokens are the words of each response."""
    spans = [word_tokens(r) for r in responses]
    width = max(len(s) for s in spans)
    mask = torch.tensor([[j < len(s) for j in range(width)] for s in spans])  # (B, T)
    return ScoringInput(
        prompts=[""] * len(responses),
        responses=responses,
        references=[None] * len(responses),
        metadata=[{} for _ in responses],
        response_ids=mask.long(),
        response_mask=mask,
        token_spans=spans,
    )


def make_scorer(url: str, **kwargs) -> GrammarScorer:
    scorer = GrammarScorer(url=url, backoff=0.01, **kwargs)
    scorer.setup(torch.device("cpu"))
    return scorer


def test_marks_exactly_the_tokens_of_each_match(lt_server):
    scorer = make_scorer(lt_server.url, correct_value=0.25, error_value=-1.0)
    responses = ["I saw the the cat today", "so i went", "", "I ate a apple"]
    score = scorer.score(make_input(responses))
    # 0: "the the" = chars [6, 13) -> tokens " the"(5,9), " the"(9,13) = 2, 3.     1 match / 6 tokens
    # 1: "i" = chars [3, 4) -> token " i"(2,4) = 1; tokens 3..5 are padding.       1 match / 3 tokens
    # 2: empty: nothing placed, no request sent.                                   0
    # 3: "a" before "apple" = chars [6, 7) -> token " a"(5,7) = 2.                 1 match / 4 tokens
    c, e = 0.25, -1.0
    expected = torch.tensor([[c, c, e, e, c, c], [c, e, c, 0, 0, 0], [0, 0, 0, 0, 0, 0], [c, c, e, c, 0, 0]])
    torch.testing.assert_close(score.values, expected)
    assert score.placed.tolist() == make_input(responses).response_mask.tolist()
    torch.testing.assert_close(score.metric, torch.tensor([1 / 6, 1 / 3, 0.0, 1 / 4]))
    assert score.higher_is_better is False
    assert len(lt_server.check_requests) == 3
    assert lt_server.check_requests[0]["language"] == ["en-US"]


def test_utf16_offsets_of_emoji_are_converted(lt_server):
    text = "\U0001f642 i did"  # the emoji is 2 UTF-16 units: LanguageTool reports "i" at offset 3, Python index 2
    assert find_errors(text)[0]["offset"] == 3
    assert utf16_to_index(text, [0, 2, 3, 4]) == [0, 1, 2, 3]
    score = make_scorer(lt_server.url).score(make_input([text]))
    # tokens: emoji (0,1), " i" (1,3), " did" (3,7) -> only " i" is marked
    assert score.values.tolist() == [[0.0, -1.0, 0.0]]


def test_disabled_rules_are_sent(lt_server):
    scorer = make_scorer(lt_server.url, disabled_rules=["WORD_REPEAT", "EN_A_VS_AN"])
    score = scorer.score(make_input(["the the a apple"]))
    assert lt_server.check_requests[0]["disabledRules"] == ["WORD_REPEAT,EN_A_VS_AN"]
    assert score.values.tolist() == [[0.0, 0.0, 0.0, 0.0]] and score.metric.tolist() == [0.0]


def test_retries_after_server_errors_then_succeeds(lt_server):
    scorer = make_scorer(lt_server.url, retries=3)
    lt_server.fail_times = 2
    score = scorer.score(make_input(["so i went"]))
    assert len(lt_server.check_requests) == 3  # 500, 500, then the answer
    assert score.values.tolist() == [[0.0, -1.0, 0.0]]


def test_gives_up_after_the_last_retry(lt_server):
    scorer = make_scorer(lt_server.url, retries=1)
    lt_server.fail_times = 5
    with pytest.raises(ScorerError, match=r"'grammar'.*/v2/check failed after 2 attempt.*HTTP 500"):
        scorer.score(make_input(["so i went"]))


def test_timeout_raises_naming_the_url(lt_server):
    scorer = make_scorer(lt_server.url, timeout=0.2, retries=1, name="grammar_mt")
    lt_server.delay = 1.0
    start = time.monotonic()
    with pytest.raises(ScorerError) as err:
        scorer.score(make_input(["so i went"]))
    assert time.monotonic() - start < 1.0  # 2 attempts x 0.2 s + 0.01 s backoff
    assert "'grammar_mt'" in str(err.value) and f"{lt_server.url}/check" in str(err.value)
    assert "timeout 0.2 s" in str(err.value)


def test_client_error_is_not_retried(lt_server):
    with pytest.raises(ScorerError, match=r"after 1 attempt.*HTTP 404"):
        make_scorer(lt_server.url + "/wrong", retries=3)


def test_server_down_fails_at_setup():
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v2"
    with pytest.raises(ScorerError, match=rf"'grammar'.*{url}/languages.*LanguageTool server"):
        make_scorer(url, retries=1)


def test_local_backend_offline_says_to_use_a_server(monkeypatch):
    import language_tool_python

    def offline(*args, **kwargs):
        raise ConnectionError("Failed to resolve 'github.com'")

    monkeypatch.setattr(language_tool_python, "LanguageTool", offline)
    scorer = GrammarScorer(backend="local")
    with pytest.raises(ScorerError, match=r"'grammar'.*github\.com.*backend: http"):
        scorer.setup(torch.device("cpu"))


def test_invalid_arguments():
    with pytest.raises(ValueError, match="backend"):
        GrammarScorer(backend="java")
    with pytest.raises(ValueError, match="retries"):
        GrammarScorer(retries=-1)
