"""One unary call from the web port, run through the gRPC server's own interceptor chain.

grpc.aio resolves a call's handler by passing (method, metadata) through each interceptor's
intercept_service, outermost first, down to the registered handler, then runs the handler it got back.
WebCalls does the same with the same interceptor instances (metrics, RPC log, auth, errors) and the
same registered handlers: a web call is counted, logged, authenticated, checked and mapped exactly
like a gRPC call. What is left to the web protocols is bytes and headers.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import Message
from grpc import aio

from server.transport.method_registry import MethodRegistry
from server.transport.web_context import Metadata, WebContext

log = logging.getLogger("itsm.server")

Chain = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]


class CallDetails(
    collections.namedtuple("CallDetails", ("method", "invocation_metadata")), grpc.HandlerCallDetails
):
    """What grpc.aio hands interceptors: the method path and the caller's metadata."""


@dataclass(frozen=True)
class Outcome:
    """A call's end: OK with its response, or a status with its message and trailers (rich details)."""

    code: grpc.StatusCode
    message: str = ""
    trailers: Metadata = ()
    response: Message | None = None


class WebCalls:
    def __init__(self, registry: MethodRegistry, interceptors: Sequence[aio.ServerInterceptor]) -> None:
        self.registry = registry
        self._chain = _chain(registry, interceptors)

    async def call(
        self, path: str, request: Any, metadata: Metadata, seconds: float | None, peer: str
    ) -> Outcome:
        """Runs the call. `request` is the message (or request_checks.Malformed), or the binary body
        for the handler's own deserializer to parse, as it does for a gRPC call. `seconds`: the caller's
        timeout, if it set one."""
        deadline = None if seconds is None else time.monotonic() + seconds
        context = WebContext(metadata, deadline, peer)
        # A fresh context per call, as grpc.aio gives each call its own task: the caller and log
        # fields an interceptor binds must not leak into the next call on a keep-alive connection.
        task = asyncio.get_running_loop().create_task(
            self._run(path, request, context), context=contextvars.Context()
        )
        if seconds is None:
            return await task  # a cancelled caller cancels the task with it
        try:
            done, _ = await asyncio.wait((task,), timeout=max(seconds, 0.0))
        except asyncio.CancelledError:
            task.cancel()
            raise
        if done:
            return task.result()
        # grpc.aio cancels the handler when the deadline passes; the interceptors read
        # time_remaining() == 0 and record DEADLINE_EXCEEDED.
        context.expire()
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        return Outcome(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")

    async def _run(self, path: str, request: Any, context: WebContext) -> Outcome:
        try:
            handler = await self._chain(CallDetails(path, context.invocation_metadata()))
        except Exception:
            return _internal("resolving", path)
        if handler is None:
            return Outcome(grpc.StatusCode.UNIMPLEMENTED, f"unknown method {path}")
        if handler.unary_unary is None:
            return Outcome(grpc.StatusCode.UNIMPLEMENTED, f"{path} streams; the web port serves unary calls")
        if isinstance(request, bytes) and handler.request_deserializer is not None:
            request = handler.request_deserializer(request)
        try:
            response = await handler.unary_unary(request, context)
        except aio.AbortError:
            return Outcome(
                context.code() or grpc.StatusCode.UNKNOWN, context.details(), context.trailing_metadata()
            )
        except Exception:  # the error interceptor maps ours; anything else is what grpc calls UNKNOWN
            return _internal("running", path, grpc.StatusCode.UNKNOWN)
        code = context.code()
        if code is not None and code is not grpc.StatusCode.OK:  # set_code() and return, grpc-style
            return Outcome(code, context.details(), context.trailing_metadata())
        return Outcome(grpc.StatusCode.OK, response=response)


def _chain(registry: MethodRegistry, interceptors: Sequence[aio.ServerInterceptor]) -> Chain:
    """intercept_service of each interceptor, outermost first, ending in the registry: built once."""

    async def registered(details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = registry.get(details.method)
        return method.handler if method else None

    chain: Chain = registered
    for interceptor in reversed(interceptors):
        chain = functools.partial(interceptor.intercept_service, chain)
    return chain


def _internal(stage: str, path: str, code: grpc.StatusCode = grpc.StatusCode.INTERNAL) -> Outcome:
    ref = uuid.uuid4().hex[:12]
    log.exception("web call %s failed while %s ref=%s", path, stage, ref)
    return Outcome(code, f"internal error (ref {ref})")
