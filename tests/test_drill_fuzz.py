"""The fuzz drill, small: a few thousand hostile calls on both ports of a served gateway, none
answered as a server fault, the server alive and well afterwards. scripts/drill_fuzz.py runs it at
full size (100,000 calls)."""

from __future__ import annotations

from scripts.drill_fuzz import run_fuzz
from tests.conftest import postgres_server_url


async def test_the_fuzz_drill_passes() -> None:
    result = await run_fuzz(calls=5000, seed=20261201, port_kind="both", database_url=postgres_server_url())
    print(result.summary())
    assert result.passed, result.summary()
    assert result.calls == 5000
    # Every RPC of both services was called on every transport, and some calls got through.
    assert len(result.by_rpc) == 12
    assert {status.split(":")[0] for status in result.by_status} == {
        "grpc",
        "connect-json",
        "connect-proto",
        "grpc-web",
    }
    assert sum(n for status, n in result.by_status.items() if status.lower().endswith(":ok")) > 500
