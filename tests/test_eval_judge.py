"""The LLM judge over real HTTP (the openai client against tests/openai_server.py): both orders, tie rules, reply
parsing, retries, timeouts, fatal errors, rate limit, subset, cost, the cache and resuming an interrupted run."""

import json
from collections import Counter
from types import SimpleNamespace

import pytest
from openai_server import COMPLETION_TOKENS, PROMPT_TOKENS, OpenAIServer

from alarm_pl.eval.cache import JudgmentCache
from alarm_pl.eval.client import JudgeError, RateLimiter, Reply
from alarm_pl.eval.config import JudgeConfig
from alarm_pl.eval.judge import pair_outcome, run_judge, select_prompts
from alarm_pl.eval.prompt import load_prompt, parse_label, parse_message
from alarm_pl.eval.records import GenerationRecord
from alarm_pl.eval.winrate import PairCounts, align_by_prompt


def _alignment(outputs):
    """``{system: [generation per prompt]}`` -> an alignment on prompts p0, p1, ..."""
    return align_by_prompt(
        {
            name: [
                GenerationRecord(prompt=f"p{i}", generation=text, holistic=0.0, length=1)
                for i, text in enumerate(texts)
            ]
            for name, texts in outputs.items()
        }
    )


def _config(server, **overrides):
    settings = dict(
        model="judge-test",
        base_url=server.url,
        concurrency=2,
        max_retries=2,
        timeout=5.0,
        backoff_base=0.01,
        backoff_max=0.05,
    )
    return JudgeConfig(**{**settings, **overrides})


# A's outputs are longer on p0 and p2, B's on p1; the "longer" rule therefore gives A 2 wins and 1 loss.
TWO = {"A": ["a long answer", "short", "another long one"], "B": ["brief", "much longer answer", "tiny"]}


@pytest.mark.parametrize("reply, tool", [("tool", "auto"), ("tool", "required"), ("text", "auto"), ("text", "off")])
def test_both_orders_are_asked_and_read_from_tool_calls_or_text(tmp_path, reply, tool):
    with OpenAIServer(rule="longer", reply=reply) as server:
        result = run_judge(_alignment(TWO), _config(server, tool=tool), str(tmp_path / "cache.jsonl"))
    asked = Counter((s.output_a, s.output_b) for s in server.seen)
    expected = {(x, y) for a, b in zip(TWO["A"], TWO["B"]) for x, y in [(a, b), (b, a)]}
    assert set(asked) == expected and set(asked.values()) == {1}  # each order exactly once
    assert all(s.tools_offered == (tool != "off") for s in server.seen)
    assert result.counts[("A", "B")] == PairCounts(wins=2, losses=1, ties=0)
    assert result.counts[("B", "A")] == PairCounts(wins=1, losses=2, ties=0)
    entries = [json.loads(line) for line in (tmp_path / "cache.jsonl").read_text().splitlines()]
    assert len(entries) == 6 and {e["status"] for e in entries} == {"ok"}
    assert any('"choose_output"' in e["raw"] for e in entries) == (reply == "tool" and tool != "off")


def test_position_bias_and_identical_outputs_are_ties(tmp_path):
    outputs = {"A": ["same text", "one", "two words"], "B": ["  same text\n", "three", "four"]}
    with OpenAIServer(rule="position_a") as server:
        result = run_judge(_alignment(outputs), _config(server), str(tmp_path / "cache.jsonl"))
    # p0 is identical up to whitespace: never asked; p1, p2: "a" picked in both orders -> position ties
    assert len(server.seen) == 4 and not any("same text" in s.output_a for s in server.seen)
    assert result.counts[("A", "B")] == PairCounts(wins=0, losses=0, ties=3)
    assert result.counts[("A", "B")].win_rate is None
    assert result.tie_reasons[("A", "B")] == {"position": 2, "identical": 1, "unparseable": 0, "error": 0}


def test_unparseable_reply_is_recorded_not_guessed_and_cached(tmp_path):
    cache = tmp_path / "cache.jsonl"
    with OpenAIServer(rule="unparseable") as server:
        result = run_judge(_alignment(TWO), _config(server), str(cache))
        again = run_judge(_alignment(TWO), _config(server), str(cache))
    assert len(server.seen) == 6  # the second run asked nothing: answered replies are cached even if unparseable
    assert result.tie_reasons[("A", "B")]["unparseable"] == 3 and result.counts[("A", "B")].ties == 3
    entries = [json.loads(line) for line in cache.read_text().splitlines()]
    assert {(e["status"], e["choice"]) for e in entries} == {("unparseable", None)}
    assert "I cannot decide" in entries[0]["raw"]
    assert again.counts == result.counts and again.usage.cached_replies == 6 and again.usage.requests == 0


def test_429_retry_after_is_honoured_then_success(tmp_path):
    failures = [{"status": 429, "headers": {"Retry-After": "1"}}]
    with OpenAIServer(failures=failures) as server:
        result = run_judge(
            _alignment({"A": ["longer one"], "B": ["short"]}),
            _config(server, concurrency=1),
            str(tmp_path / "cache.jsonl"),
        )
    assert len(server.seen) == 3  # 429, its retry, the other order
    # the backoff alone would wait <= 0.05 s; Retry-After asked for 1 s
    assert server.seen[1].time - server.seen[0].time >= 0.95
    assert result.counts[("A", "B")] == PairCounts(1, 0, 0) and result.usage.requests == 3


def test_500_is_retried_with_backoff(tmp_path):
    with OpenAIServer(failures=[{"status": 500}, {"status": 503}]) as server:
        result = run_judge(
            _alignment({"A": ["longer one"], "B": ["short"]}),
            _config(server, concurrency=1),
            str(tmp_path / "cache.jsonl"),
        )
    assert len(server.seen) == 4 and result.usage.requests == 4 and result.usage.errors == 0
    assert result.counts[("A", "B")] == PairCounts(1, 0, 0)


def test_timeouts_are_retried_then_recorded_as_errors_and_not_cached(tmp_path):
    cache = tmp_path / "cache.jsonl"
    with OpenAIServer(always={"sleep": 1.0}) as server:
        result = run_judge(
            _alignment({"A": ["longer one"], "B": ["short"]}), _config(server, timeout=0.2, max_retries=1), str(cache)
        )
    assert len(server.seen) == 4  # 2 orders x (1 try + 1 retry)
    assert result.usage.errors == 2 and result.usage.requests == 4
    assert result.tie_reasons[("A", "B")]["error"] == 1 and result.counts[("A", "B")] == PairCounts(0, 0, 1)
    assert result.errors and "Timeout" in result.errors[0]
    assert not cache.exists()  # failures are asked again by a later run


def test_client_error_is_not_retried_and_auth_failure_stops_the_run(tmp_path):
    with OpenAIServer(always={"status": 400}) as server:
        result = run_judge(_alignment({"A": ["x1"], "B": ["y22"]}), _config(server), str(tmp_path / "c.jsonl"))
    assert len(server.seen) == 2 and result.usage.errors == 2 and "HTTP 400" in result.errors[0]
    with OpenAIServer(always={"status": 401}) as server:
        with pytest.raises(JudgeError, match=f"judge endpoint {server.url}.*answered 401"):
            run_judge(_alignment({"A": ["x1"], "B": ["y22"]}), _config(server), str(tmp_path / "c.jsonl"))


def test_interrupted_run_resumes_without_losing_or_repeating_a_judgment(tmp_path):
    outputs = {name: [f"{name} answer {'x' * (i * k)}" for i in range(4)] for k, name in enumerate("ABC", 1)}
    cache = tmp_path / "cache.jsonl"

    def stop_after_five(done, total):
        if done == 5:
            raise KeyboardInterrupt

    with OpenAIServer(rule="longer") as server:
        with pytest.raises(KeyboardInterrupt):
            run_judge(_alignment(outputs), _config(server, concurrency=3), str(cache), on_reply=stop_after_five)
        first = len(server.seen)
        assert 5 <= first < 24 and len(JudgmentCache(cache)) == first  # every reply received is in the cache
        result = run_judge(_alignment(outputs), _config(server, concurrency=3), str(cache))
    # 3 pairs x 4 prompts x 2 orders = 24 distinct requests, each answered exactly once over the two runs
    asked = Counter((s.output_a, s.output_b) for s in server.seen)
    assert len(asked) == 24 and set(asked.values()) == {1}
    assert result.usage.cached_replies == first and result.usage.new_replies == 24 - first
    # C's outputs are longest except on p0 where all are equally long and "a" wins both orders -> position tie
    assert result.counts[("C", "A")] == PairCounts(3, 0, 1) and result.counts[("B", "C")] == PairCounts(0, 3, 1)


def test_cache_drops_a_partial_last_line_and_names_a_bad_line(tmp_path):
    path = tmp_path / "cache.jsonl"
    path.write_text('{"key": "k1", "status": "ok"}\n{"key": "k2", "status": "ok"}\n{"key": "k3", "sta')
    cache = JudgmentCache(path)
    assert len(cache) == 2 and "k3" not in cache
    cache.append({"key": "k3", "status": "ok"})
    assert [json.loads(line)["key"] for line in path.read_text().splitlines()] == ["k1", "k2", "k3"]
    path.write_text('{"key": "k1"}\nnot json\n{"key": "k2"}\n')
    with pytest.raises(ValueError, match=f"{path}:2: malformed cache line"):
        JudgmentCache(path)


def test_rate_limit_spaces_requests(tmp_path):
    outputs = {"A": ["aa", "bbb", "cccc"], "B": ["d", "e", "f"]}
    with OpenAIServer() as server:
        run_judge(_alignment(outputs), _config(server, rpm=600, concurrency=3), str(tmp_path / "cache.jsonl"))
    times = sorted(s.time for s in server.seen)
    # 600 rpm = one start per 0.1 s: 6 requests span 5 x 0.1 s even with 3 threads; the first request's connection
    # set-up may delay its arrival (not its slot) by up to ~0.1 s, hence 0.38
    assert len(times) == 6 and times[-1] - times[0] >= 0.38


def test_rate_limiter_slots(monkeypatch):
    sleeps = []
    monkeypatch.setattr("alarm_pl.eval.client.time.sleep", sleeps.append)
    now = [10.0]
    limiter = RateLimiter(rpm=30, clock=lambda: now[0])  # one slot per 2 s
    for _ in range(3):
        limiter.acquire()  # three callers at t=10: slots 10, 12, 14
    now[0] = 20.0
    limiter.acquire()  # a caller after the last slot (16) is not delayed
    assert sleeps == [0.0, 2.0, 4.0, 0.0]
    RateLimiter(rpm=None).acquire()
    assert len(sleeps) == 4  # no limit: no sleep at all


def test_subset_usage_and_cost(tmp_path):
    outputs = {"A": [f"answer number {i} long" for i in range(6)], "B": [f"ans {i}" for i in range(6)]}
    with OpenAIServer() as server:
        config = _config(server, subset=2, seed=3, cost_per_1k_input=1.5, cost_per_1k_output=2.0)
        result = run_judge(_alignment(outputs), config, str(tmp_path / "cache.jsonl"))
    assert result.prompts == tuple(select_prompts([f"p{i}" for i in range(6)], 2, 3))
    chosen = [int(p[1:]) for p in result.prompts]
    assert len(chosen) == 2 and len(server.seen) == 4  # only the subset's prompts were asked, both orders
    assert {s.output_a for s in server.seen} == {outputs[n][i] for n in "AB" for i in chosen}
    assert result.counts[("A", "B")] == PairCounts(2, 0, 0)
    # 4 replies x 100 input tokens = 400 -> 0.4 x $1.5 = $0.60; 4 x 5 output tokens = 20 -> 0.02 x $2 = $0.04
    assert (result.usage.new_prompt_tokens, result.usage.new_completion_tokens) == (
        4 * PROMPT_TOKENS,
        4 * COMPLETION_TOKENS,
    )
    assert result.usage.cost(config) == pytest.approx(0.64)


def test_select_prompts_is_seeded_and_independent_of_file_order():
    prompts = [f"q{i}" for i in range(10)]
    chosen = select_prompts(prompts, 4, seed=7)
    assert len(chosen) == 4 and chosen == [p for p in prompts if p in chosen]
    assert set(select_prompts(prompts[::-1], 4, seed=7)) == set(chosen)
    assert select_prompts(prompts, 4, seed=8) != chosen and select_prompts(prompts, 20, seed=7) == prompts


@pytest.mark.parametrize(
    "text, label",
    [
        ("Output (a)", "a"),
        ("output (B).", "b"),
        ("(a)", "a"),
        ("b", "b"),
        ("  Output(b)\n", "b"),
        ("The better one is Output (a).", "a"),
        ("Output (a) is better than Output (b)", None),
        ("Both are fine.", None),
        ("", None),
        (None, None),
        ("abc", None),
    ],
)
def test_parse_label(text, label):
    assert parse_label(text) == label


def test_parse_message_prefers_a_valid_tool_call_and_never_guesses():
    def message(content, *calls):
        return SimpleNamespace(
            content=content,
            tool_calls=[SimpleNamespace(function=SimpleNamespace(name=name, arguments=args)) for name, args in calls],
        )

    assert parse_message(message(None, ("choose_output", '{"output": "b"}')))[0] == "b"
    assert parse_message(message("Output (a)", ("choose_output", "{broken")))[0] == "a"  # falls back to text
    assert parse_message(message(None, ("choose_output", '{"output": "c"}')))[0] is None
    assert (
        parse_message(message(None, ("choose_output", '{"output": "a"}'), ("choose_output", '{"output": "b"}')))[0]
        is None
    )  # contradiction
    assert parse_message(message(None, ("other_tool", '{"output": "a"}')))[0] is None


def test_pair_outcome_rules():
    a, b = Reply("a", "ok"), Reply("b", "ok")
    assert pair_outcome(a, b) == ("win", None)  # A shown first picked, then A shown second picked
    assert pair_outcome(b, a) == ("lose", None)
    assert pair_outcome(a, a) == ("tie", "position") and pair_outcome(b, b) == ("tie", "position")
    assert pair_outcome(a, Reply(None, "unparseable")) == ("tie", "unparseable")
    assert pair_outcome(Reply(None, "unparseable"), Reply(None, "error")) == ("tie", "error")


def test_prompt_file_with_system_section(tmp_path):
    path = tmp_path / "prompt.txt"
    path.write_text("[system]\nBe strict.\n[user]\nQ: {instruction}\nA: {output_1}\nB: {output_2}\n")
    prompt = load_prompt(str(path))
    messages = prompt.messages("say {x}", "{output_2}", "two")  # braces inside values are not placeholders
    assert messages == [
        {"role": "system", "content": "Be strict."},
        {"role": "user", "content": "Q: say {x}\nA: {output_2}\nB: two\n"},
    ]
    assert prompt.hash != load_prompt(None).hash
    path.write_text("Compare {output_1} and {output_2}.")
    with pytest.raises(ValueError, match=r"prompt.txt: .*\{instruction\}"):
        load_prompt(str(path))
