"""Retries of HTTP requests, shared by the LanguageTool client (``rewards/aspects/grammar.py``) and the LLM judge
client (``eval/client.py``).

One rule for both: a request is retried (at most ``max_retries`` times) after a 408, 409, 429 or 5xx status, a
timeout or a connection error; any other status is final at once. The wait before retry ``n`` (0-based) is the
server's ``Retry-After`` when it sends one (``retry-after-ms``, or ``retry-after`` in seconds or as an HTTP date),
capped at ``retry_after_max``; otherwise ``backoff_base · 2^n`` capped at ``backoff_max``, scaled by a random factor
in [0.5, 1] so that threads that failed together do not retry together.

The caller supplies the attempt (a function that returns a value or raises) and a ``classify`` function that turns an
exception into a ``Failure`` (retried or not, a message, the server's requested wait) or re-raises it when the error
must stop everything (e.g. a rejected API key). After the last failed attempt ``RetryError`` carries the attempt
count and the last failure, and the caller turns it into its own error.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Optional, TypeVar

T = TypeVar("T")

RETRIED_STATUSES = (408, 409, 429)
"""Request timeout, conflict and too-many-requests; every 5xx status is retried too."""


def is_retried_status(status: int) -> bool:
    """Whether an HTTP status is worth another attempt (408, 409, 429 or any 5xx)."""
    return status in RETRIED_STATUSES or status >= 500


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry.

    Attributes:
        max_retries: further attempts after the first failed one (0: a single attempt).
        backoff_base: seconds before the first retry, doubled before each further one.
        backoff_max: the longest exponential-backoff wait, in seconds.
        retry_after_max: the longest wait granted to a server's ``Retry-After``, in seconds.
        jitter: scale each backoff wait by a random factor in [0.5, 1].
    """

    max_retries: int
    backoff_base: float
    backoff_max: float = float("inf")
    retry_after_max: float = 600.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.backoff_base < 0 or self.backoff_max < 0 or self.retry_after_max < 0:
            raise ValueError(f"RetryPolicy: every field must be >= 0, got {self}")

    def delay(
        self, retry: int, retry_after: Optional[float] = None, uniform: Callable[[float, float], float] = random.uniform
    ) -> float:
        """Seconds to wait before retry number ``retry`` (0-based).

        Args:
            retry: how many retries came before this one.
            retry_after: the server's requested wait, if it sent one (wins over the backoff, up to
                ``retry_after_max``).
            uniform: the jitter's random source (tests pass a fixed one).
        """
        if retry_after is not None:
            return min(max(0.0, retry_after), self.retry_after_max)
        exponential = min(self.backoff_base * 2**retry, self.backoff_max)
        return exponential * uniform(0.5, 1.0) if self.jitter else exponential


class Failure(NamedTuple):
    """One failed attempt, as the caller's ``classify`` sees it.

    Attributes:
        retried: whether another attempt may help (see ``is_retried_status``).
        message: what went wrong, for logs and the final error (e.g. ``HTTP 503: busy``).
        retry_after: the wait the server asked for, in seconds, or None.
    """

    retried: bool
    message: str
    retry_after: Optional[float] = None


class RetryError(RuntimeError):
    """Every allowed attempt failed, or one failed in a way that is not retried.

    Attributes:
        attempts: requests sent, the first included.
        failure: the last failure.
    """

    def __init__(self, attempts: int, failure: Failure) -> None:
        super().__init__(f"failed after {attempts} attempt(s): {failure.message}")
        self.attempts = attempts
        self.failure = failure


def call_with_retries(
    attempt: Callable[[], T],
    classify: Callable[[Exception], Failure],
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Optional[Callable[[Failure, int, float], None]] = None,
) -> tuple[T, int]:
    """Call ``attempt`` until it returns, retrying as ``policy`` and ``classify`` allow.

    Args:
        attempt: one request; returns the result or raises.
        classify: maps an exception raised by ``attempt`` to a ``Failure``; it re-raises (or raises another error)
            when the failure must stop everything at once. Exceptions that are not ``Exception`` (e.g.
            ``KeyboardInterrupt``) are never caught.
        policy: retry count and waits.
        sleep: the wait function (tests pass a recorder).
        on_retry: called with (failure, retry number from 1, wait in seconds) before each wait, e.g. to log.

    Returns:
        (the result, the number of attempts made).

    Raises:
        RetryError: after the last allowed attempt, or at once when ``classify`` says the failure is not retried.
    """
    attempts = 0
    while True:
        attempts += 1
        try:
            return attempt(), attempts
        except Exception as err:  # noqa: BLE001 - classify decides what each failure means
            failure = classify(err)
        if not failure.retried or attempts > policy.max_retries:
            raise RetryError(attempts, failure)
        wait = policy.delay(attempts - 1, failure.retry_after)
        if on_retry is not None:
            on_retry(failure, attempts, wait)
        sleep(wait)


def retry_after_seconds(headers: Any) -> Optional[float]:
    """The wait a server asks for in ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date), if any.

    Args:
        headers: a case-insensitive mapping of response headers (``httpx.Headers``, ``http.client.HTTPMessage``) or
            a plain dict with lower-case keys; None reads as no header.
    """
    if headers is None:
        return None
    milliseconds = headers.get("retry-after-ms")
    try:
        if milliseconds is not None:
            return max(0.0, float(milliseconds) / 1000.0)
    except ValueError:
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if email.utils.parsedate_tz(value) else None
        return None if parsed is None else max(0.0, parsed.timestamp() - time.time())
