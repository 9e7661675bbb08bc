"""Per-RPC cost of the metrics interceptor and of the RPC logging interceptor.

Five real grpc.aio servers in this process on 127.0.0.1, identical but for their interceptors:
none, a pass-through interceptor (what grpc.aio charges for having a chain at all), metrics,
logging, metrics + logging. A unary CreateTicket-shaped echo (real protobuf messages, so the log line
carries request_id/job_id/platform) is called through real channels. Logs are JSON lines through the
real redacting handler, written to os.devnull (--log-sink memory: no write syscall).

1. sequential, interleaved call by call (the configurations take turns on every call, so they meet
   the same noise), median of every call's latency;
2. concurrent blocks (many calls in flight: wall time per RPC), alternated, rotated, medians;
3. the interceptors driven without a network (intercept_service + the wrapped handler, a minimal
   context stand-in): their own CPU per call, hot.
The inherited ceiling is 1 ms per RPC per interceptor; the aim is 30 us.

    .venv/bin/python scripts/bench_interceptors.py [--rounds 9] [--calls 1000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "gen"))

import grpc  # noqa: E402
from grpc import aio  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from itsm.v1 import common_pb2, ticket_pb2, ticket_service_pb2  # noqa: E402
from server.observability.logs import configure_logging  # noqa: E402
from server.observability.redaction import register_secrets  # noqa: E402
from server.transport.grpc_metrics import GrpcMetricsInterceptor  # noqa: E402
from server.transport.rpc_log import RpcLogInterceptor  # noqa: E402

CEILING_US = 1000.0
AIM_US = 30.0
METHOD = "/itsm.v1.TicketService/CreateTicket"
REQUEST = ticket_service_pb2.CreateTicketRequest(
    platform=common_pb2.PLATFORM_JIRA,
    request_id="bench-7f3a9c21",
    job_id="nightly-export-42",
    fields={"project": "OPS", "summary": "Nightly export failed", "labels": "export,nightly"},
)
REPLY = ticket_service_pb2.CreateTicketResponse(
    ticket=ticket_pb2.Ticket(id="3f1c2a4e-0000-4000-8000-000000000001", request_id="bench-7f3a9c21")
)
CONFIGS = ("none", "pass-through", "metrics", "logging", "both")


async def create_ticket(request: Any, context: aio.ServicerContext) -> Any:
    return REPLY


def _handler() -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        "itsm.v1.TicketService",
        {
            "CreateTicket": grpc.unary_unary_rpc_method_handler(
                create_ticket,
                request_deserializer=ticket_service_pb2.CreateTicketRequest.FromString,
                response_serializer=ticket_service_pb2.CreateTicketResponse.SerializeToString,
            )
        },
    )


class PassThrough(aio.ServerInterceptor):
    """An interceptor that does nothing: what grpc.aio charges for having a chain at all."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        return await continuation(handler_call_details)


def interceptors_for(config: str) -> list[aio.ServerInterceptor]:
    chain: list[aio.ServerInterceptor] = []
    if config == "pass-through":
        chain.append(PassThrough())
    if config in ("metrics", "both"):
        chain.append(GrpcMetricsInterceptor(CollectorRegistry()))
    if config in ("logging", "both"):
        chain.append(RpcLogInterceptor())
    return chain


class Target:
    def __init__(self, config: str) -> None:
        self.config = config
        self.server = aio.server(interceptors=interceptors_for(config))
        self.server.add_generic_rpc_handlers([_handler()])
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.channel: aio.Channel | None = None
        self.call: Callable[..., Awaitable[Any]] | None = None

    async def start(self) -> None:
        await self.server.start()
        self.channel = aio.insecure_channel(f"127.0.0.1:{self.port}")
        self.call = self.channel.unary_unary(
            METHOD,
            request_serializer=ticket_service_pb2.CreateTicketRequest.SerializeToString,
            response_deserializer=ticket_service_pb2.CreateTicketResponse.FromString,
        )
        await self.call(REQUEST)

    async def stop(self) -> None:
        if self.channel is not None:
            await self.channel.close()
        await self.server.stop(None)


async def block_us(target: Target, calls: int, concurrency: int) -> float:
    """Wall time per RPC over `calls` calls with `concurrency` in flight."""
    assert target.call is not None
    call = target.call
    per_worker = calls // concurrency

    async def worker() -> None:
        for _ in range(per_worker):
            await call(REQUEST)

    start = time.perf_counter_ns()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.perf_counter_ns() - start) / (per_worker * concurrency) / 1000


Result = dict[str, tuple[float, float, float]]  # configuration -> (median, min, max) us per RPC


async def measure(targets: dict[str, Target], rounds: int, calls: int, concurrency: int) -> Result:
    for target in targets.values():  # warm-up: caches, first-use series, the interpreter
        await block_us(target, calls // 2, concurrency)
    samples: dict[str, list[float]] = {name: [] for name in targets}
    order = list(targets)
    for round_number in range(rounds):
        # Rotate the order every round so no configuration always runs first or last.
        shift = round_number % len(order)
        for name in order[shift:] + order[:shift]:
            samples[name].append(await block_us(targets[name], calls, concurrency))
    return {name: (statistics.median(v), min(v), max(v)) for name, v in samples.items()}


async def interleaved(targets: dict[str, Target], rounds: int, calls: int) -> Result:
    """One call at a time, rotating through the configurations call by call, each call timed:
    every configuration meets the same noise (GC, scheduler, the other vCPU's neighbours), and the
    median of thousands of single calls shrugs off the pauses that skew block timings."""
    samples: dict[str, list[float]] = {name: [] for name in targets}
    order = list(targets)
    for i in range(rounds * calls):
        shift = i % len(order)
        for name in order[shift:] + order[:shift]:
            call = targets[name].call
            assert call is not None
            start = time.perf_counter_ns()
            await call(REQUEST)
            samples[name].append((time.perf_counter_ns() - start) / 1000)
    return {
        name: (statistics.median(v), statistics.quantiles(v, n=10)[0], statistics.quantiles(v, n=10)[-1])
        for name, v in samples.items()
    }


# ------------------------------------------------------------------------------ without a network


class _Context:
    """Just what the wrappers read from a servicer context."""

    def code(self) -> None:
        return None

    def peer(self) -> str:
        return "ipv4:127.0.0.1:54321"

    def time_remaining(self) -> float | None:
        return None


async def direct_us(config: str, iterations: int, runs: int) -> tuple[float, float, float]:
    handler = grpc.unary_unary_rpc_method_handler(
        create_ticket,
        request_deserializer=ticket_service_pb2.CreateTicketRequest.FromString,
        response_serializer=ticket_service_pb2.CreateTicketResponse.SerializeToString,
    )
    chain = interceptors_for(config)
    details = _Details(METHOD)
    context = _Context()

    async def resolve(d: grpc.HandlerCallDetails, index: int = 0) -> grpc.RpcMethodHandler | None:
        if index == len(chain):
            return handler
        return await chain[index].intercept_service(lambda nd: resolve(nd, index + 1), d)

    async def one() -> None:
        resolved = await resolve(details)
        assert resolved is not None
        await resolved.unary_unary(REQUEST, context)

    for _ in range(iterations // 10):
        await one()
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        for _ in range(iterations):
            await one()
        samples.append((time.perf_counter_ns() - start) / iterations / 1000)
    return statistics.median(samples), min(samples), max(samples)


class _Details(grpc.HandlerCallDetails):
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


# ------------------------------------------------------------------------------ report


def report(title: str, per_rpc: Result) -> None:
    base = per_rpc["none"][0]
    chain = per_rpc["pass-through"][0]
    print(f"\n{title}")
    print(
        f"  {'configuration':<14}{'median':>9}{'min':>9}{'max':>9}{'+none':>9}{'+chain':>9}   "
        f"verdict on +chain (ceiling {CEILING_US:.0f} us, aim {AIM_US:.0f} us per interceptor)"
    )
    for name in CONFIGS:
        median, low, high = per_rpc[name]
        over_chain = median - chain
        count = {"metrics": 1, "logging": 1, "both": 2}.get(name, 0)
        verdict = _verdict(over_chain, count) if count else ""
        print(
            f"  {name:<14}{median:>9.1f}{low:>9.1f}{high:>9.1f}{median - base:>+9.1f}"
            f"{over_chain if count else 0.0:>+9.1f}   {verdict}"
        )


def _verdict(added: float, interceptors: int) -> str:
    if added > CEILING_US * interceptors:
        return "OVER CEILING"
    return "within aim" if added <= AIM_US * interceptors else "over aim, under ceiling"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=1000, help="RPCs per block")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--log-sink", choices=("stderr", "devnull", "memory"), default="stderr",
        help="stderr: the production handler (block-buffered, flushed by a thread) with stderr sent "
        "to /dev/null; devnull: a write syscall per line; memory: none (isolates the syscall)",
    )
    parser.add_argument("--quick", action="store_true", help="the sequential comparison only")
    args = parser.parse_args()

    sink: TextIO | None = io.StringIO()
    if args.log_sink == "devnull":
        sink = open(os.devnull, "w")  # noqa: ASYNC230 - once, before any RPC; lives with the process
    elif args.log_sink == "stderr":
        sink = None  # configure_logging's own stderr handler, on a stderr that goes nowhere
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    configure_logging(level="INFO", fmt="json", stream=sink)
    register_secrets(["bench-secret-one", "bench-secret-two-0123456789", "hunter2"])
    logging.getLogger("grpc").setLevel(logging.WARNING)

    targets = {name: Target(name) for name in CONFIGS}
    for target in targets.values():
        await target.start()
    try:
        print(f"rounds={args.rounds} calls/block={args.calls} python={sys.version.split()[0]}", end=" ")
        print(f"grpcio={grpc.__version__} cpus={os.cpu_count()}")
        print("us per RPC; +none: added over no interceptor; +chain: added over a pass-through one")
        await measure(targets, 1, args.calls, 1)  # warm-up
        report(
            "sequential, interleaved call by call: median latency per RPC (min/max columns: p10/p90)",
            await interleaved(targets, args.rounds, args.calls),
        )
        if args.quick:
            return
        report(
            f"concurrent ({args.concurrency} in flight): wall time per RPC",
            await measure(targets, args.rounds, args.calls * 4, args.concurrency),
        )
        direct = {name: await direct_us(name, 20_000, args.rounds) for name in CONFIGS}
        report("without a network: intercept_service + wrapped handler per call", direct)
    finally:
        for target in targets.values():
            await target.stop()


if __name__ == "__main__":
    asyncio.run(main())
