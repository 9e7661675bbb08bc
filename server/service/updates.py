"""Updates: setting fields to values is idempotent, so a repeat may send it again; what matters is
whether the platform applied it, which its answer (or the record read back) says. A field it left
out (an ACL, a screen without it) is a precondition the caller must know about."""

from __future__ import annotations

from collections.abc import Mapping

from clients.errors import ErrorKind, PlatformError
from server.domain import errors
from server.domain.payload import build_payload
from server.domain.records import UPDATE
from server.service.catalog import Catalog
from server.service.engine import Applied, Work
from server.service.follow_up import FollowUpKind


class UpdateKind(FollowUpKind):
    kind = UPDATE

    async def send(self, work: Work) -> Applied:
        return await apply_fields(self._catalog, work, work.operation.payload["fields"])

    async def look_up(self, work: Work) -> Applied | None:
        return None  # sending the same values again is harmless, and reads them back


async def apply_fields(catalog: Catalog, work: Work, fields: Mapping[str, str]) -> Applied:
    """Sends canonical fields to the ticket's platform and checks they were applied; the ticket's
    stored fields change with them (an emptied field is dropped)."""
    platform = work.ticket.platform
    rules = catalog.rules(platform)
    try:
        payload = build_payload(rules, fields)
    except (KeyError, ValueError) as exc:  # the field mapping changed under a stored request
        problem = f"the fields no longer fit the configured field mapping: {exc}"
        raise errors.FailedPrecondition(problem) from None
    changed = await work.client.update(work.ticket.external_id, payload, deadline=work.deadline)
    if changed.not_applied:
        spec = catalog.specs[platform]
        canonical = {spec.error_field(rule.path): name for name, rule in rules.items()}
        platform_names = (spec.error_field(tuple(path.split("."))) for path in changed.not_applied)
        names = sorted(canonical.get(name, name) for name in platform_names)
        raise PlatformError(
            platform=platform,
            operation="update",
            kind=ErrorKind.NOT_APPLIED,
            attempts=changed.retry.attempts,
            message="the platform answered without applying "
            + ", ".join(names) + " (an ACL, a business rule or a screen without the field)",
            field_errors=dict.fromkeys(names, "not applied"),
        )
    merged = {**work.ticket.fields, **fields}
    stored = {name: value for name, value in merged.items() if value}
    return Applied({"fields": stored}, changed.retry.attempts)
