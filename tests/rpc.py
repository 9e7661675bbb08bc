"""Small helpers for asserting on gRPC errors in tests."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2


async def rpc_error(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def field_violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    """field -> reason, decoded from the rich status (google.rpc.BadRequest) in the trailers."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                bad = error_details_pb2.BadRequest()
                if detail.Unpack(bad):
                    return {v.field: v.reason for v in bad.field_violations}
    return {}


def status_details(error: grpc.aio.AioRpcError) -> list[Any]:
    """Every detail of the rich status, unpacked: BadRequest, ErrorInfo, RetryInfo."""
    found: list[Any] = []
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                for kind in (error_details_pb2.BadRequest, error_details_pb2.ErrorInfo, error_details_pb2.RetryInfo):
                    message = kind()
                    if detail.Unpack(message):
                        found.append(message)
    return found


def outcome_pending(error: grpc.aio.AioRpcError) -> tuple[dict[str, str], float]:
    """(ErrorInfo metadata, RetryInfo seconds) of an OUTCOME_PENDING answer; fails the test otherwise."""
    assert error.code() == grpc.StatusCode.UNAVAILABLE, error.details()
    details = status_details(error)
    infos = [d for d in details if isinstance(d, error_details_pb2.ErrorInfo)]
    retries = [d for d in details if isinstance(d, error_details_pb2.RetryInfo)]
    assert [(i.reason, i.domain) for i in infos] == [("OUTCOME_PENDING", "itsm.v1")], details
    assert len(retries) == 1
    delay = retries[0].retry_delay
    return dict(infos[0].metadata), delay.seconds + delay.nanos / 1e9
