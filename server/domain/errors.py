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


class RequestIdReused(FailedPrecondition):
    """A request_id already bound to another payload (or kind of operation): the caller's mistake,
    and nothing was done. Callers that derive request_ids from content (Alertmanager notifications)
    tell it apart from other preconditions."""


class Unavailable(GatewayError):
    def __init__(self, message: str, retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds  # a hint for the caller; None: its own backoff


class OutcomePending(Unavailable):
    """A write whose outcome cannot be known within the caller's time: it may still land. Repeating
    the request_id later gives the final answer; meanwhile ListTickets{request_id} finds the ticket.
    Never an OK: a write answers OK only when it happened on the platform."""

    def __init__(
        self, message: str, *, ticket_id: str, request_id: str, retry_after_seconds: float
    ) -> None:
        super().__init__(message, retry_after_seconds)
        self.ticket_id = ticket_id
        self.request_id = request_id


class DeadlineExceeded(GatewayError):
    pass


class ResourceExhausted(GatewayError):
    pass


class StoreUnavailable(Exception):
    """The gateway's own database cannot be reached: UNAVAILABLE, whatever the call was. Storage's
    DatabaseUnavailable is one; its message may name the database, so it is logged, not shown."""
