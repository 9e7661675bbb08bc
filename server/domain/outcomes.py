"""Outcome labels of a ticket operation: what a call ended with, for metrics and log lines."""

from __future__ import annotations

import asyncio
from typing import Final

from server.domain import errors

# Outcomes of one create call (CreateTicket or CreateTicketFromTemplate):
#   created      a new ticket was created on the platform
#   replayed     a repeat of a request_id answered from the store (no new ticket)
#   invalid      the fields were refused: validation or template rendering failed before sending, or
#                the platform rejected the payload (400/422)
#   rejected     the platform or the gateway refused it (credentials or an ACL, a change left out,
#                not found, conflict, request_id reused with another payload, platform disabled)
#   unavailable  the platform could not be reached or kept failing; the same request_id may retry
#   deadline     the caller's deadline ran out
#   cancelled    the caller went away mid-call
#   failed       anything else (a bug)
OUTCOMES: Final = (
    "created", "replayed", "invalid", "rejected", "unavailable", "deadline", "cancelled", "failed",
)


def outcome_of(error: BaseException | None, *, replayed: bool = False) -> str:
    """The outcome label for a create call that raised `error` (None: it returned a ticket)."""
    if error is None:
        return "replayed" if replayed else "created"
    if isinstance(error, errors.InvalidArgument):
        return "invalid"
    if isinstance(error, errors.FailedPrecondition | errors.NotFound):
        return "rejected"
    if isinstance(error, errors.Unavailable | errors.ResourceExhausted):
        return "unavailable"
    if isinstance(error, errors.DeadlineExceeded | TimeoutError):
        return "deadline"
    if isinstance(error, asyncio.CancelledError):
        return "cancelled"
    return "failed"


# Outcomes of every platform write (create, update, comment, resolve, reopen), for
# itsm_ticket_operations_total: "succeeded" for one applied now (a create: created, attached or
# reopened), "pending" for one whose outcome is not known yet (OUTCOME_PENDING), the rest as above.
OPERATION_OUTCOMES: Final = (
    "succeeded", "replayed", "invalid", "rejected", "unavailable", "pending", "deadline", "cancelled",
    "failed",
)
# The operations, and what a create with a dedup key decided.
OPERATIONS: Final = ("create", "update", "comment", "resolve", "reopen")
DEDUP_DECISIONS: Final = ("created", "attached", "reopened")


def operation_outcome(error: BaseException | None, *, replayed: bool = False) -> str:
    """The outcome label of a platform write that raised `error` (None: it answered)."""
    if error is None:
        return "replayed" if replayed else "succeeded"
    if isinstance(error, errors.OutcomePending):
        return "pending"
    return outcome_of(error)
