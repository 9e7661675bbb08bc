"""Server interceptors: one seam for everything that wraps every call.

Order (outermost first): [metrics, logging] -> auth -> errors -> servicer. The concurrency cap is
grpc.aio's own maximum_concurrent_rpcs: calls it refuses never reach an interceptor.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc import aio

from server.transport.auth import Caller, TokenRegistry, current_caller
from server.transport.status import status_of

Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]

# Services that stay open without a token, so probes and grpcurl discovery always work.
OPEN_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)
# Methods that change something need the write scope; everything else needs read.
WRITE_METHODS = frozenset(
    {
        "/itsm.v1.TicketService/CreateTicket",
        "/itsm.v1.TicketService/CreateTicketFromTemplate",
    }
)


def service_of(method: str) -> str:
    return method.lstrip("/").split("/", 1)[0]


def _metadata_value(details: grpc.HandlerCallDetails, key: str) -> str | None:
    for k, v in details.invocation_metadata or ():
        if k == key:
            return v if isinstance(v, str) else None
    return None


def refusing_handler(
    handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str
) -> grpc.RpcMethodHandler:
    """A handler of the same call shape as `handler` that only aborts."""

    async def abort_unary(request: Any, context: aio.ServicerContext) -> Any:
        await context.abort(code, message)

    async def abort_stream(request: Any, context: aio.ServicerContext) -> Any:
        await context.abort(code, message)
        yield  # pragma: no cover - makes this an async generator

    des, ser = handler.request_deserializer, handler.response_serializer
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(abort_unary, des, ser)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(abort_stream, des, ser)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(abort_unary, des, ser)
    return grpc.stream_stream_rpc_method_handler(abort_stream, des, ser)


class AuthInterceptor(aio.ServerInterceptor):
    """`authorization: Bearer <token>` -> Caller in current_caller; refuses before the servicer runs."""

    def __init__(self, tokens: TokenRegistry) -> None:
        self._tokens = tokens

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or service_of(method) in OPEN_SERVICES:
            return handler
        caller = self._authenticate(handler_call_details)
        if caller is None:
            return refusing_handler(
                handler,
                grpc.StatusCode.UNAUTHENTICATED,
                "missing or invalid bearer token (metadata 'authorization: Bearer <token>')",
            )
        needed = "write" if method in WRITE_METHODS else "read"
        if needed not in caller.scopes:
            return refusing_handler(
                handler,
                grpc.StatusCode.PERMISSION_DENIED,
                f"caller {caller.name!r} lacks the {needed!r} scope for {method}",
            )
        current_caller.set(caller)
        return handler

    def _authenticate(self, details: grpc.HandlerCallDetails) -> Caller | None:
        header = _metadata_value(details, "authorization")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self._tokens.authenticate(token.strip())


class ErrorInterceptor(aio.ServerInterceptor):
    """Maps exceptions of unary-response calls of our services to statuses, in one place."""

    def __init__(self, services: frozenset[str]) -> None:
        self._services = services
        # method -> (handler as registered, its guarded wrapper): built once per method, not per
        # call. Bounded by the methods of our services.
        self._guarded: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not handler.unary_unary or service_of(method) not in self._services:
            return handler
        cached = self._guarded.get(method)
        if cached is None or cached[0] is not handler:
            cached = self._guarded[method] = (handler, _guard(handler))
        return cached[1]


def _guard(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    behavior = handler.unary_unary

    async def guarded(request: Any, context: aio.ServicerContext) -> Any:
        try:
            return await behavior(request, context)
        except aio.AbortError:
            raise
        except Exception as exc:  # the one place errors are mapped
            code, message, trailers = status_of(exc)
            await context.abort(code, message, trailing_metadata=trailers)

    return grpc.unary_unary_rpc_method_handler(
        guarded, handler.request_deserializer, handler.response_serializer
    )
