"""A platform's refusal, told to the caller in the gateway's terms."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from clients.errors import ErrorKind, PlatformError
from clients.platform import PlatformSpec
from server.domain import errors
from server.domain.records import TicketRecord
from server.domain.rules import FieldRule
from server.domain.validation import Violation


def platform_violations(
    rules: Mapping[str, FieldRule], spec: PlatformSpec, exc: PlatformError
) -> list[Violation]:
    """Platform field errors renamed to canonical fields (short_description -> summary)."""
    by_platform_name = {spec.error_field(rule.path): name for name, rule in rules.items()}
    return [
        Violation(by_platform_name.get(field, field), message, "PLATFORM_REJECTED")
        for field, message in exc.field_errors.items()
    ] or [Violation("fields", exc.message or "rejected by the platform", "PLATFORM_REJECTED")]


def caller_error(
    exc: PlatformError, rules: Mapping[str, FieldRule], spec: PlatformSpec, ticket_id: str
) -> errors.GatewayError:
    """What the caller hears about a write that was definitely not applied. Only payload and
    credential rejections are for good; anything else is retried by repeating the request_id."""
    message = str(exc)
    if exc.kind is ErrorKind.PAYLOAD_REJECTED:
        return errors.InvalidArgument(message, platform_violations(rules, spec, exc))
    if exc.kind is ErrorKind.NOT_APPLIED:
        # The workflow or an ACL said no; the message names what does exist (the transitions).
        return errors.FailedPrecondition(message)
    if exc.kind is ErrorKind.AUTH:
        return errors.FailedPrecondition(f"{message}; the gateway's credentials for {spec.name} were refused")
    retry = f"; nothing was applied (ticket {ticket_id}) and the same request_id tries again"
    if exc.kind is ErrorKind.DEADLINE:
        return errors.DeadlineExceeded(message + retry)
    if exc.kind in (ErrorKind.NOT_FOUND, ErrorKind.CONFLICT):
        return errors.FailedPrecondition(message + retry)
    return errors.Unavailable(message + retry)


class _HasCatalog(Protocol):
    specs: Mapping[str, PlatformSpec]

    def rules(self, platform: str) -> Mapping[str, FieldRule]: ...


class _HasTicket(Protocol):
    ticket: TicketRecord


def to_caller(catalog: _HasCatalog, work: _HasTicket, exc: PlatformError) -> errors.GatewayError:
    platform = work.ticket.platform
    return caller_error(exc, catalog.rules(platform), catalog.specs[platform], work.ticket.id)
