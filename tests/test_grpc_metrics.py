"""The aio metrics interceptor: every call shape, every way a call ends, health and reflection.

A real grpc.aio server on 127.0.0.1 (port 0) with a tiny bytes-in/bytes-out service per call shape,
the real health and reflection services, a real channel; samples read from a fresh registry.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc
from prometheus_client import CollectorRegistry

from server.transport.auth import TokenRegistry
from server.transport.grpc_metrics import GrpcMetricsInterceptor, grpc_server_families
from server.transport.interceptors import AuthInterceptor

SERVICE = "test.Shapes"
TOKEN = "metrics-test-token-0123456789"


def _identity(value: bytes) -> bytes:
    return value


class Shapes:
    """One handler per call shape; the request bytes say how the call should end."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()  # a blocking call has reached its handler

    async def unary(self, request: bytes, context: aio.ServicerContext) -> bytes:
        if request == b"invalid":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad request")
        if request == b"boom":
            raise RuntimeError("handler bug")
        if request == b"set-code":
            context.set_code(grpc.StatusCode.NOT_FOUND)
            context.set_details("nothing here")
            return b""
        if request == b"wait":
            self.entered.set()
            await asyncio.Event().wait()
        return request

    async def server_stream(self, request: bytes, context: aio.ServicerContext) -> AsyncIterator[bytes]:
        for i in range(3):
            yield b"%d" % i
        if request == b"abort":
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "stop")
        if request == b"wait":
            self.entered.set()
            await asyncio.Event().wait()

    async def server_writer(self, request: bytes, context: aio.ServicerContext) -> None:
        for i in range(int(request)):
            await context.write(b"%d" % i)

    async def client_stream(self, requests: AsyncIterator[bytes], context: aio.ServicerContext) -> bytes:
        return b",".join([r async for r in requests])

    async def client_reader(self, requests: AsyncIterator[bytes], context: aio.ServicerContext) -> bytes:
        seen = []
        while (message := await context.read()) is not aio.EOF:
            seen.append(message)
        return b",".join(seen)

    async def bidi(self, requests: AsyncIterator[bytes], context: aio.ServicerContext) -> AsyncIterator[bytes]:
        async for request in requests:
            if request == b"boom":
                raise RuntimeError("bidi bug")
            yield request.upper()


def shapes_handler(shapes: Shapes) -> grpc.GenericRpcHandler:
    io = {"request_deserializer": _identity, "response_serializer": _identity}
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(shapes.unary, **io),
            "ServerStream": grpc.unary_stream_rpc_method_handler(shapes.server_stream, **io),
            "ServerWriter": grpc.unary_stream_rpc_method_handler(shapes.server_writer, **io),
            "ClientStream": grpc.stream_unary_rpc_method_handler(shapes.client_stream, **io),
            "ClientReader": grpc.stream_unary_rpc_method_handler(shapes.client_reader, **io),
            "Bidi": grpc.stream_stream_rpc_method_handler(shapes.bidi, **io),
        },
    )


@dataclass
class Harness:
    registry: CollectorRegistry
    channel: aio.Channel
    shapes: Shapes
    health: health.aio.HealthServicer

    def value(self, name: str, **labels: str) -> float:
        found = self.registry.get_sample_value(name, labels)
        return 0.0 if found is None else found

    def handled(self, grpc_type: str, method: str, code: str, service: str = SERVICE) -> float:
        return self.value(
            "grpc_server_handled_total",
            grpc_type=grpc_type, grpc_service=service, grpc_method=method, grpc_code=code,
        )

    def labels(self, grpc_type: str, method: str, service: str = SERVICE) -> dict[str, str]:
        return {"grpc_type": grpc_type, "grpc_service": service, "grpc_method": method}

    def unary(self, method: str = "Unary") -> aio.UnaryUnaryMultiCallable:
        return self.channel.unary_unary(f"/{SERVICE}/{method}")

    def server_stream(self, method: str = "ServerStream") -> aio.UnaryStreamMultiCallable:
        return self.channel.unary_stream(f"/{SERVICE}/{method}")

    def client_stream(self, method: str = "ClientStream") -> aio.StreamUnaryMultiCallable:
        return self.channel.stream_unary(f"/{SERVICE}/{method}")

    def bidi(self) -> aio.StreamStreamMultiCallable:
        return self.channel.stream_stream(f"/{SERVICE}/Bidi")


async def _eventually(condition: Callable[[], bool]) -> None:
    """Some endings are recorded after the client has its answer: context.abort() sends the status
    before it raises, and a dropped generator is closed by the event loop a moment later. Client and
    server share this event loop, so wait for the condition, bounded."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    assert condition()


async def _start(interceptors: list[aio.ServerInterceptor], registry: CollectorRegistry) -> AsyncIterator[Harness]:
    shapes = Shapes()
    health_servicer = health.aio.HealthServicer()
    server = aio.server(interceptors=interceptors)
    server.add_generic_rpc_handlers([shapes_handler(shapes)])
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    channel = aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Harness(registry, channel, shapes, health_servicer)
    finally:
        await channel.close()
        await server.stop(None)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    registry = CollectorRegistry()
    async for h in _start([GrpcMetricsInterceptor(registry)], registry):
        yield h


# ------------------------------------------------------------------------------ unary


async def test_unary_ok_counts_started_handled_and_latency(harness: Harness) -> None:
    assert await harness.unary()(b"hello") == b"hello"
    assert await harness.unary()(b"again") == b"again"
    labels = harness.labels("UNARY", "Unary")
    assert harness.value("grpc_server_started_total", **labels) == 2
    assert harness.handled("UNARY", "Unary", "OK") == 2
    assert harness.value("grpc_server_handling_seconds_count", **labels) == 2
    assert harness.value("grpc_server_handling_seconds_sum", **labels) > 0
    # Message counters are for streams only, as their help text says.
    assert harness.value("grpc_server_msg_received_total", **labels) == 0


async def test_abort_is_counted_with_its_code(harness: Harness) -> None:
    with pytest.raises(aio.AioRpcError) as caught:
        await harness.unary()(b"invalid")
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    await _eventually(lambda: harness.handled("UNARY", "Unary", "INVALID_ARGUMENT") == 1)
    assert harness.handled("UNARY", "Unary", "OK") == 0


async def test_an_escaping_exception_is_unknown(harness: Harness) -> None:
    with pytest.raises(aio.AioRpcError) as caught:
        await harness.unary()(b"boom")
    assert caught.value.code() is grpc.StatusCode.UNKNOWN
    assert harness.handled("UNARY", "Unary", "UNKNOWN") == 1


async def test_a_code_set_on_the_context_is_the_one_counted(harness: Harness) -> None:
    with pytest.raises(aio.AioRpcError) as caught:
        await harness.unary()(b"set-code")
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    assert harness.handled("UNARY", "Unary", "NOT_FOUND") == 1


async def test_client_cancel_is_cancelled(harness: Harness) -> None:
    call = harness.unary()(b"wait")
    await harness.shapes.entered.wait()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await _eventually(lambda: harness.handled("UNARY", "Unary", "CANCELLED") == 1)
    assert harness.value("grpc_server_started_total", **harness.labels("UNARY", "Unary")) == 1


async def test_a_passed_deadline_is_deadline_exceeded(harness: Harness) -> None:
    with pytest.raises(aio.AioRpcError) as caught:
        await harness.unary()(b"wait", timeout=0.3)
    assert caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    await _eventually(lambda: harness.handled("UNARY", "Unary", "DEADLINE_EXCEEDED") == 1)


async def test_unknown_methods_are_not_counted(harness: Harness) -> None:
    with pytest.raises(aio.AioRpcError) as caught:
        await harness.channel.unary_unary(f"/{SERVICE}/Nope")(b"x")
    assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED
    assert harness.value("grpc_server_started_total", **harness.labels("UNARY", "Nope")) == 0


# ------------------------------------------------------------------------------ streams


async def test_server_stream_counts_messages_sent(harness: Harness) -> None:
    replies = [r async for r in harness.server_stream()(b"go")]
    assert replies == [b"0", b"1", b"2"]
    labels = harness.labels("SERVER_STREAMING", "ServerStream")
    assert harness.value("grpc_server_started_total", **labels) == 1
    assert harness.value("grpc_server_msg_sent_total", **labels) == 3
    assert harness.handled("SERVER_STREAMING", "ServerStream", "OK") == 1
    assert harness.value("grpc_server_handling_seconds_count", **labels) == 1


async def test_server_stream_abort_after_messages(harness: Harness) -> None:
    call = harness.server_stream()(b"abort")
    with pytest.raises(aio.AioRpcError) as caught:
        async for _ in call:
            pass
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    await _eventually(lambda: harness.handled("SERVER_STREAMING", "ServerStream", "FAILED_PRECONDITION") == 1)
    assert harness.value("grpc_server_msg_sent_total", **harness.labels("SERVER_STREAMING", "ServerStream")) == 3


async def test_server_stream_client_cancel_mid_stream(harness: Harness) -> None:
    call = harness.server_stream()(b"wait")
    received = [await call.read() for _ in range(3)]
    assert received == [b"0", b"1", b"2"]
    await harness.shapes.entered.wait()
    call.cancel()
    await _eventually(lambda: harness.handled("SERVER_STREAMING", "ServerStream", "CANCELLED") == 1)


async def test_writer_style_server_stream_counts_context_writes(harness: Harness) -> None:
    replies = [r async for r in harness.server_stream("ServerWriter")(b"4")]
    assert len(replies) == 4
    labels = harness.labels("SERVER_STREAMING", "ServerWriter")
    assert harness.value("grpc_server_msg_sent_total", **labels) == 4
    assert harness.handled("SERVER_STREAMING", "ServerWriter", "OK") == 1


@pytest.mark.parametrize("method", ["ClientStream", "ClientReader"])
async def test_client_stream_counts_messages_received(harness: Harness, method: str) -> None:
    async def requests() -> AsyncIterator[bytes]:
        for item in (b"a", b"b", b"c", b"d"):
            yield item

    assert await harness.client_stream(method)(requests()) == b"a,b,c,d"
    labels = harness.labels("CLIENT_STREAMING", method)
    assert harness.value("grpc_server_started_total", **labels) == 1
    assert harness.value("grpc_server_msg_received_total", **labels) == 4
    assert harness.handled("CLIENT_STREAMING", method, "OK") == 1


async def test_bidi_counts_both_directions(harness: Harness) -> None:
    call = harness.bidi()()
    for item in (b"x", b"y"):
        await call.write(item)
        assert await call.read() == item.upper()
    await call.done_writing()
    assert await call.read() is aio.EOF
    labels = harness.labels("BIDI_STREAMING", "Bidi")
    await _eventually(lambda: harness.handled("BIDI_STREAMING", "Bidi", "OK") == 1)
    assert harness.value("grpc_server_msg_received_total", **labels) == 2
    assert harness.value("grpc_server_msg_sent_total", **labels) == 2


async def test_bidi_exception_is_unknown(harness: Harness) -> None:
    call = harness.bidi()()
    await call.write(b"boom")
    with pytest.raises(aio.AioRpcError) as caught:
        await call.read()
    assert caught.value.code() is grpc.StatusCode.UNKNOWN
    await _eventually(lambda: harness.handled("BIDI_STREAMING", "Bidi", "UNKNOWN") == 1)


# ------------------------------------------------------------------------------ health, reflection


async def test_reflection_works_through_the_interceptor(harness: Harness) -> None:
    """What `grpcurl list` and `grpcurl describe` send: one bidi stream, several requests."""
    stub = reflection_pb2_grpc.ServerReflectionStub(harness.channel)

    async def requests() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")
        yield reflection_pb2.ServerReflectionRequest(file_containing_symbol=health.SERVICE_NAME)

    responses = [r async for r in stub.ServerReflectionInfo(requests())]
    names = {s.name for s in responses[0].list_services_response.service}
    assert names == {health.SERVICE_NAME, reflection.SERVICE_NAME}
    assert responses[1].file_descriptor_response.file_descriptor_proto
    service, method = reflection.SERVICE_NAME, "ServerReflectionInfo"
    labels = harness.labels("BIDI_STREAMING", method, service)
    await _eventually(lambda: harness.handled("BIDI_STREAMING", method, "OK", service) == 1)
    assert harness.value("grpc_server_msg_received_total", **labels) == 2
    assert harness.value("grpc_server_msg_sent_total", **labels) == 2


async def test_health_check_and_watch_work_through_the_interceptor(harness: Harness) -> None:
    stub = health_pb2_grpc.HealthStub(harness.channel)
    reply = await stub.Check(health_pb2.HealthCheckRequest(service=""))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(aio.AioRpcError) as caught:
        await stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND

    # The aio health servicer's Watch is a coroutine writing with context.write, not a generator.
    watch = stub.Watch(health_pb2.HealthCheckRequest(service=""))
    first = await watch.read()
    assert first.status == health_pb2.HealthCheckResponse.SERVING
    await harness.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    second = await watch.read()
    assert second.status == health_pb2.HealthCheckResponse.NOT_SERVING
    watch.cancel()

    service = health.SERVICE_NAME
    assert harness.handled("UNARY", "Check", "OK", service) == 1
    await _eventually(lambda: harness.handled("UNARY", "Check", "NOT_FOUND", service) == 1)
    await _eventually(lambda: harness.handled("SERVER_STREAMING", "Watch", "CANCELLED", service) == 1)
    labels = harness.labels("SERVER_STREAMING", "Watch", service)
    assert harness.value("grpc_server_msg_sent_total", **labels) == 2


# ------------------------------------------------------------------------------ wiring


async def test_first_in_the_chain_it_counts_calls_auth_refuses() -> None:
    registry = CollectorRegistry()
    tokens = TokenRegistry([("tester", TOKEN, frozenset({"read"}))])
    chain: list[aio.ServerInterceptor] = [GrpcMetricsInterceptor(registry), AuthInterceptor(tokens)]
    async for h in _start(chain, registry):
        with pytest.raises(aio.AioRpcError) as caught:
            await h.unary()(b"x")
        assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert await h.unary()(b"x", metadata=(("authorization", f"Bearer {TOKEN}"),)) == b"x"
        await _eventually(lambda h=h: h.handled("UNARY", "Unary", "UNAUTHENTICATED") == 1)
        assert h.handled("UNARY", "Unary", "OK") == 1
        assert h.value("grpc_server_started_total", **h.labels("UNARY", "Unary")) == 2


async def test_excluded_services_pass_through_unmeasured() -> None:
    registry = CollectorRegistry()
    interceptor = GrpcMetricsInterceptor(registry, exclude={health.SERVICE_NAME})
    async for h in _start([interceptor], registry):
        await health_pb2_grpc.HealthStub(h.channel).Check(health_pb2.HealthCheckRequest())
        assert await h.unary()(b"x") == b"x"
        assert h.handled("UNARY", "Check", "OK", health.SERVICE_NAME) == 0
        assert h.handled("UNARY", "Unary", "OK") == 1


def test_families_are_registered_once_per_registry() -> None:
    registry = CollectorRegistry()
    first, second = GrpcMetricsInterceptor(registry), GrpcMetricsInterceptor(registry)
    assert grpc_server_families(registry) is grpc_server_families(registry)
    assert first._families is second._families
    names = {m.name for m in registry.collect()}
    assert {
        "grpc_server_started", "grpc_server_handled", "grpc_server_handling_seconds",
        "grpc_server_msg_received", "grpc_server_msg_sent",
    } <= names
    assert grpc_server_families(CollectorRegistry()) is not grpc_server_families(registry)

