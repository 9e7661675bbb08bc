"""One structured log line per RPC: rpc, code, duration_ms, caller, peer, and for our requests their
request_id, job_id, platform and template_name.

Handles every call shape through server.transport.grpc_metrics.observe. Place it right after the metrics
interceptor, before authentication, so refused calls are logged too; the caller is read from
server.transport.auth.current_caller when the handler starts, after authentication has set it.

Health and reflection calls log at DEBUG (probes every few seconds would drown the rest) unless they
end in a server fault. Request values are caller input: read duck-typed, only strings and enum
numbers, cut to MAX_VALUE characters, and redacted with everything else at the handler.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Final

import grpc
from grpc import aio

from server.observability import logcontext
from server.transport.auth import current_caller
from server.transport.grpc_metrics import CallProbe, observe

Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]

MAX_VALUE: Final = 128
REQUEST_FIELDS: Final = ("request_id", "job_id", "platform", "template_name")
QUIET_SERVICES: Final = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)
SERVER_FAULTS: Final = frozenset(
    {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS}
)
_MESSAGE: Final = "rpc %s %s"

# message class -> the REQUEST_FIELDS it has, each with its enum's short names (None: a string
# field). Built on first sight of a class, so a request costs a getattr per field it really has.
_LAYOUTS: dict[type, tuple[tuple[str, dict[int, str] | None], ...] | None] = {}


def _cut(value: str) -> str:
    return value if len(value) <= MAX_VALUE else value[:MAX_VALUE] + "..."


def _layout(message: Any) -> tuple[tuple[str, dict[int, str] | None], ...] | None:
    """None for a class without a protobuf descriptor: read duck-typed, every field."""
    kind = type(message)
    try:
        return _LAYOUTS[kind]
    except KeyError:
        pass
    fields_by_name = getattr(getattr(kind, "DESCRIPTOR", None), "fields_by_name", None)
    layout = None
    if fields_by_name is not None and hasattr(fields_by_name, "get"):  # upb's map is no Mapping
        found = []
        for name in REQUEST_FIELDS:
            field = fields_by_name.get(name)
            if field is None:
                continue
            enum = getattr(field, "enum_type", None)
            prefix = f"{name.upper()}_"  # PLATFORM_JIRA -> jira
            names = {v.number: v.name.removeprefix(prefix).lower() for v in enum.values} if enum else None
            found.append((name, names))
        layout = tuple(found)
    _LAYOUTS[kind] = layout
    return layout


def request_fields(request: Any) -> dict[str, str]:
    """The identifying fields of a request message that has them; never raises."""
    found: dict[str, str] = {}
    if request is None or isinstance(request, bytes | str):
        return found
    layout = _layout(request)
    for field, names in layout if layout is not None else ((f, None) for f in REQUEST_FIELDS):
        try:
            value = getattr(request, field, None)
        except Exception:  # a hostile __getattr__ must not break the call it logs
            continue
        if isinstance(value, str):
            if value:
                found[field] = _cut(value)
        elif isinstance(value, int) and not isinstance(value, bool) and value:
            found[field] = names.get(value, str(value)) if names else str(value)
    return found


class _CallLog:
    """One call's log line, begun when its handler starts."""

    __slots__ = ("_fields", "_method")

    def __init__(self, method: _MethodLog, fields: dict[str, Any]) -> None:
        self._method = method
        self._fields = fields

    def received(self) -> None:
        pass

    def sent(self) -> None:
        pass

    def finish(self, code: grpc.StatusCode, seconds: float) -> None:
        self._method.emit(code, seconds, self._fields)


class _MethodLog:
    __slots__ = ("_level", "_logger", "_method")

    def __init__(self, logger: logging.Logger, method: str, quiet: bool) -> None:
        self._logger = logger
        self._method = method
        self._level = logging.DEBUG if quiet else logging.INFO

    def begin(self, request: Any, context: aio.ServicerContext) -> CallProbe:
        # Peer now, not at the end: by the time a dropped stream is closed grpc may have released
        # the call the peer is read from.
        fields: dict[str, Any] = {"peer": _peer(context)}
        caller = current_caller.get()
        if caller is not None:
            fields["caller"] = caller.name
        if request is not None:
            fields.update(request_fields(request))
        logcontext.bind(fields)  # the pipeline adds ticket_id, platform, outcome, attempts
        return _CallLog(self, fields)

    def emit(self, code: grpc.StatusCode, seconds: float, fields: dict[str, Any]) -> None:
        level = logging.WARNING if code in SERVER_FAULTS else self._level
        logger = self._logger
        if not logger.isEnabledFor(level):
            return
        extra = {"rpc": self._method, "code": code.name, "duration_ms": round(seconds * 1000, 3), **fields}
        try:
            # makeRecord + handle instead of logger.log: skips findCaller's stack walk, which would
            # only ever name this line.
            record = logger.makeRecord(
                logger.name, level, "", 0, _MESSAGE, (self._method, code.name), None, extra=extra
            )
            logger.handle(record)
        except Exception:  # logging must never break the call it describes
            pass


def _peer(context: aio.ServicerContext) -> str:
    try:
        return _cut(context.peer())
    except Exception:
        return ""


class RpcLogInterceptor(aio.ServerInterceptor):
    def __init__(
        self,
        logger: logging.Logger | None = None,
        quiet_services: Collection[str] = QUIET_SERVICES,
    ) -> None:
        self._logger = logger or logging.getLogger("itsm.rpc")
        self._quiet = frozenset(quiet_services)
        # Only methods the server resolved get here: bounded by the registered methods.
        self._methods: dict[str, _MethodLog] = {}
        # method -> (the handler it was given, its logged wrapper): wrapped once per method while
        # the handler below stays the same object.
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None:
            self._unimplemented(method)
            return None
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        try:
            log = self._methods[method]
        except KeyError:
            service = method.lstrip("/").split("/", 1)[0]
            log = self._methods[method] = _MethodLog(self._logger, method, service in self._quiet)
        wrapped = observe(handler, log.begin)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _unimplemented(self, method: str) -> None:
        # grpc answers UNIMPLEMENTED itself and logs nothing; a misspelt method deserves one line.
        _MethodLog(self._logger, _cut(method), quiet=False).emit(
            grpc.StatusCode.UNIMPLEMENTED, 0.0, {}
        )
