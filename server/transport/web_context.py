"""The servicer context of a call that came over the web port.

It implements what the servicers and interceptors use of grpc.aio.ServicerContext (abort, time_remaining,
invocation_metadata, peer, code/details and their setters, trailing metadata), with grpc's semantics:
abort() records the status and raises grpc.aio.AbortError, which the error interceptor lets through
and the metrics and log interceptors read the code of, exactly as they do for a gRPC call.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import NoReturn

import grpc
from grpc import aio

Metadata = tuple[tuple[str, str | bytes], ...]


class WebContext:
    __slots__ = ("_code", "_deadline", "_details", "_expired", "_metadata", "_peer", "_trailers")

    def __init__(self, metadata: Metadata, deadline: float | None, peer: str) -> None:
        self._metadata = metadata
        self._deadline = deadline  # time.monotonic() when the caller stops waiting, or None
        self._peer = peer
        self._code: grpc.StatusCode | None = None
        self._details = ""
        self._trailers: Metadata = ()
        self._expired = False

    async def abort(
        self,
        code: grpc.StatusCode,
        details: str = "",
        trailing_metadata: Sequence[tuple[str, str | bytes]] = (),
    ) -> NoReturn:
        if code is grpc.StatusCode.OK:  # grpc refuses to abort with OK; so do we, the same way
            code = grpc.StatusCode.UNKNOWN
        self._code = code
        self._details = details
        if trailing_metadata:
            self._trailers = tuple(trailing_metadata)
        raise aio.AbortError()

    def time_remaining(self) -> float | None:
        if self._deadline is None:
            return None
        if self._expired:
            return 0.0
        return max(self._deadline - time.monotonic(), 0.0)

    def expire(self) -> None:
        """The deadline passed and the call is being cancelled: say so even if the clock lags a hair."""
        self._expired = True

    def invocation_metadata(self) -> Metadata:
        return self._metadata

    def peer(self) -> str:
        return self._peer

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def details(self) -> str:
        return self._details

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        self._details = details

    def set_trailing_metadata(self, trailing_metadata: Sequence[tuple[str, str | bytes]]) -> None:
        self._trailers = tuple(trailing_metadata)

    def trailing_metadata(self) -> Metadata:
        return self._trailers

    def cancelled(self) -> bool:
        # Only the deadline cancels a web call: a caller that hangs up does not stop the handler.
        return self._expired
