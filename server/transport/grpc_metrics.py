"""gRPC server metrics for grpc.aio, under py-grpc-prometheus's names, labels and definitions.

py-grpc-prometheus 0.8.0 ships only a synchronous grpc.ServerInterceptor, which grpc.aio.server
refuses; GrpcMetricsInterceptor is the aio interceptor it lacks. The metric families are created by
py-grpc-prometheus's own definitions (server_metrics.init_metrics and
get_grpc_server_handled_counter(is_legacy=False)), so dashboards built for it keep working:

    grpc_server_started_total{grpc_type, grpc_service, grpc_method}
    grpc_server_handled_total{grpc_type, grpc_service, grpc_method, grpc_code}
    grpc_server_handling_seconds{grpc_type, grpc_service, grpc_method}   (histogram)
    grpc_server_msg_received_total{...}, grpc_server_msg_sent_total{...}
    grpc_type: UNARY, SERVER_STREAMING, CLIENT_STREAMING, BIDI_STREAMING

Where it deliberately differs from the sync interceptor:
- started is counted for every call (py-grpc-prometheus skips client-streaming calls);
- handling_seconds is observed for every call, streams included (whole-stream duration);
- handled gets CANCELLED when the client went away, DEADLINE_EXCEEDED when its deadline passed,
  the code the handler set or aborted with, UNKNOWN for an exception escaping the handler, else OK;
- msg_received / msg_sent count stream messages only, as the families' help text says.

Everything is measured, health and reflection included (both bounded, both useful); `exclude`
passes whole services through untouched. Sync (thread-pool) handlers pass through unmeasured.

Order: put this interceptor FIRST (outermost), before authentication, so refused calls
(UNAUTHENTICATED, PERMISSION_DENIED) are counted with their code.

Known gap: calls refused by grpc.aio's own maximum_concurrent_rpcs do pass through
intercept_service (grpc resolves the handler before it checks the limit) but their handler never
runs; grpc answers RESOURCE_EXHAUSTED itself, and those calls appear in neither started nor handled.
Calls to unknown methods (UNIMPLEMENTED) are not counted either, so label values stay bounded by the
server's registered methods.

The call-shape machinery (observe, CallProbe) is shared with server/rpc_log.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Protocol

import grpc
from grpc import aio
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from py_grpc_prometheus import grpc_utils, server_metrics

Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]

# ------------------------------------------------------------------------------ call shapes


class CallProbe(Protocol):
    """Observes one call; every method must be cheap and must never raise."""

    def received(self) -> None: ...

    def sent(self) -> None: ...

    def finish(self, code: grpc.StatusCode, seconds: float) -> None: ...


# (request message, or None for a request stream; context) -> the probe for this call.
Begin = Callable[[Any, aio.ServicerContext], CallProbe]


def code_on_return(context: aio.ServicerContext) -> grpc.StatusCode:
    code = context.code()
    return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.OK


def code_on_cancel(context: aio.ServicerContext) -> grpc.StatusCode:
    # grpc.aio cancels the handler's task both when the client cancels and when its deadline
    # passes; only the deadline tells them apart.
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.CANCELLED


def code_on_error(exc: BaseException, context: aio.ServicerContext) -> grpc.StatusCode:
    if isinstance(exc, asyncio.CancelledError):
        return code_on_cancel(context)
    # context.abort() sets the code on the context before raising AbortError; a handler may also
    # set_code() and then raise, which grpc.aio sends as that code. Otherwise grpc sends UNKNOWN.
    code = context.code()
    if isinstance(code, grpc.StatusCode) and code is not grpc.StatusCode.OK:
        return code
    return grpc.StatusCode.UNKNOWN


def code_on_abandon(context: aio.ServicerContext) -> grpc.StatusCode:
    """A response generator closed before its end: grpc stopped reading it (cancel, abort)."""
    code = context.code()
    return code if isinstance(code, grpc.StatusCode) else code_on_cancel(context)


class _CountingContext:
    """The real context, counting the messages a reader/writer-style handler moves itself."""

    __slots__ = ("_context", "_probe")

    def __init__(self, context: aio.ServicerContext, probe: CallProbe) -> None:
        self._context = context
        self._probe = probe

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    async def read(self) -> Any:
        message = await self._context.read()
        if message is not aio.EOF:
            self._probe.received()
        return message

    async def write(self, message: Any) -> None:
        await self._context.write(message)
        self._probe.sent()


async def _counted(requests: AsyncIterator[Any], probe: CallProbe) -> AsyncIterator[Any]:
    async for request in requests:
        probe.received()
        yield request


def observe(handler: grpc.RpcMethodHandler, begin: Begin) -> grpc.RpcMethodHandler:
    """`handler` of the same call shape, reporting to the probe `begin` returns for each call.

    Handlers grpc would run in its thread pool (plain functions) come back untouched: wrapping
    them in a coroutine would move them onto the event loop.
    """
    des, ser = handler.request_deserializer, handler.response_serializer
    if not handler.response_streaming:
        behavior = handler.stream_unary if handler.request_streaming else handler.unary_unary
        if not inspect.iscoroutinefunction(behavior):
            return handler
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(_stream_unary(behavior, begin), des, ser)
        return grpc.unary_unary_rpc_method_handler(_unary_unary(behavior, begin), des, ser)
    behavior = handler.stream_stream if handler.request_streaming else handler.unary_stream
    # grpc.aio tells the two async styles apart the same way, coroutine first.
    if inspect.iscoroutinefunction(behavior):
        wrapped: Callable[..., Any] = _stream_writer(behavior, begin, handler.request_streaming)
    elif inspect.isasyncgenfunction(behavior):
        wrapped = _stream_generator(behavior, begin, handler.request_streaming)
    else:
        return handler
    if handler.request_streaming:
        return grpc.stream_stream_rpc_method_handler(wrapped, des, ser)
    return grpc.unary_stream_rpc_method_handler(wrapped, des, ser)


def _unary_unary(behavior: Callable[..., Any], begin: Begin) -> Callable[..., Any]:
    async def unary_unary(request: Any, context: aio.ServicerContext) -> Any:
        probe = begin(request, context)
        start = perf_counter()
        try:
            response = await behavior(request, context)
        except BaseException as exc:
            probe.finish(code_on_error(exc, context), perf_counter() - start)
            raise
        probe.finish(code_on_return(context), perf_counter() - start)
        return response

    return unary_unary


def _stream_unary(behavior: Callable[..., Any], begin: Begin) -> Callable[..., Any]:
    async def stream_unary(requests: AsyncIterator[Any], context: aio.ServicerContext) -> Any:
        probe = begin(None, context)
        start = perf_counter()
        try:
            response = await behavior(_counted(requests, probe), _CountingContext(context, probe))
        except BaseException as exc:
            probe.finish(code_on_error(exc, context), perf_counter() - start)
            raise
        probe.finish(code_on_return(context), perf_counter() - start)
        return response

    return stream_unary


def _stream_writer(
    behavior: Callable[..., Any], begin: Begin, request_streaming: bool
) -> Callable[..., Any]:
    """Reader/writer style: the handler awaits context.write() (grpc-health's aio Watch does)."""

    async def stream_writer(request: Any, context: aio.ServicerContext) -> None:
        probe = begin(None if request_streaming else request, context)
        start = perf_counter()
        argument = _counted(request, probe) if request_streaming else request
        try:
            await behavior(argument, _CountingContext(context, probe))
        except BaseException as exc:
            probe.finish(code_on_error(exc, context), perf_counter() - start)
            raise
        probe.finish(code_on_return(context), perf_counter() - start)

    return stream_writer


def _stream_generator(
    behavior: Callable[..., Any], begin: Begin, request_streaming: bool
) -> Callable[..., Any]:
    """Async generator style: grpc pulls our generator, which pulls the handler's."""

    async def stream_generator(request: Any, context: aio.ServicerContext) -> AsyncIterator[Any]:
        probe = begin(None if request_streaming else request, context)
        start = perf_counter()
        argument = _counted(request, probe) if request_streaming else request
        code = grpc.StatusCode.UNKNOWN
        try:
            # aclosing: when grpc drops our generator (cancel), the handler's is closed too.
            async with contextlib.aclosing(behavior(argument, context)) as responses:
                async for response in responses:
                    yield response
                    probe.sent()  # grpc came back for more: the previous write went out
            code = code_on_return(context)
        except GeneratorExit:
            code = code_on_abandon(context)
            raise
        except BaseException as exc:
            code = code_on_error(exc, context)
            raise
        finally:
            probe.finish(code, perf_counter() - start)

    return stream_generator


# ------------------------------------------------------------------------------ metric families


@dataclass(frozen=True)
class GrpcServerFamilies:
    started: Counter
    handled: Counter
    handling_seconds: Histogram
    msg_received: Counter
    msg_sent: Counter


# prometheus_client refuses a second registration of a name on one registry, and a process may build
# several servers (tests, drills): families are made once per registry and shared.
_FAMILIES: weakref.WeakKeyDictionary[CollectorRegistry, GrpcServerFamilies] = weakref.WeakKeyDictionary()
_FAMILIES_LOCK = threading.Lock()


def grpc_server_families(registry: CollectorRegistry = REGISTRY) -> GrpcServerFamilies:
    with _FAMILIES_LOCK:
        families = _FAMILIES.get(registry)
        if families is None:
            defined = server_metrics.init_metrics(registry)
            families = GrpcServerFamilies(
                started=defined["grpc_server_started_counter"],
                handled=server_metrics.get_grpc_server_handled_counter(False, registry),
                handling_seconds=defined["grpc_server_handled_histogram"],
                msg_received=defined["grpc_server_stream_msg_received"],
                msg_sent=defined["grpc_server_stream_msg_sent"],
            )
            _FAMILIES[registry] = families
        return families


class _MethodSeries:
    """One method's label children, resolved once: the per-call path does no label lookup.

    Stateless across calls, so it is its own CallProbe and a call allocates nothing for it.
    """

    __slots__ = ("_handled", "_handled_family", "_labels", "_received", "_seconds", "_sent", "_started")

    def __init__(self, families: GrpcServerFamilies, labels: tuple[str, str, str]) -> None:
        self._labels = labels
        self._started = families.started.labels(*labels)
        self._received = families.msg_received.labels(*labels)
        self._sent = families.msg_sent.labels(*labels)
        self._seconds = families.handling_seconds.labels(*labels)
        self._handled_family = families.handled
        self._handled: dict[grpc.StatusCode, Any] = {}

    def begin(self, request: Any, context: aio.ServicerContext) -> CallProbe:
        self._started.inc()
        return self

    def received(self) -> None:
        self._received.inc()

    def sent(self) -> None:
        self._sent.inc()

    def finish(self, code: grpc.StatusCode, seconds: float) -> None:
        child = self._handled.get(code)
        if child is None:  # created on first use: only codes that happened get a series
            child = self._handled[code] = self._handled_family.labels(*self._labels, code.name)
        child.inc()
        self._seconds.observe(max(seconds, 0.0))


class GrpcMetricsInterceptor(aio.ServerInterceptor):
    """Records py-grpc-prometheus's server metrics for every call shape. Put it first."""

    def __init__(
        self, registry: CollectorRegistry = REGISTRY, exclude: Collection[str] = ()
    ) -> None:
        self._families = grpc_server_families(registry)
        self._exclude = frozenset(exclude)
        # method -> its series, or None for an excluded service. Only methods the server resolved
        # get here, so the map is bounded by the registered methods.
        self._series: dict[str, _MethodSeries | None] = {}
        # method -> (the handler it was given, its observed wrapper): wrapped once per method, not
        # per call, while the handler below stays the same object (the error interceptor caches its
        # own; a refusal is a new handler each time and is wrapped afresh).
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        try:
            series = self._series[method]
        except KeyError:
            series = self._series[method] = self._new_series(handler_call_details, handler)
        if series is None:
            return handler
        wrapped = observe(handler, series.begin)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _new_series(
        self, details: grpc.HandlerCallDetails, handler: grpc.RpcMethodHandler
    ) -> _MethodSeries | None:
        service, method, _ = grpc_utils.split_method_call(details)
        if service in self._exclude:
            return None
        grpc_type = grpc_utils.get_method_type(handler.request_streaming, handler.response_streaming)
        return _MethodSeries(self._families, (grpc_type, service, method))
