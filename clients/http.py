"""One platform's HTTP transport: its session, and the retry loop every request goes through.

The rules (which failures are transient, which are ambiguous for a non-idempotent request, how long
to wait) live here once, so the platform modules only say what to send and how to read the answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import aiohttp
from yarl import URL

from clients.errors import ErrorDetail, ErrorKind, PlatformError
from clients.platform import RetryInfo
from clients.redaction import Redactor, display_url
from clients.retry import Budget, plan_wait, server_hint
from clients.settings import HttpSettings, RetryPolicy, TimeoutConfig

log = logging.getLogger("clients.http")

# Bounded everything: a ticket API answer is a few kilobytes; a page this size is not one.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024

# For a POST these mean the upstream may have done the work before the gateway gave up.
_AMBIGUOUS_STATUSES = frozenset({500, 502, 504})
# These, answered in the platform's own error format, mean the request was refused, not applied.
_REFUSED_STATUSES = frozenset({429, 503})

Outcome = Literal["ok", "retry", "error"]


@dataclass(frozen=True)
class AttemptEvent:
    """One HTTP attempt, for metrics and logs. Carries no URL, header or body."""

    platform: str
    operation: str  # the request's role: create, find, get, update, comment, token, ...
    method: str
    attempt: int  # 1-based, within this request's retry loop
    status: int | None  # None when no HTTP answer arrived
    duration_seconds: float
    outcome: Outcome
    reason: str | None = None  # why not ok: "http_503", "timeout", "connection", "budget", ...


AttemptHook = Callable[[AttemptEvent], None]


@dataclass(frozen=True)
class Request:
    operation: str
    method: str
    path: str  # appended to the base URL; already percent-safe
    params: Mapping[str, str] | None = None
    json: Any = None
    form: Mapping[str, str] | None = None
    idempotent: bool = True  # safe to send again after an ambiguous failure
    authenticated: bool = True


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    data: Any  # parsed JSON; None for an empty body


@dataclass
class Call:
    """One public operation: its budget, shared by every request it makes, and what it cost."""

    operation: str
    budget: Budget
    attempts: int = 0
    waited: float = 0.0
    last_status: int | None = None

    def retry_info(self) -> RetryInfo:
        return RetryInfo(self.attempts, round(self.waited, 6), self.last_status)


SendFn = Callable[[Call, Request], Awaitable[Response]]


class AuthProvider(Protocol):
    async def authorization(self, call: Call, send: SendFn) -> str:
        """The Authorization header value for the next request."""
        ...

    def invalidate(self, header: str) -> bool:
        """The platform rejected `header`; True if a fresh credential is worth one more try."""
        ...


ErrorParser = Callable[[int, Any, str], ErrorDetail]


@dataclass
class _Failure:
    reason: str
    retryable: bool
    ambiguous: bool  # the request may have been applied
    kind: ErrorKind = ErrorKind.UNAVAILABLE
    status: int | None = None
    detail: ErrorDetail | None = None
    hint: float | None = None  # the server's requested wait
    budget_spent: bool = False
    auth_rejected: str | None = None  # the Authorization value a 401 refused

    def message(self) -> str:
        if self.detail is not None:
            return self.detail.message
        return self.reason


@dataclass
class _Loop:
    """State of one request's retry loop."""

    call: Call
    req: Request
    attempt: int = 0
    refreshed_auth: bool = False


class HttpTransport:
    """Session owner and retry engine for one platform."""

    def __init__(
        self,
        platform: str,
        http: HttpSettings,
        retry: RetryPolicy,
        timeout: TimeoutConfig,
        *,
        auth: AuthProvider,
        parse_error: ErrorParser,
        redactor: Redactor,
        on_attempt: AttemptHook | None = None,
    ) -> None:
        self.platform = platform
        self.base_url = URL(http.base_url.rstrip("/")).with_user(None)
        self.redact = redactor
        self._http = http
        self._policy = retry
        self._timeout = timeout
        self._auth = auth
        self._parse_error = parse_error
        self._on_attempt = on_attempt
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        proxy_password = URL(http.proxy).password if http.proxy else None
        if proxy_password:
            redactor.add(proxy_password)
        # aiohttp rounds timeouts above ceil_threshold up to whole seconds, which would let an
        # attempt outlive the caller's deadline; the budget itself is enforced by asyncio.timeout.
        self._client_timeout = aiohttp.ClientTimeout(
            total=None,
            connect=timeout.connect,
            sock_read=timeout.read,
            ceil_threshold=float("inf"),
        )

    def start(self, operation: str, deadline: float | None) -> Call:
        return Call(operation, Budget.start(self._timeout.total, deadline))

    async def close(self) -> None:
        self._closed = True
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def open_connections(self) -> int:
        """Connections this client holds open to its platform: in use plus idle in the pool. aiohttp's
        connector has no public count, so its pool is read; 0 if that ever changes shape."""
        session = self._session
        if session is None or session.closed:
            return 0
        connector = session.connector
        try:
            in_use = len(connector._acquired)  # type: ignore[union-attr]
            idle = sum(len(pool) for pool in connector._conns.values())  # type: ignore[union-attr]
        except (AttributeError, TypeError):
            return 0
        return in_use + idle

    def url_for(self, path: str) -> str:
        return display_url(str(self.base_url) + path)

    async def send(self, call: Call, req: Request) -> Response:
        """Send under the retry policy. A non-idempotent request that fails ambiguously (it may have
        been applied) is never sent again here: the PlatformError says ambiguous=True, and the
        caller decides, after looking for its effect, whether to send it again."""
        loop = _Loop(call, req)
        while True:
            loop.attempt += 1
            started = time.monotonic()
            response, failure = await self._attempt(loop)
            duration = time.monotonic() - started
            if failure is None:
                assert response is not None
                self._emit(loop, response.status, duration, "ok", None)
                return response
            if failure.auth_rejected and not loop.refreshed_auth:
                # A revoked or expired OAuth token: one immediate retry with a fresh one.
                loop.refreshed_auth = True
                if self._auth.invalidate(failure.auth_rejected):
                    self._emit(loop, failure.status, duration, "retry", failure.reason)
                    continue
            stop = self._why_stop(loop, failure)
            wait = (
                None if stop else plan_wait(loop.attempt, self._policy, failure.hint, call.budget.remaining())
            )
            if stop or wait is None:
                self._emit(loop, failure.status, duration, "error", failure.reason)
                raise self._final_error(loop, failure, exhausted=not stop)
            self._emit(loop, failure.status, duration, "retry", failure.reason)
            log.info(
                "%s %s %s: %s on attempt %d, retrying in %.2fs",
                self.platform,
                req.operation,
                req.method,
                failure.reason,
                loop.attempt,
                wait,
            )
            await asyncio.sleep(wait)
            call.waited += wait

    def _why_stop(self, loop: _Loop, failure: _Failure) -> str | None:
        if not failure.retryable:
            return failure.reason
        if failure.ambiguous and not loop.req.idempotent:
            return "ambiguous"
        return None

    def _final_error(self, loop: _Loop, failure: _Failure, *, exhausted: bool) -> PlatformError:
        call, req = loop.call, loop.req
        kind = failure.kind
        message = failure.message()
        if failure.budget_spent:
            kind = self._out_of_time_kind(call)
            message = f"time budget ran out during attempt {loop.attempt}"
        elif exhausted:
            out_of_attempts = loop.attempt >= self._policy.max_attempts
            kind = ErrorKind.UNAVAILABLE if out_of_attempts else self._out_of_time_kind(call)
            why = "attempts" if out_of_attempts else "time budget"
            message = f"gave up ({why} exhausted) after {failure.reason}: {message}"
        detail = failure.detail
        return PlatformError(
            platform=self.platform,
            operation=call.operation,
            kind=kind,
            status=failure.status,
            message=self.redact(message),
            field_errors={k: self.redact(v) for k, v in (detail.field_errors if detail else {}).items()},
            attempts=call.attempts,
            ambiguous=failure.ambiguous and not req.idempotent,
            url=self.url_for(req.path),
        )

    @staticmethod
    def _out_of_time_kind(call: Call) -> ErrorKind:
        return ErrorKind.DEADLINE if call.budget.caller_bound else ErrorKind.UNAVAILABLE

    # -- one attempt ----------------------------------------------------------------------------

    async def _attempt(self, loop: _Loop) -> tuple[Response | None, _Failure | None]:
        call, req = loop.call, loop.req
        headers = {"Accept": "application/json"}
        if req.authenticated:
            headers["Authorization"] = await self._auth.authorization(call, self.send)
        remaining = call.budget.remaining()
        if remaining <= 0:
            return None, _Failure("budget", retryable=False, ambiguous=False, budget_spent=True)
        session = self._get_session()
        call.attempts += 1
        sent_body = req.method not in ("GET", "HEAD")
        status: int | None = None
        try:
            async with asyncio.timeout(remaining):
                async with session.request(
                    req.method,
                    str(self.base_url) + req.path,
                    params=req.params,
                    json=req.json,
                    data=dict(req.form) if req.form is not None else None,
                    headers=headers,
                    timeout=self._client_timeout,
                    allow_redirects=False,  # a redirected POST silently turns into a GET
                ) as resp:
                    status, resp_headers = resp.status, resp.headers
                    body = await _read_bounded(resp)
        except aiohttp.ClientSSLError as exc:  # at connect: certificate or handshake, not transient
            return None, self._transport_failure(loop, "tls", exc, retryable=False, sent=False)
        except aiohttp.ConnectionTimeoutError as exc:
            return None, self._transport_failure(loop, "connect_timeout", exc, sent=False)
        except aiohttp.ClientConnectorError as exc:
            return None, self._transport_failure(loop, "connect", exc, sent=False)
        except TimeoutError as exc:
            if call.budget.remaining() <= 0:
                call.last_status = None
                return None, _Failure("budget", retryable=False, ambiguous=sent_body, budget_spent=True)
            return None, self._transport_failure(loop, "timeout", exc, sent=sent_body)
        except _ResponseTooLarge:
            call.last_status = status
            return None, _Failure(
                "response_too_large",
                retryable=False,
                ambiguous=sent_body,
                kind=ErrorKind.BAD_RESPONSE,
                status=status,
            )
        except (aiohttp.ClientError, OSError) as exc:
            return None, self._transport_failure(loop, "connection", exc, sent=sent_body)
        call.last_status = status
        return self._classify(loop, status, resp_headers, body, headers.get("Authorization"))

    def _transport_failure(
        self, loop: _Loop, reason: str, exc: BaseException, *, sent: bool, retryable: bool = True
    ) -> _Failure:
        loop.call.last_status = None
        # Only the exception's type and redacted text travel on; the object itself (which can
        # hold request headers) is dropped here.
        text = self.redact(f"{type(exc).__name__}: {exc}".strip().rstrip(":"))
        return _Failure(
            reason,
            retryable=retryable,
            ambiguous=sent and not loop.req.idempotent,
            detail=ErrorDetail(f"{reason}: {text}", ErrorKind.UNAVAILABLE),
        )

    def _classify(
        self,
        loop: _Loop,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        authorization: str | None,
    ) -> tuple[Response | None, _Failure | None]:
        text = body.decode("utf-8", errors="replace")
        data = _json_or_none(text)
        if 200 <= status < 300:
            if text.strip() and data is None:
                return None, _Failure(
                    "not_json",
                    retryable=False,
                    ambiguous=not loop.req.idempotent,
                    kind=ErrorKind.BAD_RESPONSE,
                    status=status,
                    # The body is not echoed: a token endpoint's or a proxy's page may carry secrets.
                    detail=ErrorDetail(
                        f"HTTP {status} answer is not JSON ({len(body)} bytes)", ErrorKind.BAD_RESPONSE
                    ),
                )
            return Response(status, headers, data), None
        detail = self._parse_error(status, data, text)
        detail = ErrorDetail(
            self.redact(detail.message), detail.kind, detail.field_errors, detail.from_platform
        )
        reason = f"http_{status}"
        if status in self._policy.retryable_statuses:
            applied_maybe = status in _AMBIGUOUS_STATUSES or not (
                status in _REFUSED_STATUSES and detail.from_platform
            )
            return None, _Failure(
                reason,
                retryable=True,
                ambiguous=applied_maybe and not loop.req.idempotent,
                kind=ErrorKind.UNAVAILABLE,
                status=status,
                detail=detail,
                hint=server_hint(headers, time.time()),
            )
        if 300 <= status < 400:
            detail = ErrorDetail(
                f"unexpected redirect to {display_url(headers.get('Location', '?'))}",
                ErrorKind.BAD_RESPONSE,
            )
        return None, _Failure(
            reason,
            retryable=False,
            # A 5xx to a POST (e.g. ServiceNow's 500 when a business rule throws after the insert)
            # may have created the record: look the marker up rather than call it failed.
            ambiguous=status >= 500 and not loop.req.idempotent,
            kind=detail.kind,
            status=status,
            detail=detail,
            auth_rejected=authorization if status == 401 else None,
        )

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError(f"{self.platform} client is closed")
        if self._session is None:
            # Created on first use so the client can be built outside a running event loop.
            connector = aiohttp.TCPConnector(limit=self._http.max_connections, ssl=self._ssl())
            self._session = aiohttp.ClientSession(
                connector=connector,
                proxy=self._http.proxy,
                trust_env=False,  # settings are the only source of proxies and CAs
            )
        return self._session

    def _ssl(self) -> ssl.SSLContext | bool:
        if not self._http.verify_tls:
            return False
        if self._http.ca_bundle:
            return ssl.create_default_context(cafile=self._http.ca_bundle)
        return True

    def _emit(
        self, loop: _Loop, status: int | None, duration: float, outcome: Outcome, reason: str | None
    ) -> None:
        if self._on_attempt is None:
            return
        event = AttemptEvent(
            self.platform,
            loop.req.operation,
            loop.req.method,
            loop.attempt,
            status,
            duration,
            outcome,
            reason,
        )
        try:
            self._on_attempt(event)
        except Exception:  # an observer must never break the call it observes
            log.exception("on_attempt hook failed")


class _ResponseTooLarge(Exception):
    pass


async def _read_bounded(resp: aiohttp.ClientResponse) -> bytes:
    declared = resp.content_length
    if declared is not None and declared > MAX_RESPONSE_BYTES:
        raise _ResponseTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise _ResponseTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _json_or_none(text: str) -> Any:
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None
