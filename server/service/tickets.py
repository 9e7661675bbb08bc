"""Ticket creation use cases: validate (or render a template), then create exactly once through the
engine. What a caller asks is checked in full before anything is reserved or sent."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from clients.platform import PlatformSpec
from server.domain import errors
from server.domain.outcomes import operation_outcome, outcome_of
from server.domain.records import CREATE, PENDING, OperationRecord, TicketRecord
from server.domain.rules import FieldRule
from server.domain.sla import ON_TRACK
from server.domain.sla import plan as plan_sla
from server.domain.validation import Violation, validate
from server.service.comments import comment_marker
from server.service.creation import CreateKind
from server.service.dedup import Create, Deduplication, attach_comment
from server.service.engine import Done, Engine, Request
from server.service.ports import NewTicket, SlaTargets, Telemetry
from server.service.requests import check_ids, fingerprint, summary
from server.service.settings import GatewayConfig
from server.service.templates import Templates

MAX_DEDUP_KEY = 255


def check_dedup_key(dedup_key: str) -> None:
    if len(dedup_key) > MAX_DEDUP_KEY or (dedup_key and not dedup_key.isprintable()):
        found = [Violation("dedup_key", f"must be at most {MAX_DEDUP_KEY} printable characters", "PATTERN")]
        raise errors.InvalidArgument(summary(found), found)


def _with_key(body: dict[str, Any], dedup_key: str) -> dict[str, Any]:
    """The fingerprinted payload: the dedup key is part of it. Without one, the body alone, as
    fingerprints were before keys existed, so a stored request_id still matches its repeat."""
    return {"body": body, "dedup_key": dedup_key} if dedup_key else body


@dataclass(frozen=True)
class _Wanted:
    """A create as the caller asked it, whatever its fields came from."""

    request_id: str
    job_id: str
    template_name: str
    dedup_key: str
    payload_hash: str
    caller: str
    deadline: float | None


class TicketCreation:
    def __init__(
        self,
        config: GatewayConfig,
        engine: Engine,
        kind: CreateKind,
        dedup: Deduplication,
        templates: Templates,
        specs: Mapping[str, PlatformSpec],
        telemetry: Telemetry,
    ) -> None:
        self._config = config
        self._engine = engine
        self._kind = kind
        self._dedup = dedup
        self._templates = templates
        self._specs = specs
        self._telemetry = telemetry

    def validate(self, platform: str, fields: Mapping[str, str]) -> list[Violation]:
        return validate(self.rules(platform), fields, self._config.limits).violations

    def rules(self, platform: str) -> Mapping[str, FieldRule]:
        if platform not in self._config.field_mapping:
            known = ", ".join(self._config.field_mapping)
            raise errors.InvalidArgument(
                "platform is required",
                [Violation("platform", f"must name a platform: {known}", "REQUIRED")],
            )
        return self._config.field_mapping[platform]

    async def create(
        self,
        *,
        platform: str,
        request_id: str,
        job_id: str,
        fields: Mapping[str, str],
        caller: str,
        deadline: float | None,
        dedup_key: str = "",
    ) -> Done:
        started = time.perf_counter()
        try:
            check_ids(request_id, job_id)
            check_dedup_key(dedup_key)
            result = validate(self.rules(platform), fields, self._config.limits)
            if result.violations:
                self._telemetry.validation_errors(platform, [v.field for v in result.violations])
                raise errors.InvalidArgument(summary(result.violations), result.violations)
            payload_hash = fingerprint("create", platform, _with_key(dict(fields), dedup_key), job_id)
            wanted = _Wanted(request_id, job_id, "", dedup_key, payload_hash, caller, deadline)
            done = await self._create(platform, result.fields_with_defaults, "", wanted)
        except BaseException as exc:
            self._observe(platform, outcome_of(exc), started, error=exc)
            raise
        self._observe(platform, "replayed" if done.replayed else "created", started, done)
        return done

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
        dedup_key: str = "",
        fit: bool = False,
    ) -> Done:
        """fit: cut string fields to their length rather than refuse them (domain/fitting.py)."""
        started = time.perf_counter()
        platform = ""
        try:
            check_ids(request_id, job_id)
            check_dedup_key(dedup_key)
            spec = self._templates.get(template_name)
            platform = spec.platform
            outcome = self._templates.render(spec, variables, variables_size, job_id, fit=fit)
            if outcome.violations:
                raise errors.InvalidArgument(summary(outcome.violations), outcome.violations)
            body = _with_key(dict(variables), dedup_key)
            payload_hash = fingerprint("template", template_name, body, job_id)
            wanted = _Wanted(request_id, job_id, template_name, dedup_key, payload_hash, caller, deadline)
            done = await self._create(platform, outcome.fields, outcome.repeat_comment, wanted)
        except BaseException as exc:
            self._observe(platform, outcome_of(exc), started, error=exc)
            raise
        self._observe(platform, "replayed" if done.replayed else "created", started, done)
        return done

    async def _create(
        self, platform: str, fields: dict[str, str], repeat_comment: str, wanted: _Wanted
    ) -> Done:
        if platform not in self._specs:
            raise errors.FailedPrecondition(f"platform {platform} is not enabled in this gateway")
        ticket_id = str(uuid.uuid4())
        # The marker (and a generated request_id) derive from the ticket id, unique per reservation.
        request_id = wanted.request_id or f"gw-{ticket_id}"
        marker = f"itsmgw-{ticket_id}"
        ticket = TicketRecord(
            id=ticket_id,
            platform=platform,
            request_id=request_id,
            state=PENDING,
            job_id=wanted.job_id,
            template_name=wanted.template_name,
            fields=dict(fields),
            marker=marker,
            created_by=wanted.caller,
            dedup_key=wanted.dedup_key,
        )
        operation = OperationRecord(
            request_id=request_id,
            kind=CREATE,
            ticket_id=ticket_id,
            payload_hash=wanted.payload_hash,
            # A comment it may add (attaching, reopening) carries this marker; a new ticket, the
            # ticket's own.
            marker=comment_marker(request_id) if wanted.dedup_key else marker,
            created_by=wanted.caller,
        )
        self._telemetry.annotate(ticket_id=ticket_id)
        new = NewTicket(ticket, self._sla(platform, fields))
        if wanted.dedup_key:
            comment = attach_comment(fields, repeat_comment)
            done = await self._dedup.create(Create(operation, ticket, new, comment, wanted.deadline))
        else:
            done = await self._engine.execute(Request(operation, self._kind, new, wanted.deadline))
        self._telemetry.annotate(ticket_id=done.ticket.id)
        if done.replayed:
            self._telemetry.idempotent_replay(platform)
        else:
            decision = str(done.operation.result.get("outcome", "CREATED")).lower()
            if wanted.dedup_key:
                self._telemetry.dedup_decision(platform, decision)
        return done

    def _sla(self, platform: str, fields: Mapping[str, str]) -> SlaTargets | None:
        priority = self._specs[platform].priority_of(fields)
        plan = plan_sla(self._config.sla, platform, priority)
        if plan is None:
            return None
        return SlaTargets(priority, plan.response_seconds, plan.resolution_seconds, ON_TRACK)

    def _observe(
        self,
        platform: str,
        outcome: str,
        started: float,
        done: Done | None = None,
        error: BaseException | None = None,
    ) -> None:
        seconds = time.perf_counter() - started
        self._telemetry.ticket_created(platform, outcome, seconds)
        replayed = done is not None and done.replayed
        operation = operation_outcome(error, replayed=replayed)
        self._telemetry.operation_finished(platform, CREATE, operation, seconds)
        self._telemetry.annotate(platform=platform, outcome=outcome)
        if done is not None:
            self._telemetry.annotate(
                ticket_id=done.ticket.id, attempts=done.ticket.attempts, state=done.ticket.state
            )
