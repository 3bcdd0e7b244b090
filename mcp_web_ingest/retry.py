"""The one retry policy for transient HTTP failures: TransientError, the backoff, and the retry loop around a call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

T = TypeVar("T")
Wait = Callable[[RetryCallState], float]


class TransientError(Exception):
    """A failure another attempt may get past (connect error, timeout, HTTP 429 or 5xx); internal to the package.

    It never reaches a user: each caller turns the last one into its public error (FetchError, EmbeddingError,
    ServiceUnavailable), or hands the work to a fallback that applies this policy itself.
    """

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def is_transient_status(status: int) -> bool:
    """HTTP 429 or any 5xx: an API server that is rate-limiting, overloaded or failing may answer a later attempt."""
    return status == 429 or status >= 500


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def backoff(base_s: float, max_s: float) -> Wait:
    """base, 2*base, 4*base ... plus up to base of jitter (clients do not retry in lockstep); at most max_s."""
    return wait_exponential_jitter(multiplier=base_s, max=max_s, jitter=base_s)


def honour_retry_after(wait: Wait, max_s: float) -> Wait:
    """wait, except after a TransientError carrying the server's Retry-After: that delay, at most max_s."""

    def choose(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            return min(exc.retry_after, max_s)
        return wait(state)

    return choose


async def retry_transient(call: Callable[[], Awaitable[T]], *, attempts: int, wait: Wait) -> T:
    """call() until it returns or raises anything but TransientError; after `attempts` tries, the last one."""
    retrying = AsyncRetrying(
        retry=retry_if_exception_type(TransientError), stop=stop_after_attempt(attempts), wait=wait, reraise=True
    )
    async for attempt in retrying:
        with attempt:
            return await call()
    raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover
