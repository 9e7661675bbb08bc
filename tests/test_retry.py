"""The retry engine: pure backoff arithmetic, then its behaviour over real HTTP."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from aiohttp import web

from clients.errors import ErrorKind, PlatformError
from clients.http import AttemptEvent
from clients.retry import (
    MIN_ATTEMPT_SECONDS,
    Budget,
    backoff_delay,
    parse_rate_limit_reset,
    parse_retry_after,
    plan_wait,
    server_hint,
)
from clients.servicenow import ServiceNowClient, ServiceNowSettings
from clients.settings import (
    Credentials,
    HttpSettings,
    RetryPolicy,
    TimeoutConfig,
)
from tests.http_stub import Recorder, cut, hang, scripted, serve, status

SYS_ID = "0123456789abcdef0123456789abcdef"
RECORD = {"result": {"sys_id": SYS_ID, "number": "INC0010001", "state": "1"}}
PATH = f"/api/now/table/incident/{SYS_ID}"
FAST = RetryPolicy(initial_delay=0.01, max_delay=0.05)
# Slack for scheduling when asserting that a call ended by a deadline: generous, since only
# "did not sleep past it" is being checked, not speed.
SLACK = 0.5


def client(
    base: str, retry: RetryPolicy = FAST, timeout: TimeoutConfig | None = None, **kw: Any
) -> ServiceNowClient:
    settings = ServiceNowSettings(HttpSettings(base), Credentials("basic", "admin", "admin"))
    return ServiceNowClient(settings, retry, timeout or TimeoutConfig(), **kw)


def sn_error(message: str, detail: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "detail": detail}, "status": "failure"}


# -- pure arithmetic --------------------------------------------------------------------------


def test_backoff_grows_exponentially_and_is_capped() -> None:
    policy = RetryPolicy(initial_delay=0.2, multiplier=2.0, max_delay=1.0, jitter=False)
    assert [backoff_delay(n, policy) for n in (1, 2, 3, 4, 5)] == [0.2, 0.4, 0.8, 1.0, 1.0]
    assert backoff_delay(10_000, policy) == 1.0  # no overflow


def test_full_jitter_spans_zero_to_the_computed_delay() -> None:
    policy = RetryPolicy(initial_delay=0.2, multiplier=2.0, max_delay=10.0, jitter=True)
    assert backoff_delay(3, policy, rand=lambda: 0.0) == 0.0
    assert backoff_delay(3, policy, rand=lambda: 0.5) == pytest.approx(0.4)
    assert backoff_delay(3, policy, rand=lambda: 0.999999) == pytest.approx(0.8, rel=1e-4)


def test_server_hint_is_a_floor_capped_by_max_delay() -> None:
    policy = RetryPolicy(max_delay=5.0)
    assert plan_wait(1, policy, 2.0, remaining=60, rand=lambda: 0.0) == 2.0
    assert 2.0 <= plan_wait(1, policy, 2.0, remaining=60, rand=lambda: 1.0) <= 2.2  # type: ignore[operator]
    assert plan_wait(1, policy, 30.0, remaining=60, rand=lambda: 1.0) == 5.0


def test_no_wait_that_would_overrun_the_budget() -> None:
    policy = RetryPolicy(max_delay=10.0, jitter=False, initial_delay=1.0)
    assert plan_wait(1, policy, 3.0, remaining=2.0) is None
    assert plan_wait(1, policy, None, remaining=1.0) is None  # 1 s wait leaves no attempt time
    assert plan_wait(1, policy, None, remaining=1.0 + MIN_ATTEMPT_SECONDS + 0.01) == 1.0


def test_max_attempts_is_a_backstop() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert plan_wait(2, policy, None, remaining=60) is not None
    assert plan_wait(3, policy, None, remaining=60) is None


def test_budget_is_the_sooner_of_total_and_the_callers_deadline() -> None:
    assert Budget.start(60, None, now=100) == Budget(160, caller_bound=False)
    assert Budget.start(60, 130, now=100) == Budget(130, caller_bound=True)
    assert Budget.start(60, 200, now=100) == Budget(160, caller_bound=False)
    assert Budget.start(60, 130, now=100).remaining(now=110) == 20


def test_retry_after_delta_seconds_and_http_date() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("7", now) == 7.0
    date = format_datetime(datetime.fromtimestamp(now + 12, UTC), usegmt=True)
    assert parse_retry_after(date, now) == pytest.approx(12, abs=1)
    # The server's own clock (Date header) wins, so local skew cannot shorten the wait.
    assert parse_retry_after(date, now + 100, server_now=now) == pytest.approx(12, abs=1)
    past = format_datetime(datetime.fromtimestamp(now - 50, UTC), usegmt=True)
    assert parse_retry_after(past, now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("-3", now) is None


def test_rate_limit_reset_unix_seconds_and_iso8601() -> None:
    now = 1_700_000_000.0
    assert parse_rate_limit_reset(str(int(now) + 9), now) == 9.0  # ServiceNow
    assert parse_rate_limit_reset(str(int(now * 1000) + 4000), now) == pytest.approx(4.0)
    iso = datetime.fromtimestamp(now + 30, UTC).isoformat().replace("+00:00", "Z")
    assert parse_rate_limit_reset(iso, now) == pytest.approx(30.0)  # Jira
    assert parse_rate_limit_reset("2023-11-14T22:13:50", now) is None  # no zone: no guess
    assert parse_rate_limit_reset("3", now) == 3.0  # small numbers are a delay


def test_retry_after_beats_reset_header() -> None:
    now = 1_700_000_000.0
    headers = {"Retry-After": "2", "X-RateLimit-Reset": str(int(now) + 40)}
    assert server_hint(headers, now) == 2.0
    assert server_hint({"X-RateLimit-Reset": str(int(now) + 40)}, now) == 40.0
    assert server_hint({}, now) is None


# -- over real HTTP ---------------------------------------------------------------------------


@pytest.mark.parametrize("code", [429, 502, 503, 504])
async def test_each_retryable_status_is_retried(code: int) -> None:
    seen = Recorder()
    handler = scripted(status(code, sn_error("Transient")), status(200, RECORD))
    async with serve({("GET", PATH): handler}, seen) as base:
        c = client(base)
        reply = await c.get(SYS_ID)
        await c.close()
    assert seen.count() == 2
    assert reply.retry.attempts == 2
    assert reply.retry.last_status == 200
    assert reply.data["sys_id"] == SYS_ID


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (400, ErrorKind.PAYLOAD_REJECTED),
        (401, ErrorKind.AUTH),
        (403, ErrorKind.AUTH),
        (404, ErrorKind.NOT_FOUND),
        (409, ErrorKind.CONFLICT),
        (422, ErrorKind.PAYLOAD_REJECTED),
        (500, ErrorKind.BAD_RESPONSE),
    ],
)
async def test_non_retryable_status_fails_on_the_first_attempt(code: int, kind: ErrorKind) -> None:
    seen = Recorder()
    async with serve({("GET", PATH): status(code, sn_error("Nope", "really"))}, seen) as base:
        c = client(base)
        with pytest.raises(PlatformError) as caught:
            await c.get(SYS_ID)
        await c.close()
    assert seen.count() == 1
    err = caught.value
    assert (err.kind, err.status, err.attempts) == (kind, code, 1)
    assert err.message == "Nope: really"
    assert not err.ambiguous


async def test_500_is_retried_only_when_configured() -> None:
    seen = Recorder()
    handler = scripted(status(500, sn_error("Oops")), status(200, RECORD))
    policy = RetryPolicy(initial_delay=0.01, retryable_statuses=frozenset({500, 503}))
    async with serve({("GET", PATH): handler}, seen) as base:
        c = client(base, policy)
        reply = await c.get(SYS_ID)
        await c.close()
    assert reply.retry.attempts == 2


async def test_retry_after_seconds_is_honoured() -> None:
    seen = Recorder()
    handler = scripted(status(503, sn_error("Busy"), {"Retry-After": "1"}), status(200, RECORD))
    async with serve({("GET", PATH): handler}, seen) as base:
        c = client(base, RetryPolicy(initial_delay=0.01, max_delay=5))
        reply = await c.get(SYS_ID)
        await c.close()
    first, second = seen.requests
    assert second.at - first.at >= 1.0
    assert reply.retry.waited_seconds >= 1.0


async def test_retry_after_http_date_is_honoured() -> None:
    seen = Recorder()
    retry_at: list[float] = []

    def limited(_: web.Request) -> web.Response:
        at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
        retry_at.append(at.timestamp())
        headers = {"Retry-After": format_datetime(at, usegmt=True)}
        return web.json_response(sn_error("Rate limit exceeded"), status=429, headers=headers)

    async with serve({("GET", PATH): scripted(limited, status(200, RECORD))}, seen) as base:
        c = client(base, RetryPolicy(initial_delay=0.01, max_delay=5))
        reply = await c.get(SYS_ID)
        await c.close()
    assert reply.retry.attempts == 2
    # Wall-clock arrival of the retry is not before the instant the server named.
    assert seen.requests[1].wall >= retry_at[0]


async def test_servicenow_reset_header_is_honoured_without_retry_after() -> None:
    seen = Recorder()

    def limited(_: web.Request) -> web.Response:
        headers = {"X-RateLimit-Reset": str(int(time.time()) + 2)}
        return web.json_response(sn_error("Rate limit exceeded"), status=429, headers=headers)

    async with serve({("GET", PATH): scripted(limited, status(200, RECORD))}, seen) as base:
        c = client(base, RetryPolicy(initial_delay=0.01, max_delay=5))
        reply = await c.get(SYS_ID)
        await c.close()
    first, second = seen.requests
    assert second.at - first.at >= 1.0  # reset instant is whole seconds: at least 1 s away
    assert reply.retry.attempts == 2


async def test_retry_after_is_capped_by_max_delay() -> None:
    seen = Recorder()
    handler = scripted(status(503, sn_error("Busy"), {"Retry-After": "30"}), status(200, RECORD))
    async with serve({("GET", PATH): handler}, seen) as base:
        c = client(base, RetryPolicy(initial_delay=0.01, max_delay=0.2))
        reply = await c.get(SYS_ID)
        await c.close()
    assert reply.retry.attempts == 2
    assert reply.retry.waited_seconds <= 0.2


async def test_retry_after_beyond_the_budget_stops_at_once() -> None:
    seen = Recorder()
    handler = status(503, sn_error("Busy"), {"Retry-After": "5"})
    async with serve({("GET", PATH): handler}, seen) as base:
        c = client(base, RetryPolicy(max_delay=10), TimeoutConfig(total=2))
        started = time.monotonic()
        with pytest.raises(PlatformError) as caught:
            await c.get(SYS_ID)
        elapsed = time.monotonic() - started
        await c.close()
    err = caught.value
    assert (err.kind, err.attempts, err.status) == (ErrorKind.UNAVAILABLE, 1, 503)
    assert seen.count() == 1
    assert elapsed < 2  # never slept into a wait it could not finish
    assert "time budget" in str(err)


async def test_callers_deadline_cuts_a_hanging_attempt() -> None:
    async with serve({("GET", PATH): hang}) as base:
        c = client(base, FAST, TimeoutConfig(read=30, total=30))
        deadline = time.monotonic() + 0.5
        with pytest.raises(PlatformError) as caught:
            await c.get(SYS_ID, deadline=deadline)
        ended = time.monotonic()
        await c.close()
    assert caught.value.kind is ErrorKind.DEADLINE
    assert caught.value.status is None
    assert ended < deadline + SLACK


async def test_total_budget_ends_retrying_as_unavailable() -> None:
    seen = Recorder()
    async with serve({("GET", PATH): status(503, sn_error("Busy"))}, seen) as base:
        c = client(base, RetryPolicy(initial_delay=0.05, max_delay=0.1), TimeoutConfig(total=0.8))
        started = time.monotonic()
        with pytest.raises(PlatformError) as caught:
            await c.get(SYS_ID)
        ended = time.monotonic()
        await c.close()
    err = caught.value
    assert err.kind is ErrorKind.UNAVAILABLE
    assert err.attempts == seen.count() > 2
    assert ended < started + 0.8 + SLACK


async def test_expired_deadline_sends_nothing() -> None:
    seen = Recorder()
    async with serve({("GET", PATH): status(200, RECORD)}, seen) as base:
        c = client(base)
        with pytest.raises(PlatformError) as caught:
            await c.get(SYS_ID, deadline=time.monotonic() - 1)
        await c.close()
    assert caught.value.kind is ErrorKind.DEADLINE
    assert seen.count() == 0


async def test_max_attempts_ends_retrying() -> None:
    seen = Recorder()
    async with serve({("GET", PATH): status(502, "bad gateway")}, seen) as base:
        c = client(base, RetryPolicy(max_attempts=3, initial_delay=0.01))
        with pytest.raises(PlatformError) as caught:
            await c.get(SYS_ID)
        await c.close()
    assert seen.count() == 3
    assert caught.value.kind is ErrorKind.UNAVAILABLE
    assert "attempts exhausted" in str(caught.value)


async def test_read_timeout_is_retried_for_reads() -> None:
    seen = Recorder()
    handler = scripted(hang, status(503, sn_error("Busy")), status(200, RECORD))
    async with serve({("GET", PATH): handler}, seen) as base:
        c = client(base, FAST, TimeoutConfig(read=0.3, total=10))
        reply = await c.get(SYS_ID)
        await c.close()
    assert seen.count() == 3
    assert reply.retry.attempts == 3


async def test_cut_connection_is_retried_for_reads() -> None:
    seen = Recorder()
    handler = scripted(cut, cut, status(200, RECORD))
    async with serve({("GET", PATH): handler}, seen) as base:
        c = client(base)
        reply = await c.get(SYS_ID)
        await c.close()
    # aiohttp itself resends an idempotent request once on a dropped connection, so the
    # server may see more requests than the client counts attempts.
    assert seen.count() == 3
    assert reply.data["sys_id"] == SYS_ID


async def test_connection_refused_is_retried_then_unavailable() -> None:
    async with serve({}) as base:
        pass  # the port is free again: connections are refused
    c = client(base, RetryPolicy(max_attempts=3, initial_delay=0.01))
    with pytest.raises(PlatformError) as caught:
        await c.get(SYS_ID)
    await c.close()
    err = caught.value
    assert (err.kind, err.attempts, err.status) == (ErrorKind.UNAVAILABLE, 3, None)
    assert "connect" in err.message


async def test_on_attempt_sees_every_attempt() -> None:
    events: list[AttemptEvent] = []
    handler = scripted(status(503, sn_error("Busy")), status(200, RECORD))
    async with serve({("GET", PATH): handler}) as base:
        c = client(base, on_attempt=events.append)
        await c.get(SYS_ID)
        await c.close()
    assert [(e.attempt, e.status, e.outcome, e.reason) for e in events] == [
        (1, 503, "retry", "http_503"),
        (2, 200, "ok", None),
    ]
    assert all(e.platform == "servicenow" and e.operation == "get" for e in events)
    assert all(e.method == "GET" and e.duration_seconds >= 0 for e in events)


async def test_a_failing_hook_does_not_break_the_call() -> None:
    def broken(_: AttemptEvent) -> None:
        raise RuntimeError("observer bug")

    async with serve({("GET", PATH): status(200, RECORD)}) as base:
        c = client(base, on_attempt=broken)
        reply = await c.get(SYS_ID)
        await c.close()
    assert reply.data["sys_id"] == SYS_ID


async def test_redirect_is_not_followed() -> None:
    seen = Recorder()
    redirect = status(302, "", {"Location": "http://user:pw@elsewhere.example/login?x=1"})
    async with serve({("GET", PATH): redirect}, seen) as base:
        c = client(base)
        with pytest.raises(PlatformError) as caught:
            await c.get(SYS_ID)
        await c.close()
    assert caught.value.kind is ErrorKind.BAD_RESPONSE
    assert "pw" not in str(caught.value) and "x=1" not in str(caught.value)
    assert seen.count() == 1


async def test_html_instead_of_json_is_a_bad_response() -> None:
    page = status(200, "<html><body>Instance hibernating</body></html>")
    async with serve({("GET", PATH): page}) as base:
        c = client(base)
        with pytest.raises(PlatformError) as caught:
            await c.get(SYS_ID)
        await c.close()
    assert caught.value.kind is ErrorKind.BAD_RESPONSE
