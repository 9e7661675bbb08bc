"""The web port: TicketService and TemplateService over Connect (JSON and binary) and gRPC-web, plus
/healthz, /readyz and the page for people (web_page.py), on one HTTP/1.1 listener in the gateway's
event loop.

    POST /itsm.v1.TicketService/CreateTicket   Content-Type: application/json | application/proto
                                                             application/grpc-web[+proto] | ...-text
    GET  /healthz   200 while the process runs (liveness)
    GET  /readyz    200 while serving, 503 during the drain; JSON with each service's status
    POST /alertmanager/<receiver>   Alertmanager's webhook (alertmanager.py)
    GET  /          the page (and /assets/...): web_page.WebPage

Every call goes through web_calls.WebCalls: the gRPC server's own interceptors and handlers. This
module is the HTTP side only: content types, the body size limit (max_message_bytes, answered
RESOURCE_EXHAUSTED), the concurrency cap (max_concurrent_rpcs, RESOURCE_EXHAUSTED, like grpc's own
cap: refused before any interceptor, so neither counted nor logged), headers to metadata, TLS and
the graceful stop.

Hand-written on aiohttp's low-level server rather than the connectrpc library under uvicorn: no new
dependency or second code generator, the grpc.aio interceptor chain is reused as is, and it is faster
per call (measured: see the commit that added it, and scripts/bench_grpc.py).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import ssl
from collections.abc import Callable
from typing import Final

import grpc
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from server.domain.rules import Limits
from server.transport import alertmanager, connect_protocol, grpc_web
from server.transport.alertmanager import AlertmanagerEndpoint
from server.transport.http_request import BodyTooLarge, peer_of, read_body
from server.transport.web_calls import Outcome, WebCalls
from server.transport.web_context import Metadata
from server.transport.web_page import WebPage, not_found


class _MalformedHttp(logging.Filter):
    """aiohttp logs a request it cannot parse (a header line past its 8190-byte limit, a bad method)
    as "Error handling request" at ERROR with a traceback, though it answers 400: the caller's
    mistake, which a hostile caller could repeat to flood the log with tracebacks. Such a record
    becomes one WARNING line without the traceback; every other error (an exception escaping a
    handler: 500) stays as it is."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError) and 400 <= error.code < 500:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg, record.args = "malformed HTTP request from %s: %s", (
                record.args[0] if isinstance(record.args, tuple) and record.args else "?",
                " ".join(str(error.message or type(error).__name__).split())[:200],
            )
            record.exc_info, record.exc_text = None, None
        return True


_HTTP_LOG: Final = logging.getLogger("itsm.web.http")
_HTTP_LOG.addFilter(_MalformedHttp())

# (serving, status of each health service name): read from the gRPC server's health state.
Readiness = Callable[[], tuple[bool, dict[str, str]]]

# Headers that describe the HTTP exchange, not the call: kept out of the call's metadata, as
# grpc keeps its own protocol headers out.
_NOT_METADATA: Final = frozenset(
    {
        "host", "content-type", "content-length", "connection", "keep-alive", "transfer-encoding", "te",
        "upgrade", "expect", "accept", "accept-encoding", "content-encoding", "x-grpc-web", "x-user-agent",
    }
)  # fmt: skip
_RESERVED_PREFIXES: Final = ("connect-", "grpc-", ":")
_ACCEPTED: Final = ", ".join(sorted(connect_protocol.CONTENT_TYPES | grpc_web.CONTENT_TYPES))
_JSON: Final = "application/json"


class WebServer:
    def __init__(
        self,
        calls: WebCalls,
        limits: Limits,
        readiness: Readiness,
        alerts: AlertmanagerEndpoint | None = None,
        page: WebPage | None = None,
    ) -> None:
        self._calls = calls
        self._alerts = alerts
        self._page = page
        self._max_bytes = limits.max_message_bytes
        self._max_in_flight = limits.max_concurrent_rpcs
        self._grace = limits.shutdown_grace_seconds
        self._readiness = readiness
        self._in_flight = 0
        self._runner: web.ServerRunner | None = None

    async def start(
        self, host: str | None, port: int, tls: tuple[str, str] | None, *, reuse_port: bool = False
    ) -> int:
        """Binds (host None: every interface) and serves; returns the port. Raises OSError."""
        context = _tls_context(*tls) if tls else None
        # handler_cancellation stays off: a caller hanging up does not cut a create in half (the
        # exactly-once engine would settle it, but there is no reason to make it).
        server = web.Server(self._handle, access_log=None, logger=_HTTP_LOG)
        # cleanup() waits this long for calls in flight once the listener is closed.
        runner = web.ServerRunner(server, shutdown_timeout=self._grace)
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=context, reuse_port=reuse_port or None)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            where = f"{host or '[::]'}:{port}"
            raise OSError(f"cannot bind the web port on {where}: {exc.strerror or exc}") from None
        self._runner = runner
        return site.port

    async def stop(self) -> None:
        """Stops accepting, lets calls in flight finish within limits.shutdown_grace_seconds (as the
        gRPC server does), then closes."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if self._alerts is not None and alertmanager.serves(request.path):
            response = await self._alert(request, self._alerts)
        elif request.method == "POST":
            response = await self._rpc(request)
        elif request.method in ("GET", "HEAD") and request.path in ("/healthz", "/readyz"):
            response = self._health(request.path == "/readyz")
        elif request.method in ("GET", "HEAD"):
            response = self._page.answer(request) if self._page is not None else not_found()
        else:
            response = web.Response(status=405, text="not found\n")
        serving, _ = self._readiness()
        if not serving:
            response.force_close()  # draining: callers reconnect, and find a replica that serves
        return response

    def _health(self, readiness: bool) -> web.Response:
        if not readiness:
            return _json_response(200, {"status": "SERVING"})
        serving, services = self._readiness()
        body = {"status": "SERVING" if serving else "NOT_SERVING", "services": services}
        return _json_response(200 if serving else 503, body)

    async def _alert(self, request: web.BaseRequest, alerts: AlertmanagerEndpoint) -> web.Response:
        # Notifications share the web port's cap on calls in flight; one refused is a 503, which
        # Alertmanager retries.
        if self._in_flight >= self._max_in_flight:
            return alerts.over_capacity(request, self._max_in_flight)
        self._in_flight += 1
        try:
            return await alerts.handle(request)
        finally:
            self._in_flight -= 1

    async def _rpc(self, request: web.BaseRequest) -> web.Response:
        content_type = request.content_type
        if content_type in connect_protocol.CONTENT_TYPES:
            return await self._connect(request, content_type)
        if content_type in grpc_web.CONTENT_TYPES:
            return await self._grpc_web(request, content_type)
        return web.Response(
            status=415,
            text=f"unsupported content type {content_type[:100]!r}; use one of {_ACCEPTED}\n",
            headers={"Accept-Post": _ACCEPTED},
        )

    # ------------------------------------------------------------------------------ Connect

    async def _connect(self, request: web.BaseRequest, content_type: str) -> web.Response:
        path = request.path
        method = self._calls.registry.get(path)
        try:
            timeout = connect_protocol.timeout_seconds(request.headers.get("Connect-Timeout-Ms"))
        except connect_protocol.ProtocolError as exc:
            return _connect_error(Outcome(grpc.StatusCode.INVALID_ARGUMENT, str(exc)))
        if self._in_flight >= self._max_in_flight:
            return _connect_error(self._over_cap())
        self._in_flight += 1
        try:
            if method is None:
                outcome = await self._calls.call(path, None, _metadata(request), timeout, peer_of(request))
                # An unknown procedure is HTTP 404, as a Connect router answers it.
                return _connect_error(outcome, status=404)
            try:
                body = await self._read(request)
            except BodyTooLarge:
                return _connect_error(self._too_large())
            message = (
                connect_protocol.parse_json(body, method.request_class) if content_type == _JSON else body
            )
            outcome = await self._calls.call(path, message, _metadata(request), timeout, peer_of(request))
        finally:
            self._in_flight -= 1
        if outcome.code is not grpc.StatusCode.OK or outcome.response is None:
            return _connect_error(outcome)
        if content_type == _JSON:
            payload = connect_protocol.to_json(outcome.response)
        else:
            payload = outcome.response.SerializeToString()
        return web.Response(body=payload, headers={"Content-Type": content_type})

    # ------------------------------------------------------------------------------ gRPC-web

    async def _grpc_web(self, request: web.BaseRequest, content_type: str) -> web.Response:
        text = content_type in grpc_web.TEXT
        path = request.path
        if self._in_flight >= self._max_in_flight:
            return _grpc_web_answer(self._over_cap(), content_type, text)
        self._in_flight += 1
        try:
            timeout = grpc_web.timeout_seconds(request.headers.get("grpc-timeout"))
            if self._calls.registry.get(path) is None:
                message: bytes | None = None
            else:
                # base64 carries 4 bytes for each 3: the limit applies to the message, not its text.
                limit = self._max_bytes * 4 // 3 + 16 if text else self._max_bytes + 5
                message = grpc_web.unframe(grpc_web.decode_body(await self._read(request, limit), text))
            outcome = await self._calls.call(path, message, _metadata(request), timeout, peer_of(request))
        except grpc_web.FrameError as exc:
            outcome = Outcome(exc.code, str(exc))
        except BodyTooLarge:
            outcome = self._too_large()
        finally:
            self._in_flight -= 1
        return _grpc_web_answer(outcome, content_type, text)

    # ------------------------------------------------------------------------------ shared

    async def _read(self, request: web.BaseRequest, limit: int | None = None) -> bytes:
        return await read_body(request, self._max_bytes if limit is None else limit)

    def _over_cap(self) -> Outcome:
        return Outcome(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"too many calls in flight on the web port (limits.max_concurrent_rpcs {self._max_in_flight})",
        )

    def _too_large(self) -> Outcome:
        return Outcome(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"the request is larger than limits.max_message_bytes ({self._max_bytes} bytes)",
        )


def _connect_error(outcome: Outcome, status: int | None = None) -> web.Response:
    code = outcome.code if outcome.code is not grpc.StatusCode.OK else grpc.StatusCode.INTERNAL
    return web.Response(
        status=status or connect_protocol.http_status(code),
        body=connect_protocol.error_body(code, outcome.message, outcome.trailers),
        headers={"Content-Type": _JSON, **connect_protocol.trailer_headers(outcome.trailers)},
    )


def _grpc_web_answer(outcome: Outcome, content_type: str, text: bool) -> web.Response:
    payload = outcome.response.SerializeToString() if outcome.response is not None else None
    body = grpc_web.response_body(outcome.code, outcome.message, outcome.trailers, payload)
    return web.Response(body=grpc_web.encode_body(body, text), headers={"Content-Type": content_type})


def _json_response(status: int, body: object) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode(), headers={"Content-Type": _JSON})


def _metadata(request: web.BaseRequest) -> Metadata:
    """The call's metadata as grpc would hand it over: lower-case keys, -bin values decoded."""
    found: list[tuple[str, str | bytes]] = []
    for name, value in request.headers.items():
        key = name.lower()
        if key in _NOT_METADATA or key.startswith(_RESERVED_PREFIXES):
            continue
        if key.endswith("-bin"):
            try:
                found.append((key, base64.b64decode(value + "=" * (-len(value) % 4))))
            except (binascii.Error, ValueError):
                continue  # an undecodable binary header is no metadata at all
        else:
            found.append((key, value))
    return tuple(found)


def _tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["http/1.1"])
    return context
