"""Server interceptors: one seam for everything that wraps every call.

Order (outermost first): [metrics, logging] -> auth -> errors -> servicer. The concurrency cap is
grpc.aio's own maximum_concurrent_rpcs: calls it refuses never reach an interceptor.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import Message
from grpc import aio

from server.domain import errors
from server.domain.validation import Violation
from server.transport.auth import Caller, TokenRegistry, bearer_token, current_caller
from server.transport.request_checks import Malformed, control_characters, safe_parser
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
        "/itsm.v1.TicketService/UpdateTicket",
        "/itsm.v1.TicketService/AddComment",
        "/itsm.v1.TicketService/ResolveTicket",
        "/itsm.v1.TicketService/ReopenTicket",
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
        token = bearer_token(_metadata_value(details, "authorization"))
        return None if token is None else self._tokens.authenticate(token)


class ErrorInterceptor(aio.ServerInterceptor):
    """The one place a unary call's failures become statuses: a request whose bytes do not parse or
    whose strings hold control characters is INVALID_ARGUMENT before the servicer runs; exceptions
    the servicer raises are mapped by server/transport/status.py."""

    def __init__(self, services: frozenset[str]) -> None:
        self._services = services
        # method -> (handler as registered, its guarded wrapper): built once per method, not per
        # call. Bounded by the methods the server registers.
        self._guarded: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not handler.unary_unary:
            return handler
        cached = self._guarded.get(method)
        if cached is None or cached[0] is not handler:
            ours = service_of(method) in self._services
            cached = self._guarded[method] = (handler, _guard(handler, method, ours))
        return cached[1]


def _guard(handler: grpc.RpcMethodHandler, method: str, ours: bool) -> grpc.RpcMethodHandler:
    behavior = handler.unary_unary
    message_type = _message_type(handler.request_deserializer, method)

    async def guarded(request: Any, context: aio.ServicerContext) -> Any:
        if isinstance(request, Malformed):
            await _refuse(context, f"the request is not a valid {request.message_type}: {request.reason}", [])
        if ours and isinstance(request, Message):
            bad = control_characters(request)
            if bad:
                await _refuse(context, f"invalid request: {bad[0].field}: {bad[0].description}", bad)
        try:
            return await behavior(request, context)
        except aio.AbortError:
            raise
        except Exception as exc:  # the one place errors are mapped
            code, message, trailers = status_of(exc)
            await context.abort(code, message, trailing_metadata=trailers)

    return grpc.unary_unary_rpc_method_handler(
        guarded, safe_parser(handler.request_deserializer, message_type), handler.response_serializer
    )


def _message_type(deserializer: Any, method: str) -> str:
    """itsm.v1.CreateTicketRequest, from the deserializer (a message class's FromString)."""
    descriptor = getattr(getattr(deserializer, "__self__", None), "DESCRIPTOR", None)
    return str(getattr(descriptor, "full_name", "")) or f"request of {method}"


async def _refuse(context: aio.ServicerContext, message: str, violations: list[Violation]) -> None:
    code, text, trailers = status_of(errors.InvalidArgument(message, violations))
    await context.abort(code, text, trailing_metadata=trailers)
