"""POST /alertmanager/<receiver>: Alertmanager's webhook, on the web port.

HTTP in, the alerts use case (server/service/alerts.py) out, answers mapped in one place
(alert_answers.py). In order: the method (405), the bearer token when auth is on (401, and 403
without the write scope: the same tokens and scope as a gRPC create), the receiver (404), the content
type (415), the body size (limits.max_message_bytes, 413), JSON (400), the notification (422). Every
answer is counted (alert_metrics.py) and logged: one line, like an RPC's, on the itsm.rpc logger.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import time
from typing import Any, Final

from aiohttp import web

from server.domain.alert_payload import parse_notification
from server.domain.validation import shown
from server.observability import logcontext
from server.observability.alert_metrics import AlertmanagerMetrics
from server.service.alerts import AlertNotifications
from server.service.settings import AlertReceiver
from server.transport import alert_answers
from server.transport.alert_answers import Answer, refused
from server.transport.auth import ANONYMOUS, TokenRegistry, bearer_token
from server.transport.http_request import BodyTooLarge, peer_of, read_body

PREFIX: Final = "/alertmanager/"
_JSON: Final = "application/json"
_SHOWN: Final = 128
# Past the notification's own deadline (which bounds every platform call), the longest a store write
# may still take before the answer is given up as a 503.
_GRACE_SECONDS: Final = 2.0

log = logging.getLogger("itsm.rpc")


class _Refused(Exception):
    """A notification refused before the use case runs; carries its answer."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.code)
        self.answer = answer


def serves(path: str) -> bool:
    return path.startswith(PREFIX) or path == PREFIX.rstrip("/")


class AlertmanagerEndpoint:
    def __init__(
        self,
        alerts: AlertNotifications,
        tokens: TokenRegistry | None,
        metrics: AlertmanagerMetrics,
        max_body_bytes: int,
    ) -> None:
        self._alerts = alerts
        self._tokens = tokens
        self._metrics = metrics
        self._max_bytes = max_body_bytes
        self.in_flight = 0  # notifications being handled (the itsm_background_tasks gauge)

    async def handle(self, request: web.BaseRequest) -> web.Response:
        started = time.perf_counter()
        fields: dict[str, Any] = {"peer": peer_of(request)}
        # A fresh context per notification: the log fields bound for one must not leak into the next
        # on a keep-alive connection.
        task = asyncio.get_running_loop().create_task(
            self._answer(request, fields), context=contextvars.Context()
        )
        self.in_flight += 1
        try:
            answer = await task
        except Exception as exc:  # still counted and logged: a 500 with its reference
            answer = alert_answers.from_error(exc)
        finally:
            self.in_flight -= 1
        return self._finish(request, fields, answer, started)

    def over_capacity(self, request: web.BaseRequest, cap: int) -> web.Response:
        """Refused before any work: the web port already has `cap` calls in flight."""
        message = f"too many calls in flight on the web port (limits.max_concurrent_rpcs {cap}); retry"
        answer = alert_answers.unavailable(message, code="resource_exhausted")
        return self._finish(request, {"peer": peer_of(request)}, answer, time.perf_counter())

    async def _answer(self, request: web.BaseRequest, fields: dict[str, Any]) -> Answer:
        logcontext.bind(fields)  # the use case adds request_id, ticket_id, platform, outcome
        try:
            caller, receiver = self._admit(request, fields)
            decoded = await self._read_json(request)
        except _Refused as refusal:
            return refusal.answer
        return await self._notify(receiver, decoded, caller, fields)

    def _admit(self, request: web.BaseRequest, fields: dict[str, Any]) -> tuple[str, AlertReceiver]:
        """(caller, receiver), or _Refused: the method, the token, the receiver, the content type."""
        if request.method != "POST":
            raise _Refused(refused(405, "method_not_allowed", "use POST", Allow="POST"))
        caller = self._authenticate(request)
        if caller != ANONYMOUS:
            fields["caller"] = caller
        receiver = self._receiver(request.path)
        if receiver is None:
            name = shown(request.path.removeprefix(PREFIX))
            message = f"no Alertmanager receiver {name!r} is configured (alertmanager.receivers)"
            raise _Refused(refused(404, "not_found", message))
        if request.content_type != _JSON:
            message = f"send Content-Type: {_JSON}"
            raise _Refused(refused(415, "unsupported_media_type", message, **{"Accept-Post": _JSON}))
        return caller, receiver

    async def _read_json(self, request: web.BaseRequest) -> Any:
        try:
            return _decode(await read_body(request, self._max_bytes))
        except BodyTooLarge:
            message = f"the body is larger than limits.max_message_bytes ({self._max_bytes} bytes)"
            raise _Refused(refused(413, "resource_exhausted", message)) from None
        except ValueError as exc:
            raise _Refused(refused(400, "invalid_argument", f"the body is not JSON: {exc}")) from None

    async def _notify(
        self, receiver: AlertReceiver, decoded: Any, caller: str, fields: dict[str, Any]
    ) -> Answer:
        timeout = self._alerts.timeout_seconds
        try:
            notification = parse_notification(decoded)
            fields["status"] = notification.status
            async with asyncio.timeout(timeout + _GRACE_SECONDS):
                outcome = await self._alerts.handle(
                    receiver, notification, caller=caller, deadline=time.monotonic() + timeout
                )
        except Exception as exc:  # the one mapping: alert_answers.from_error
            return alert_answers.from_error(exc)
        return alert_answers.done(outcome)

    def _authenticate(self, request: web.BaseRequest) -> str:
        """The caller's name, or _Refused. The same tokens, and the same write scope, as a create
        over gRPC; Alertmanager sends the token from http_config.authorization."""
        if self._tokens is None:
            return ANONYMOUS
        token = bearer_token(request.headers.get("Authorization"))
        caller = None if token is None else self._tokens.authenticate(token)
        if caller is None:
            message = "missing or invalid bearer token (header 'Authorization: Bearer <token>')"
            raise _Refused(refused(401, "unauthenticated", message, **{"WWW-Authenticate": "Bearer"}))
        if "write" not in caller.scopes:
            message = f"caller {caller.name!r} lacks the 'write' scope"
            raise _Refused(refused(403, "permission_denied", message))
        return caller.name

    def _receiver(self, path: str) -> AlertReceiver | None:
        name = path.removeprefix(PREFIX)
        return self._alerts.receiver(name) if path.startswith(PREFIX) and name else None

    def _finish(
        self, request: web.BaseRequest, fields: dict[str, Any], answer: Answer, started: float
    ) -> web.Response:
        seconds = time.perf_counter() - started
        name = request.path.removeprefix(PREFIX)
        self._metrics.answered(name, fields.get("status", ""), answer.status, answer.outcome, seconds)
        _log(request, fields, answer, self._metrics.receiver_label(name), seconds)
        headers = {"Content-Type": _JSON, **answer.headers}
        if answer.retry_after is not None:
            headers["Retry-After"] = alert_answers.retry_after_header(answer.retry_after)
        return web.Response(status=answer.status, body=json.dumps(answer.body).encode(), headers=headers)


def _decode(body: bytes) -> Any:
    """Strict JSON: UTF-8, and a key given twice is refused (which one would count?). ValueError
    (RecursionError included: a deeply nested body is the caller's) names the problem."""
    try:
        return json.loads(body.decode("utf-8"), object_pairs_hook=_refuse_duplicates)
    except RecursionError:
        raise ValueError("it is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an int of too many digits
        raise ValueError(" ".join(str(exc).split())[:200]) from None


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise ValueError(f"duplicate key {shown(key)!r}")
        found[key] = value
    return found


def _log(
    request: web.BaseRequest, fields: dict[str, Any], answer: Answer, receiver: str, seconds: float
) -> None:
    level = logging.WARNING if answer.status == 500 else logging.INFO  # a bug; 503s are the platforms' doing
    if not log.isEnabledFor(level):
        return
    rpc = f"{request.method} {shown(request.path, _SHOWN)}"
    extra = {
        **fields,
        "rpc": rpc,
        "code": answer.code.upper(),
        "http_status": answer.status,
        "duration_ms": round(seconds * 1000, 3),
        "receiver": receiver,
        "action": answer.outcome,
    }
    try:
        log.log(level, "alertmanager %s %s", rpc, extra["code"], extra=extra)
    except Exception:  # logging must never break the answer it describes
        pass
