"""Calls to the optional model services (SPLADE, reranker): a circuit breaker and a guarded, retrying JSON POST."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import aiohttp
from tenacity import wait_exponential, wait_random

from mcp_web_ingest.errors import ServiceError, ServiceUnavailable
from mcp_web_ingest.retry import TransientError, is_transient_status, retry_transient

log = logging.getLogger(__name__)

T = TypeVar("T")
Outcome = Literal["success", "failed", "short_circuited"]
OutcomeCallback = Callable[[str], None]
BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Opens after `failure_threshold` consecutive failures; after `reset_timeout_s` one probe call may pass.

    closed → (N failures) → open → (cool-down elapsed, next call is the probe) → half_open → closed on success,
    open again on failure. While open, or while a probe is in flight, calls are refused without any I/O.
    """

    def __init__(
        self,
        name: str,
        failure_threshold: int = 5,
        reset_timeout_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self._clock = clock
        self._state: BreakerState = "closed"
        self._opened_at = 0.0
        self._probe_in_flight = False
        self.consecutive_failures = 0
        self.last_error: str | None = None
        self.last_failure_at: str | None = None
        self.counters = {"success": 0, "failed": 0, "short_circuited": 0, "opened": 0}

    @property
    def state(self) -> BreakerState:
        """closed, open or half_open (a probe is allowed or in flight)."""
        if self._state == "open" and self._clock() - self._opened_at >= self.reset_timeout_s:
            return "half_open"
        return self._state

    def retry_in_s(self) -> float:
        """Seconds until an open circuit lets a probe through (0 when closed or half-open)."""
        if self._state != "open":
            return 0.0
        return max(0.0, self.reset_timeout_s - (self._clock() - self._opened_at))

    def acquire(self) -> bool:
        """Whether a call may go out now; a call let through after the cool-down is the half-open probe."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._probe_in_flight:
            self._state, self._probe_in_flight = "half_open", True
            return True
        self.counters["short_circuited"] += 1
        return False

    def record_success(self) -> None:
        """The service answered: close the circuit."""
        self.counters["success"] += 1
        self.consecutive_failures = 0
        if self._state != "closed":
            log.warning("%s answers again: circuit closed, calls go through", self.name)
        self._state, self._probe_in_flight = "closed", False

    def record_failure(self, error: str) -> None:
        """The service failed; open the circuit at the threshold, or again when the probe failed."""
        self.counters["failed"] += 1
        self.consecutive_failures += 1
        self.last_error = error
        self.last_failure_at = datetime.now(UTC).isoformat(timespec="seconds")
        if self._state == "half_open" or self.consecutive_failures >= self.failure_threshold:
            if self._state != "open":
                self.counters["opened"] += 1
            if self._state == "closed":  # a failed probe re-opens quietly: the outage was reported when it began
                log.warning(
                    "%s degraded: circuit opened after %d failure(s) in a row (%s); calls skip it for %.0f s",
                    self.name, self.consecutive_failures, error, self.reset_timeout_s,
                )  # fmt: skip
            self._state, self._opened_at, self._probe_in_flight = "open", self._clock(), False

    def release(self) -> None:
        """A call ended without a verdict (cancelled): let the next call be the probe."""
        self._probe_in_flight = False

    def snapshot(self) -> dict[str, Any]:
        """State for the health report."""
        return {
            "state": self.state,
            "consecutive_failures": self.consecutive_failures,
            "failure_threshold": self.failure_threshold,
            "retry_in_s": round(self.retry_in_s(), 1),
            "last_error": self.last_error,
            "last_failure_at": self.last_failure_at,
            "counters": dict(self.counters),
        }


async def _error_text(resp: aiohttp.ClientResponse) -> str:
    """TEI's {"error": ...} message, else the start of the body."""
    text = (await resp.text(errors="replace"))[:300]
    try:
        return str(json.loads(text).get("error") or text)
    except (ValueError, AttributeError):
        return text


class GuardedHttp:
    """POSTs JSON to one service with per-attempt timeouts, tenacity retries on transient errors and a breaker."""

    def __init__(
        self,
        service: str,
        base_url: str,
        *,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 5.0,
        retries: int = 3,
        retry_max_wait_s: float = 2.0,
        breaker: CircuitBreaker | None = None,
        on_outcome: OutcomeCallback | None = None,
        unavailable: type[ServiceUnavailable] = ServiceUnavailable,
    ) -> None:
        self.service = service
        self.base_url = base_url.rstrip("/")
        self.retries = max(1, retries)
        self.retry_max_wait_s = retry_max_wait_s
        self.breaker = breaker or CircuitBreaker(service)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=connect_timeout_s)
        self._on_outcome = on_outcome
        self._unavailable = unavailable
        # 0.1 s, 0.2 s, 0.4 s... capped, plus a little jitter (on top of the cap) so clients do not retry in step.
        self._wait = wait_exponential(multiplier=0.1, max=retry_max_wait_s) + wait_random(0, min(0.1, retry_max_wait_s))
        self._session: aiohttp.ClientSession | None = None

    def _outcome(self, outcome: Outcome) -> None:
        if self._on_outcome is not None:
            self._on_outcome(outcome)

    def _session_now(self) -> aiohttp.ClientSession:
        # Created lazily so the client can be built outside a running event loop.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def _attempt(self, url: str, body: Any, limits: aiohttp.ClientTimeout | None) -> Any:
        try:
            async with self._session_now().post(url, json=body, timeout=limits or self._timeout) as resp:
                if is_transient_status(resp.status):
                    raise TransientError(f"HTTP {resp.status}: {await _error_text(resp)}", status=resp.status)
                if resp.status == 424:  # TEI: inference failed in the backend; a model fault, not a bad request
                    raise self._unavailable(
                        f"{self.service} inference failed: {await _error_text(resp)}", service=self.service, status=424
                    )
                if resp.status >= 400:
                    raise ServiceError(
                        f"{self.service} at {url} refused the request: HTTP {resp.status} {await _error_text(resp)}",
                        service=self.service,
                        status=resp.status,
                    )
                return await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise TransientError(f"{type(exc).__name__}: {exc}") from exc

    async def post_json(
        self,
        path: str,
        body: Any,
        parse: Callable[[Any], T],
        *,
        timeout_s: float | None = None,
        attempts: int | None = None,
    ) -> T:
        """POST body to path and parse the JSON answer; raises ServiceUnavailable (also when the circuit is open).

        timeout_s / attempts: overrides for calls a user waits on (search), where a retry would double the wait.
        """
        url = self.base_url + path
        tries = self.retries if attempts is None else max(1, attempts)
        limits = None
        if timeout_s is not None:
            limits = aiohttp.ClientTimeout(total=timeout_s, sock_connect=self._timeout.sock_connect)
        if not self.breaker.acquire():
            self._outcome("short_circuited")
            raise self._unavailable(
                f"{self.service} at {self.base_url} is unavailable: circuit open after "
                f"{self.breaker.consecutive_failures} consecutive failures, next probe in "
                f"{self.breaker.retry_in_s():.0f} s (last error: {self.breaker.last_error})",
                service=self.service,
                short_circuited=True,
            )
        try:
            try:
                payload = await retry_transient(
                    lambda: self._attempt(url, body, limits), attempts=tries, wait=self._wait
                )
            except TransientError as exc:
                raise self._unavailable(
                    f"{self.service} at {url} is unavailable after {tries} attempt{'s' if tries > 1 else ''}: {exc}",
                    service=self.service,
                    status=exc.status,
                ) from exc
            try:
                result = parse(payload)
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                raise self._unavailable(
                    f"{self.service} at {url} returned an unexpected response: {exc}", service=self.service
                ) from exc
        except ServiceUnavailable as exc:
            self.breaker.record_failure(str(exc))
            self._outcome("failed")
            raise
        except ServiceError:
            self.breaker.record_success()  # it answered: the service is up even though it refused this request
            self._outcome("failed")
            raise
        except BaseException:
            self.breaker.release()
            raise
        self.breaker.record_success()
        self._outcome("success")
        return result

    async def health(self) -> dict[str, Any]:
        """GET /health (2 s, not through the breaker): reachability, the service's own report, breaker state."""
        out: dict[str, Any] = {"url": self.base_url, "breaker": self.breaker.snapshot()}
        try:
            timeout = aiohttp.ClientTimeout(total=2)
            async with self._session_now().get(self.base_url + "/health", timeout=timeout) as resp:
                reachable = resp.status < 400
                if not reachable:
                    out["detail"] = f"HTTP {resp.status}"
                info = await resp.json(content_type=None) if resp.content_length != 0 else None
                if isinstance(info, dict):
                    out["service"] = info
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            reachable = False
            out["detail"] = f"unreachable: {type(exc).__name__}"
        if not reachable or self.breaker.state != "closed":
            status = "error"
        else:
            # /health can answer fast while the model work times out: recent failures already mean degraded.
            status = "degraded" if self.breaker.consecutive_failures else "ok"
        return {"status": status, **out}

    async def aclose(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None
