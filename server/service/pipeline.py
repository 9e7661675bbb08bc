"""The ticket pipeline: validate -> reserve request_id -> send once -> record the outcome.

Exactly-once creation rests on three things: the store's unique request_id (one insert reserves it),
a correlation marker stamped on the platform ticket (looked up before any re-send), and compare-and-set
take-overs so only one process ever sends for a ticket at a time. No transaction or pooled connection
is held across the platform call; the final write is shielded from the caller's cancellation.
This module never imports grpc: it raises server.domain.errors, which server/status.py maps.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import time
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from clients.errors import ErrorKind, PlatformError
from clients.platform import CreatedTicket, PlatformClient, PlatformSpec
from server.domain import errors
from server.domain.outcomes import outcome_of
from server.domain.payload import build_payload
from server.domain.records import TRANSIENT_KINDS, TicketRecord
from server.domain.rules import FieldRule
from server.domain.sla import ON_TRACK
from server.domain.sla import plan as plan_sla
from server.domain.templates import (
    JobContext,
    TemplateOutcome,
    TemplateSpec,
    compiled_template,
    render_and_validate,
)
from server.domain.validation import Violation, validate
from server.service.ports import InvalidPageToken, Telemetry, TicketFilter, TicketStore
from server.service.settings import GatewayConfig

log = logging.getLogger("itsm.pipeline")

MAX_REQUEST_ID = 128
MAX_JOB_ID = 255
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_PRINTABLE = re.compile(r"[\x21-\x7e]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# Failures that replay as the same error: the payload or the gateway's configuration is wrong.
_PERMANENT: dict[ErrorKind, str] = {
    ErrorKind.PAYLOAD_REJECTED: "payload_rejected",
    ErrorKind.AUTH: "auth",
    ErrorKind.NOT_FOUND: "not_found",
    ErrorKind.CONFLICT: "conflict",
    ErrorKind.BAD_RESPONSE: "bad_response",
}


@dataclass(frozen=True)
class ListQuery:
    page_size: int = 0
    page_token: str = ""
    platform: str = ""
    state: str = ""
    job_id: str = ""
    request_id: str = ""
    external_key: str = ""
    sla_state: str = ""


@dataclass(frozen=True)
class TemplatePreview:
    platform: str
    fields: dict[str, str]
    violations: list[Violation]


@dataclass(frozen=True)
class _Work:
    """Everything needed to send one reserved ticket."""

    record: TicketRecord
    deadline: float | None


class TicketPipeline:
    def __init__(
        self,
        config: GatewayConfig,
        store: TicketStore,
        clients: Mapping[str, PlatformClient],
        telemetry: Telemetry,
        specs: Mapping[str, PlatformSpec],
    ) -> None:
        self.config = config
        self.store = store
        self.clients = clients
        self.metrics = telemetry
        self.specs = specs
        self._in_flight: dict[str, asyncio.Future[None]] = {}
        self._background: set[asyncio.Task[Any]] = set()

    # ----------------------------------------------------------------------------- validation

    def validate(self, platform: str, fields: Mapping[str, str]) -> list[Violation]:
        rules = self._rules(platform)
        return validate(rules, fields, self.config.limits).violations

    def _rules(self, platform: str) -> Mapping[str, FieldRule]:
        if platform not in self.config.field_mapping:
            known = ", ".join(self.config.field_mapping)
            raise errors.InvalidArgument(
                "platform is required",
                [Violation("platform", f"must name a platform: {known}", "REQUIRED")],
            )
        return self.config.field_mapping[platform]

    # ----------------------------------------------------------------------------- templates

    def list_templates(self, platform: str) -> list[TemplateSpec]:
        specs = self.config.templates.values()
        return sorted((s for s in specs if not platform or s.platform == platform), key=lambda s: s.name)

    def get_template(self, name: str) -> TemplateSpec:
        spec = self.config.templates.get(name)
        if spec is None:
            self.metrics.template_error(name)
            raise errors.NotFound(f"template {_quote(name)} not found")
        return spec

    def preview_template(
        self, name: str, variables: Mapping[str, Any], variables_size: int, job_id: str
    ) -> TemplatePreview:
        spec = self.get_template(name)
        outcome = self._render(spec, variables, variables_size, job_id)
        return TemplatePreview(spec.platform, outcome.rendered, outcome.violations)

    def _render(
        self, spec: TemplateSpec, variables: Mapping[str, Any], variables_size: int, job_id: str
    ) -> TemplateOutcome:
        job = JobContext(id=job_id, time=datetime.now(UTC))
        outcome = render_and_validate(
            compiled_template(spec),
            variables,
            job,
            self.config.field_mapping[spec.platform],
            self.config.limits,
            variables_size,
        )
        if outcome.violations:
            self.metrics.template_error(spec.name)
            self.metrics.validation_errors(spec.platform, [v.field for v in outcome.violations])
        return outcome

    # ----------------------------------------------------------------------------- creation

    async def create(
        self,
        *,
        platform: str,
        request_id: str,
        job_id: str,
        fields: Mapping[str, str],
        caller: str,
        deadline: float | None,
    ) -> TicketRecord:
        started = time.perf_counter()
        try:
            self._check_ids(request_id, job_id)
            result = validate(self._rules(platform), fields, self.config.limits)
            if result.violations:
                self.metrics.validation_errors(platform, [v.field for v in result.violations])
                raise errors.InvalidArgument(_summary(result.violations), result.violations)
            fingerprint = _fingerprint("create", platform, dict(fields), job_id)
            record, sent = await self._create_once(
                platform, request_id, job_id, "", result.fields_with_defaults, fingerprint, caller, deadline
            )
        except BaseException as exc:
            self._observe(platform, outcome_of(exc), started)
            raise
        self._observe(platform, "created" if sent else "replayed", started, record)
        return record

    async def create_from_template(
        self,
        *,
        template_name: str,
        request_id: str,
        job_id: str,
        variables: Mapping[str, Any],
        variables_size: int,
        caller: str,
        deadline: float | None,
    ) -> TicketRecord:
        started = time.perf_counter()
        platform = ""
        try:
            self._check_ids(request_id, job_id)
            spec = self.get_template(template_name)
            platform = spec.platform
            outcome = self._render(spec, variables, variables_size, job_id)
            if outcome.violations:
                raise errors.InvalidArgument(_summary(outcome.violations), outcome.violations)
            fingerprint = _fingerprint("template", template_name, dict(variables), job_id)
            record, sent = await self._create_once(
                spec.platform,
                request_id,
                job_id,
                template_name,
                outcome.fields,
                fingerprint,
                caller,
                deadline,
            )
        except BaseException as exc:
            self._observe(platform, outcome_of(exc), started)
            raise
        self._observe(platform, "created" if sent else "replayed", started, record)
        return record

    def _observe(
        self, platform: str, outcome: str, started: float, record: TicketRecord | None = None
    ) -> None:
        self.metrics.ticket_created(platform, outcome, time.perf_counter() - started)
        self.metrics.annotate(platform=platform, outcome=outcome)
        if record is not None:
            self.metrics.annotate(ticket_id=record.id, attempts=record.attempts, state=record.state)

    def _check_ids(self, request_id: str, job_id: str) -> None:
        found = []
        if len(request_id) > MAX_REQUEST_ID or (request_id and not _PRINTABLE.fullmatch(request_id)):
            found.append(
                Violation(
                    "request_id",
                    f"must be at most {MAX_REQUEST_ID} printable ASCII characters without spaces",
                    "PATTERN",
                )
            )
        found += _text_violations("job_id", job_id)
        if found:
            raise errors.InvalidArgument(_summary(found), found)

    async def _create_once(
        self,
        platform: str,
        request_id: str,
        job_id: str,
        template_name: str,
        fields: dict[str, str],
        fingerprint: str,
        caller: str,
        deadline: float | None,
    ) -> tuple[TicketRecord, bool]:
        client = self.clients.get(platform)
        if client is None:
            raise errors.FailedPrecondition(f"platform {platform} is not enabled in this gateway")
        now = _now()
        candidate = TicketRecord.new(
            platform=platform,
            request_id=request_id or "pending",
            job_id=job_id,
            template_name=template_name,
            fields=fields,
            payload_hash=fingerprint,
            created_by=caller,
            now=now,
            lease_until=now + timedelta(seconds=self.config.idempotency.pending_lease_seconds),
        )
        # The marker (and a generated request_id) derive from the ticket id, unique per reservation.
        candidate = replace(
            candidate,
            marker=f"itsmgw-{candidate.id}",
            request_id=request_id or f"gw-{candidate.id}",
        )
        sla = plan_sla(self.config.sla, platform, self.specs[platform].priority_of(fields), now)
        if sla is not None:
            candidate = replace(
                candidate,
                priority=sla.priority,
                response_due=sla.response_due,
                resolution_due=sla.resolution_due,
                sla_state=ON_TRACK,
            )
        record, reserved = await self.store.reserve(candidate)
        self.metrics.annotate(ticket_id=record.id)
        if reserved:
            return await self._send_tracked(_Work(record, deadline), look_up_first=False), True
        if record.payload_hash != fingerprint:
            raise errors.FailedPrecondition(
                f"request_id {_quote(request_id)} was already used with a different payload "
                f"(ticket {record.id}); use a new request_id for a different ticket"
            )
        return await self._replay(record, deadline)

    async def _replay(self, record: TicketRecord, deadline: float | None) -> tuple[TicketRecord, bool]:
        """The stored outcome of a repeated request_id, and whether this call had to send."""
        if record.state == "CREATED":
            self.metrics.idempotent_replay(record.platform)
            return record, False
        if record.state == "PENDING":
            if not _lease_expired(record):
                return await self._wait_for(record, deadline)
            expected = "PENDING"  # its holder is gone (crash, or an uncertain outcome): take it over
        elif record.error_kind in TRANSIENT_KINDS:
            expected = "FAILED"
        else:
            raise _error_from_record(record)
        taken = await self.store.take_over(
            record.id, expected_state=expected, lease_until=self._lease(), now=_now()
        )
        if taken is None:  # another call took it over first: follow that one
            latest = await self.store.get(record.id)
            return await self._replay(latest, deadline) if latest else (record, False)
        return await self._send_tracked(_Work(taken, deadline), look_up_first=True), True

    async def _wait_for(self, record: TicketRecord, deadline: float | None) -> tuple[TicketRecord, bool]:
        """A repeat while the ticket is PENDING: wait for its outcome (or for its lease to run out,
        then take it over), bounded by the caller's deadline; never send while another holds it."""
        budget = self.config.idempotency.in_flight_wait_seconds
        if deadline is not None:
            budget = min(budget, deadline - time.monotonic() - 0.05)
        until = time.monotonic() + max(budget, 0.0)
        delay = 0.02
        latest: TicketRecord | None = record
        while latest is not None and latest.state == "PENDING" and not _lease_expired(latest):
            remaining = until - time.monotonic()
            if remaining <= 0:
                return latest, False  # still PENDING: the caller may ask again or list by request_id
            future = self._in_flight.get(record.id)
            if future is not None:  # same process: wake up the moment it settles
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(future), remaining)
            else:  # another process (or nobody, until the lease runs out): poll with a growing interval
                await asyncio.sleep(min(delay, remaining))
                delay = min(delay * 2, 0.5)
            latest = await self.store.get(record.id)
        if latest is None:
            return record, False
        if latest.state == "FAILED" and latest.error_kind not in TRANSIENT_KINDS:
            raise _error_from_record(latest)
        return await self._replay(latest, deadline)

    def _lease(self) -> datetime:
        return _now() + timedelta(seconds=self.config.idempotency.pending_lease_seconds)

    async def _send_tracked(self, work: _Work, *, look_up_first: bool) -> TicketRecord:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._in_flight[work.record.id] = future
        try:
            return await self._send(work, look_up_first=look_up_first)
        finally:
            self._in_flight.pop(work.record.id, None)
            future.set_result(None)

    async def _send(self, work: _Work, *, look_up_first: bool) -> TicketRecord:
        record = work.record
        client = self.clients[record.platform]
        try:
            payload = build_payload(self.config.field_mapping[record.platform], record.fields)
        except ValueError as exc:  # the field mapping changed under a stored ticket
            error = PlatformError(
                platform=record.platform, operation="create", kind=ErrorKind.BAD_RESPONSE,
                message=f"the stored fields no longer fit the configured field mapping: {exc}",
            )
            await self._shielded(self._record_failure(record, error, uncertain=False))
            raise errors.FailedPrecondition(str(error)) from None
        try:
            created = None
            if look_up_first:
                created = await client.find_by_marker(record.marker, deadline=work.deadline)
            if created is None:
                created = await client.create(payload, record.marker, deadline=work.deadline)
        except PlatformError as exc:
            self.metrics.retries(record.platform, exc.attempts - 1)
            # After an earlier uncertain attempt, any transient failure leaves it uncertain too.
            uncertain = _uncertain(exc) or (look_up_first and _failure_kind(exc) in TRANSIENT_KINDS)
            await self._shielded(self._record_failure(record, exc, uncertain=uncertain))
            raise self._translate(record, exc, uncertain) from None
        except asyncio.CancelledError:
            # The caller went away mid-call: the request may still land. The ticket stays PENDING
            # under a lease; a repeat or the reconciler looks the marker up before sending again.
            self._spawn(self._record_failure(record, None, uncertain=True))
            raise
        self.metrics.retries(record.platform, created.retry.attempts - 1)
        return await self._shielded(self._record_success(record, created))

    async def _record_success(self, record: TicketRecord, created: CreatedTicket) -> TicketRecord:
        stored = await self.store.record_created(
            record.id,
            external_id=created.external_id,
            external_key=created.external_key,
            url=created.url,
            attempts=record.attempts + created.retry.attempts,
            now=_now(),
            lease=record.lease_until,
            record=record,
        )
        return stored or (await self.store.get(record.id)) or record

    async def _record_failure(
        self, record: TicketRecord, exc: PlatformError | None, *, uncertain: bool
    ) -> None:
        message = str(exc) if exc else "the call was cancelled before the platform answered"
        attempts = record.attempts + (exc.attempts if exc else 0)
        if uncertain:
            # The platform may still apply the request for up to a whole budget: settle after that.
            await self.store.note_pending(
                record.id,
                error=message,
                attempts=attempts,
                lease=record.lease_until,
                record=record,
                lease_until=_now() + timedelta(seconds=self.config.timeout.total),
                now=_now(),
            )
            return
        await self.store.record_failed(
            record.id,
            error=message,
            error_kind=_failure_kind(exc) if exc else "cancelled",
            attempts=attempts,
            now=_now(),
            lease=record.lease_until,
            record=record,
        )

    def _translate(self, record: TicketRecord, exc: PlatformError, uncertain: bool) -> errors.GatewayError:
        message = str(exc)
        if uncertain:
            then = (
                f"ticket {record.id} stays PENDING: the platform may still create it; the same "
                "request_id (or the reconciler) settles it through its correlation marker"
            )
            if exc.kind is ErrorKind.DEADLINE:
                return errors.DeadlineExceeded(f"{message}; {then}")
            return errors.Unavailable(f"{message}; {then}")
        if exc.kind is ErrorKind.UNAVAILABLE:
            return errors.Unavailable(
                f"{message}; ticket {record.id} is FAILED and the same request_id tries again"
            )
        if exc.kind is ErrorKind.PAYLOAD_REJECTED:
            violations = platform_violations(
                self.config.field_mapping[record.platform], self.specs[record.platform], exc
            )
            return errors.InvalidArgument(message, violations)
        return errors.FailedPrecondition(message)

    async def _shielded(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Runs a final write to completion even if the caller cancels while it runs."""
        task = self._spawn(coro)
        return await asyncio.shield(task)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # ----------------------------------------------------------------------------- reconciliation

    async def reconcile_once(self, limit: int = 100) -> int:
        """Settles PENDING tickets whose lease ran out (crash, cancelled call, uncertain outcome):
        adopts the platform's ticket found by the marker, or sends. Returns how many it tried."""
        settled = 0
        for stale in await self.store.expired_pending(_now(), limit):
            if stale.platform not in self.clients or stale.id in self._in_flight:
                continue
            taken = await self.store.take_over(
                stale.id, expected_state="PENDING", lease_until=self._lease(), now=_now()
            )
            if taken is None:
                continue
            deadline = time.monotonic() + self.config.timeout.total
            try:
                await self._send_tracked(_Work(taken, deadline), look_up_first=True)
            except errors.GatewayError as exc:
                log.warning("reconciling ticket %s: %s", taken.id, exc)
            settled += 1
        return settled

    async def drain(self) -> None:
        """Waits for shielded final writes still running (used at shutdown)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    # ----------------------------------------------------------------------------- reads

    async def get(self, ticket_id: str) -> TicketRecord:
        if not _UUID.fullmatch(ticket_id):
            raise errors.InvalidArgument(
                "id must be a ticket UUID",
                [Violation("id", "must be a lowercase UUID like 3f1c2a4e-...", "PATTERN")],
            )
        record = await self.store.get(ticket_id)
        if record is None:
            raise errors.NotFound(f"ticket {ticket_id} not found")
        return record

    async def list(self, query: ListQuery) -> tuple[list[TicketRecord], str]:
        if query.page_size < 0:
            raise errors.InvalidArgument(
                "page_size must not be negative",
                [Violation("page_size", "must be 0 (default) or positive", "MIN")],
            )
        found = [
            v
            for name in ("job_id", "request_id", "external_key")
            for v in _text_violations(name, getattr(query, name))
        ]
        if found:
            raise errors.InvalidArgument(_summary(found), found)
        page_size = min(query.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        filters = TicketFilter(
            platform=query.platform,
            state=query.state,
            job_id=query.job_id,
            request_id=query.request_id,
            external_key=query.external_key,
            sla_state=query.sla_state,
        )
        try:
            page = await self.store.page(filters, page_size, query.page_token)
        except InvalidPageToken as exc:
            raise errors.InvalidArgument(
                str(exc), [Violation("page_token", str(exc), "INVALID")]
            ) from None
        return page.records, page.next_page_token


def platform_violations(
    rules: Mapping[str, FieldRule], spec: PlatformSpec, exc: PlatformError
) -> list[Violation]:
    """Platform field errors renamed to canonical fields (short_description -> summary)."""
    by_platform_name = {spec.error_field(rule.path): name for name, rule in rules.items()}
    return [
        Violation(by_platform_name.get(field, field), message, "PLATFORM_REJECTED")
        for field, message in exc.field_errors.items()
    ] or [Violation("fields", exc.message or "rejected by the platform", "PLATFORM_REJECTED")]


def _text_violations(name: str, value: str) -> list[Violation]:
    """Identifiers are stored and matched as text: bounded, and no control characters (PostgreSQL
    refuses NUL outright)."""
    if len(value) > MAX_JOB_ID:
        return [Violation(name, f"must be at most {MAX_JOB_ID} characters", "MAX_LENGTH")]
    if _CONTROL.search(value):
        return [Violation(name, "must not contain control characters", "PATTERN")]
    return []


def _uncertain(exc: PlatformError) -> bool:
    """The request may have been applied: a cut connection, a timeout, the caller's deadline."""
    return exc.ambiguous or exc.kind is ErrorKind.DEADLINE


def _lease_expired(record: TicketRecord) -> bool:
    return record.lease_until is not None and record.lease_until < _now()


def _failure_kind(exc: PlatformError) -> str:
    if exc.kind is ErrorKind.DEADLINE:
        return "deadline"
    if exc.ambiguous:
        return "ambiguous"
    if exc.kind is ErrorKind.UNAVAILABLE:
        return "unavailable"
    return _PERMANENT.get(exc.kind, "bad_response")


def _error_from_record(record: TicketRecord) -> errors.GatewayError:
    """The same error a stored permanent failure first answered with."""
    message = f"{record.last_error} (stored outcome of request_id {_quote(record.request_id)})"
    if record.error_kind == "payload_rejected":
        return errors.InvalidArgument(message, [Violation("fields", record.last_error, "PLATFORM_REJECTED")])
    if record.error_kind in TRANSIENT_KINDS:
        return errors.Unavailable(message)
    return errors.FailedPrecondition(message)


def _fingerprint(kind: str, target: str, body: Mapping[str, Any], job_id: str) -> str:
    canonical = json.dumps([kind, target, body, job_id], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _summary(violations: Sequence[Violation]) -> str:
    first = violations[0]
    more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
    return f"invalid request: {first.field}: {first.description}{more}"


def _quote(value: str, limit: int = 80) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")


def _now() -> datetime:
    return datetime.now(UTC)
