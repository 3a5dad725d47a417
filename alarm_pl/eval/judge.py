"""Pairwise win rates by an LLM judge (PAPER.md §4).

For every unordered pair of systems (A, B) and every judged prompt, the judge is asked **both orders**: (A as a,
B as b) and (B as a, A as b). A wins only when picked in both orders, loses when B is picked in both; everything else
is a tie, with its reason: ``position`` (the pick followed the position), ``identical`` (the two outputs are the
same after stripping whitespace; the judge is not asked), ``unparseable`` (a reply named no clear label) or
``error`` (no reply after the retries). Requests are deduplicated, read from the cache when known, and sent from a
thread pool; each reply is appended to the cache by the thread that received it, so an interrupted run keeps every
reply it paid for.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from itertools import combinations
from typing import Callable, NamedTuple, Optional, Sequence

from alarm_pl.eval.cache import JudgmentCache, judgment_key
from alarm_pl.eval.client import JudgeClient, JudgeError, RateLimiter, Reply
from alarm_pl.eval.config import JudgeConfig
from alarm_pl.eval.prompt import load_prompt
from alarm_pl.eval.winrate import Alignment, PairCounts

log = logging.getLogger(__name__)

TIE_REASONS = ("position", "identical", "unparseable", "error")


class Question(NamedTuple):
    """One judge request: ``output_1`` is shown as "Output (a)"."""

    instruction: str
    output_1: str
    output_2: str


@dataclass(frozen=True)
class JudgeUsage:
    """Requests and tokens: ``new_*`` sent in this run, ``cached_*`` read back from the cache."""

    requests: int = 0
    new_replies: int = 0
    cached_replies: int = 0
    errors: int = 0
    new_prompt_tokens: int = 0
    new_completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    cached_completion_tokens: int = 0

    def cost(self, config: JudgeConfig, cached: bool = False) -> float:
        """Estimated US$ of this run's replies (or of the cached ones) at the configured prices."""
        prompt = self.cached_prompt_tokens if cached else self.new_prompt_tokens
        completion = self.cached_completion_tokens if cached else self.new_completion_tokens
        return prompt / 1000 * config.cost_per_1k_input + completion / 1000 * config.cost_per_1k_output


@dataclass(frozen=True)
class JudgeResult:
    """Judge outcomes for every ordered pair of systems.

    Attributes:
        prompts: the judged prompts.
        counts: ``(a, b) -> counts of a against b``.
        tie_reasons: ``(a, b) -> {reason: number of ties}`` (reasons in ``TIE_REASONS``).
        usage: requests, replies and tokens.
        errors: the distinct failure messages of this run.
    """

    prompts: tuple[str, ...]
    counts: dict[tuple[str, str], PairCounts]
    tie_reasons: dict[tuple[str, str], dict[str, int]]
    usage: JudgeUsage
    errors: tuple[str, ...] = ()


def select_prompts(prompts: Sequence[str], subset: Optional[int], seed: int) -> list[str]:
    """A seeded random subset of ``subset`` prompts (all when ``None`` or larger), kept in ``prompts`` order.

    The draw is from the sorted prompts, so it does not depend on the order of the generation files.
    """
    if subset is None or subset >= len(prompts):
        return list(prompts)
    chosen = set(random.Random(seed).sample(sorted(prompts), subset))
    return [prompt for prompt in prompts if prompt in chosen]


def same_output(output_1: str, output_2: str) -> bool:
    """Outputs equal up to surrounding whitespace are a tie without asking."""
    return output_1.strip() == output_2.strip()


def questions_for(alignment: Alignment, prompts: Sequence[str]) -> list[Question]:
    """Every distinct request needed: both orders for each pair of systems with different outputs."""
    questions: dict[Question, None] = {}
    for a, b in combinations(alignment.systems, 2):
        for prompt in prompts:
            out_a, out_b = (alignment.records[s][prompt].generation for s in (a, b))
            if not same_output(out_a, out_b):
                questions.update(dict.fromkeys([Question(prompt, out_a, out_b), Question(prompt, out_b, out_a)]))
    return list(questions)


def pair_outcome(first: Reply, second: Reply) -> tuple[str, Optional[str]]:
    """A's outcome from the replies to (A as a, B as b) and (B as a, A as b).

    Returns:
        ``("win" | "lose" | "tie", tie reason or None)``.
    """
    if "error" in (first.status, second.status):
        return "tie", "error"
    if "unparseable" in (first.status, second.status):
        return "tie", "unparseable"
    if (first.choice, second.choice) == ("a", "b"):
        return "win", None
    if (first.choice, second.choice) == ("b", "a"):
        return "lose", None
    return "tie", "position"


def _cache_entry(key: str, config: JudgeConfig, template_hash: str, question: Question, reply: Reply) -> dict:
    return {
        "key": key,
        "model": config.model,
        "template_hash": template_hash,
        **question._asdict(),
        "choice": reply.choice,
        "status": reply.status,
        "raw": reply.raw,
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "attempts": reply.attempts,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _from_cache(entry: dict) -> Reply:
    return Reply(
        choice=entry.get("choice"),
        status=entry["status"],
        raw=entry.get("raw", ""),
        prompt_tokens=entry.get("prompt_tokens", 0),
        completion_tokens=entry.get("completion_tokens", 0),
        attempts=0,
    )


def ask_all(
    client: JudgeClient,
    cache: JudgmentCache,
    questions: Sequence[Question],
    concurrency: int,
    on_reply: Optional[Callable[[int, int], None]] = None,
) -> tuple[dict[Question, Reply], set[Question]]:
    """Replies to every question: cached ones read back, the others asked from ``concurrency`` threads.

    Args:
        client: the judge client.
        cache: the cache; each new answered reply is appended by the thread that received it.
        questions: distinct requests.
        concurrency: threads.
        on_reply: called in the calling thread as ``on_reply(done, total)`` after each new reply.

    Returns:
        ``(replies, new)``: a reply per question, and the questions asked in this run.
    """
    config, template_hash = client.config, client.prompt.hash
    keys = {q: judgment_key(config.model, template_hash, *q) for q in questions}
    replies = {q: _from_cache(cache.get(keys[q])) for q in questions if keys[q] in cache}
    todo = [q for q in questions if q not in replies]
    log.info("judge: %d request(s) needed, %d cached, %d to ask", len(questions), len(replies), len(todo))

    def ask(question: Question) -> Reply:
        reply = client.ask(*question)
        if reply.status != "error":
            cache.append(_cache_entry(keys[question], config, template_hash, question, reply))
        return reply

    executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="judge")
    try:
        futures = {executor.submit(ask, question): question for question in todo}
        for done, future in enumerate(as_completed(futures), start=1):
            replies[futures[future]] = future.result()
            if on_reply is not None:
                on_reply(done, len(todo))
    finally:  # on an interruption: drop queued requests, let those in flight finish and reach the cache
        executor.shutdown(wait=True, cancel_futures=True)
    return replies, set(todo)


def tally(
    alignment: Alignment, prompts: Sequence[str], replies: dict[Question, Reply]
) -> tuple[dict[tuple[str, str], PairCounts], dict[tuple[str, str], dict[str, int]]]:
    """Win/lose/tie counts and tie reasons for every ordered pair of systems."""
    counts, reasons = {}, {}
    for a, b in combinations(alignment.systems, 2):
        outcomes: Counter = Counter()
        why: Counter = Counter()
        for prompt in prompts:
            out_a, out_b = (alignment.records[s][prompt].generation for s in (a, b))
            if same_output(out_a, out_b):
                outcome, reason = "tie", "identical"
            else:
                outcome, reason = pair_outcome(
                    replies[Question(prompt, out_a, out_b)], replies[Question(prompt, out_b, out_a)]
                )
            outcomes[outcome] += 1
            if reason is not None:
                why[reason] += 1
        counts[(a, b)] = PairCounts(wins=outcomes["win"], losses=outcomes["lose"], ties=outcomes["tie"])
        counts[(b, a)] = counts[(a, b)].swapped()
        reasons[(a, b)] = reasons[(b, a)] = {name: why[name] for name in TIE_REASONS}
    return counts, reasons


def _usage(replies: dict[Question, Reply], new: set[Question]) -> JudgeUsage:
    fresh = [replies[q] for q in new]
    cached = [reply for q, reply in replies.items() if q not in new]
    return JudgeUsage(
        requests=sum(r.attempts for r in fresh),
        new_replies=sum(r.status != "error" for r in fresh),
        cached_replies=len(cached),
        errors=sum(r.status == "error" for r in fresh),
        new_prompt_tokens=sum(r.prompt_tokens for r in fresh),
        new_completion_tokens=sum(r.completion_tokens for r in fresh),
        cached_prompt_tokens=sum(r.prompt_tokens for r in cached),
        cached_completion_tokens=sum(r.completion_tokens for r in cached),
    )


def _refuse_unreachable(endpoint: str, fresh: Sequence[Reply]) -> None:
    """Raise ``JudgeError`` when every request of this run failed to connect (after its retries): the endpoint is
    down or the URL is wrong, and a report of ties-by-error would hide it. Timeouts and HTTP errors are not this."""
    if fresh and all(r.status == "error" and (r.error or "").startswith("APIConnectionError") for r in fresh):
        raise JudgeError(
            f"judge endpoint {endpoint} could not be reached: all {len(fresh)} request(s) failed ({fresh[0].error}); "
            "start the server or fix --judge.base_url"
        )


def run_judge(
    alignment: Alignment, config: JudgeConfig, cache_path: str, on_reply: Optional[Callable[[int, int], None]] = None
) -> JudgeResult:
    """Judge every pair of systems on the (optionally subsampled) aligned prompts.

    Args:
        alignment: the systems' records matched by prompt.
        config: the judge settings; ``config.model`` must be set.
        cache_path: the JSONL judge cache (read, then appended to).
        on_reply: progress hook, ``on_reply(done, total)`` after each new reply.

    Raises:
        JudgeError: when the endpoint rejects the key, model or URL, or no request reaches it.
    """
    if not config.model:
        raise ValueError("run_judge: --judge.model is not set")
    prompts = select_prompts(alignment.prompts, config.subset, config.seed)
    client = JudgeClient(config, load_prompt(config.prompt_file), RateLimiter(config.rpm))
    cache = JudgmentCache(cache_path)
    replies, new = ask_all(client, cache, questions_for(alignment, prompts), config.concurrency, on_reply)
    counts, reasons = tally(alignment, prompts, replies)
    errors = tuple(sorted({replies[q].error for q in new if replies[q].error}))
    _refuse_unreachable(client.endpoint, [replies[q] for q in new])
    return JudgeResult(
        prompts=tuple(prompts), counts=counts, tie_reasons=reasons, usage=_usage(replies, new), errors=errors
    )
