"""One judge request over any OpenAI-compatible chat-completions endpoint, with our own retries and rate limit.

The ``openai`` client is built with ``max_retries=0``: the retries that count are the project's (``alarm_pl/retry.py``,
shared with the LanguageTool client). A request is retried (at most ``max_retries`` times) after a 408, 409, 429 or
5xx status, a timeout or a connection error; the wait is the server's ``Retry-After`` (``retry-after-ms`` or
``retry-after`` in seconds or as an HTTP date) when it sends one, else ``backoff_base · 2^attempt`` capped at
``backoff_max``, with jitter. A 401, 403 or 404 stops the run (``JudgeError``): every other request would fail the
same way. Any other failure is recorded on the reply. Every attempt, retries included, first waits for the shared
requests-per-minute limiter.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from alarm_pl.eval.config import JudgeConfig
from alarm_pl.eval.prompt import CHOOSE_OUTPUT_TOOL, TOOL_NAME, JudgePrompt, parse_message
from alarm_pl.retry import Failure, RetryError, RetryPolicy, call_with_retries, is_retried_status, retry_after_seconds

log = logging.getLogger(__name__)

PLACEHOLDER_KEY = "no-key"
FATAL_STATUSES = (401, 403, 404)


class JudgeError(RuntimeError):
    """The judge cannot work at all (bad key, unknown model or URL); the message names the endpoint and model."""


@dataclass(frozen=True)
class Reply:
    """The outcome of one judge request.

    Attributes:
        choice: ``"a"`` or ``"b"``, or ``None`` when unparseable or failed.
        status: ``ok`` (parsed), ``unparseable`` (answered, no clear label) or ``error`` (no answer).
        raw: the raw reply (text and tool calls), empty on error.
        prompt_tokens: input tokens reported by the server (0 when not reported).
        completion_tokens: output tokens reported by the server.
        attempts: requests sent, retries included.
        error: what went wrong, for ``error`` replies.
    """

    choice: Optional[str]
    status: str
    raw: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    attempts: int = 1
    error: Optional[str] = None


class RateLimiter:
    """Spaces request starts at least ``60 / rpm`` seconds apart across threads (no limit when ``rpm`` is None)."""

    def __init__(self, rpm: Optional[float], clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 60.0 / rpm if rpm else 0.0
        self._clock = clock
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Block until this caller's slot comes."""
        if not self.interval:
            return
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        time.sleep(max(0.0, slot - now))


def resolve_api_key(config: JudgeConfig) -> str:
    """The API key from the environment variable named by ``config.api_key_env``.

    Raises:
        JudgeError: when the variable is unset and no ``base_url`` is given (the hosted API needs a key).
    """
    key = os.environ.get(config.api_key_env) if config.api_key_env else None
    if key:
        return key
    if config.base_url is None:
        raise JudgeError(
            f"the judge needs an API key: set the environment variable {config.api_key_env!r} "
            f"(or name another with --judge.api_key_env)"
        )
    log.warning(
        "environment variable %r is unset; sending a placeholder key to %s", config.api_key_env, config.base_url
    )
    return PLACEHOLDER_KEY


class JudgeClient:
    """Asks one forced-choice question at a time; thread-safe (one ``openai.OpenAI`` client shared by threads).

    Args:
        config: the judge settings (model, endpoint, retries, timeout, tool mode).
        prompt: the judge prompt.
        limiter: the requests-per-minute limiter shared by all threads.
    """

    def __init__(self, config: JudgeConfig, prompt: JudgePrompt, limiter: RateLimiter) -> None:
        import openai  # lazy: only a judged comparison needs the client

        self.config = config
        self.prompt = prompt
        self.limiter = limiter
        self._openai = openai
        self._client = openai.OpenAI(
            api_key=resolve_api_key(config), base_url=config.base_url, timeout=config.timeout, max_retries=0
        )
        self.endpoint = str(self._client.base_url)
        self.retry_policy = RetryPolicy(
            max_retries=config.max_retries,
            backoff_base=config.backoff_base,
            backoff_max=config.backoff_max,
            retry_after_max=config.retry_after_max,
        )

    def _request_args(self, instruction: str, output_1: str, output_2: str) -> dict[str, Any]:
        args: dict[str, Any] = {
            "model": self.config.model,
            "temperature": 0,
            "messages": self.prompt.messages(instruction, output_1, output_2),
        }
        if self.config.max_tokens is not None:
            args["max_tokens"] = self.config.max_tokens
        if self.config.tool != "off":
            args["tools"] = [CHOOSE_OUTPUT_TOOL]
            args["tool_choice"] = (
                "auto" if self.config.tool == "auto" else {"type": "function", "function": {"name": TOOL_NAME}}
            )
        return args

    def ask(self, instruction: str, output_1: str, output_2: str) -> Reply:
        """Ask which of ``output_1`` (shown as a) and ``output_2`` (shown as b) is better, retrying as configured.

        Raises:
            JudgeError: on 401/403/404 (wrong key, model or URL).
        """
        args = self._request_args(instruction, output_1, output_2)

        def attempt() -> Any:
            self.limiter.acquire()
            return self._client.chat.completions.create(**args)

        def on_retry(failure: Failure, retry: int, wait: float) -> None:
            log.info(
                "judge request failed (%s); retry %d/%d in %.2fs", failure.message, retry, self.config.max_retries, wait
            )

        try:
            completion, attempts = call_with_retries(attempt, self._classify, self.retry_policy, on_retry=on_retry)
        except RetryError as err:
            return Reply(choice=None, status="error", attempts=err.attempts, error=err.failure.message)
        return self._reply(completion, attempts)

    def _classify(self, err: Exception) -> Failure:
        """A failed request as the retry rule sees it; a 401/403/404 raises ``JudgeError``, unknown errors propagate."""
        if isinstance(err, self._openai.APIStatusError):
            if err.status_code in FATAL_STATUSES:
                raise JudgeError(
                    f"judge endpoint {self.endpoint} (model {self.config.model!r}) answered "
                    f"{err.status_code}: {err.message}"
                ) from None
            return Failure(
                is_retried_status(err.status_code),
                f"HTTP {err.status_code}: {err.message}",
                retry_after_seconds(err.response.headers),
            )
        if isinstance(err, self._openai.APIConnectionError):  # timeouts included
            return Failure(True, f"{type(err).__name__}: {err}")
        raise err

    @staticmethod
    def _reply(completion: Any, attempts: int) -> Reply:
        if not completion.choices:
            return Reply(choice=None, status="unparseable", raw="(no choices)", attempts=attempts)
        choice, raw = parse_message(completion.choices[0].message)
        usage = completion.usage
        return Reply(
            choice=choice,
            status="ok" if choice else "unparseable",
            raw=raw,
            prompt_tokens=(usage.prompt_tokens or 0) if usage else 0,
            completion_tokens=(usage.completion_tokens or 0) if usage else 0,
            attempts=attempts,
        )
