"""Domain errors the service raises. They know nothing of gRPC: server/transport/status.py maps them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class ViolationLike(Protocol):
    field: str
    description: str
    reason: str


class GatewayError(Exception):
    """Base: the message is safe to show the caller (no secrets, no internals)."""


class InvalidArgument(GatewayError):
    def __init__(self, message: str, violations: Sequence[ViolationLike] = ()) -> None:
        super().__init__(message)
        self.violations = list(violations)


class NotFound(GatewayError):
    pass


class FailedPrecondition(GatewayError):
    pass


class Unavailable(GatewayError):
    pass


class DeadlineExceeded(GatewayError):
    pass


class ResourceExhausted(GatewayError):
    pass


class StoreUnavailable(Exception):
    """The gateway's own database cannot be reached: UNAVAILABLE, whatever the call was. Storage's
    DatabaseUnavailable is one; its message may name the database, so it is logged, not shown."""
