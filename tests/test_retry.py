"""The shared HTTP retry helper: backoff waits, Retry-After, give-up, and what is (not) retried."""

import email.utils
import time

import pytest

from alarm_pl.retry import Failure, RetryError, RetryPolicy, call_with_retries, is_retried_status, retry_after_seconds


class Flaky:
    """Fails with the given exceptions in turn, then returns "ok"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


class Status(Exception):
    def __init__(self, code: int, retry_after: float | None = None) -> None:
        super().__init__(code)
        self.code, self.retry_after = code, retry_after


def classify(err: Exception) -> Failure:
    if isinstance(err, Status):
        return Failure(is_retried_status(err.code), f"HTTP {err.code}", err.retry_after)
    if isinstance(err, ConnectionError):
        return Failure(True, "connection refused")
    raise err


def test_statuses_that_are_retried() -> None:
    assert [code for code in (400, 401, 404, 408, 409, 422, 429, 500, 502, 503) if is_retried_status(code)] == [
        408,
        409,
        429,
        500,
        502,
        503,
    ]


def test_exponential_backoff_doubles_and_is_capped() -> None:
    policy = RetryPolicy(max_retries=5, backoff_base=0.5, backoff_max=3.0, jitter=False)
    # 0.5·2^n: 0.5, 1, 2, 4 -> capped at 3
    assert [policy.delay(n) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    jittered = RetryPolicy(max_retries=5, backoff_base=0.5, backoff_max=3.0)
    assert jittered.delay(2, uniform=lambda low, high: low) == 1.0  # the jitter factor's lower end, 0.5 · 2
    assert all(1.0 <= jittered.delay(2) <= 2.0 for _ in range(50))


def test_retry_after_wins_over_the_backoff_and_is_capped() -> None:
    policy = RetryPolicy(max_retries=3, backoff_base=0.01, retry_after_max=5.0)
    assert policy.delay(0, retry_after=2.0) == 2.0
    assert policy.delay(3, retry_after=30.0) == 5.0
    flaky = Flaky(Status(429, retry_after=1.5), Status(503))
    sleeps: list[float] = []
    result = call_with_retries(
        flaky, classify, RetryPolicy(max_retries=3, backoff_base=0.25, jitter=False), sleep=sleeps.append
    )
    assert result == ("ok", 3) and sleeps == [1.5, 0.5]  # the server's wait, then the backoff of retry 1 (0.25·2)


def test_gives_up_after_the_last_retry_with_the_last_failure() -> None:
    flaky = Flaky(ConnectionError(), Status(500), Status(502), Status(503))
    sleeps: list[float] = []
    retries: list[int] = []
    with pytest.raises(RetryError, match=r"failed after 3 attempt\(s\): HTTP 502") as caught:
        call_with_retries(
            flaky,
            classify,
            RetryPolicy(max_retries=2, backoff_base=1.0, jitter=False),
            sleep=sleeps.append,
            on_retry=lambda failure, n, wait: retries.append(n),
        )
    assert caught.value.attempts == 3 and caught.value.failure.message == "HTTP 502"
    assert flaky.calls == 3 and sleeps == [1.0, 2.0] and retries == [1, 2]


def test_a_final_status_is_not_retried_and_a_fatal_error_propagates() -> None:
    sleeps: list[float] = []
    with pytest.raises(RetryError, match=r"after 1 attempt\(s\): HTTP 404"):
        call_with_retries(
            Flaky(Status(404)), classify, RetryPolicy(max_retries=5, backoff_base=1.0), sleep=sleeps.append
        )
    with pytest.raises(KeyError):  # classify re-raises what it does not know: no retry, no wrapping
        call_with_retries(
            Flaky(KeyError("x")), classify, RetryPolicy(max_retries=5, backoff_base=1.0), sleep=sleeps.append
        )
    assert sleeps == []
    assert call_with_retries(Flaky(), classify, RetryPolicy(max_retries=0, backoff_base=1.0)) == ("ok", 1)


def test_retry_after_header_forms() -> None:
    assert retry_after_seconds({"retry-after": "2"}) == 2.0
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25  # the finer one first
    assert retry_after_seconds({"retry-after": "soon"}) is None and retry_after_seconds({}) is None
    assert retry_after_seconds(None) is None and retry_after_seconds({"retry-after": "-3"}) == 0.0
    in_ten_seconds = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert 8.0 <= retry_after_seconds({"retry-after": in_ten_seconds}) <= 10.0


def test_invalid_policy() -> None:
    with pytest.raises(ValueError, match="RetryPolicy"):
        RetryPolicy(max_retries=-1, backoff_base=1.0)
