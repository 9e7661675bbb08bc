"""Ticket creation use cases: validate (or render a template), then create exactly once through the
engine. What a caller asks is checked in full before anything is reserved or sent."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from clients.platform import PlatformSpec
from server.domain import errors
from server.domain.outcomes import outcome_of
from server.domain.records import CREATE, PENDING, OperationRecord, TicketRecord
from server.domain.rules import FieldRule
from server.domain.sla import ON_TRACK
from server.domain.sla import plan as plan_sla
from server.domain.validation import Violation, validate
from server.service.creation import CreateKind
from server.service.engine import Done, Engine, Request
from server.service.ports import NewTicket, SlaTargets, Telemetry
from server.service.requests import check_ids, fingerprint, summary
from server.service.settings import GatewayConfig
from server.service.templates import Templates


class TicketCreation:
    def __init__(
        self,
        config: GatewayConfig,
        engine: Engine,
        kind: CreateKind,
        templates: Templates,
        specs: Mapping[str, PlatformSpec],
        telemetry: Telemetry,
    ) -> None:
        self._config = config
        self._engine = engine
        self._kind = kind
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
    ) -> Done:
        started = time.perf_counter()
        try:
            check_ids(request_id, job_id)
            result = validate(self.rules(platform), fields, self._config.limits)
            if result.violations:
                self._telemetry.validation_errors(platform, [v.field for v in result.violations])
                raise errors.InvalidArgument(summary(result.violations), result.violations)
            payload_hash = fingerprint("create", platform, dict(fields), job_id)
            done = await self._create(
                platform, request_id, job_id, "", result.fields_with_defaults, payload_hash, caller, deadline
            )
        except BaseException as exc:
            self._observe(platform, outcome_of(exc), started)
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
    ) -> Done:
        started = time.perf_counter()
        platform = ""
        try:
            check_ids(request_id, job_id)
            spec = self._templates.get(template_name)
            platform = spec.platform
            outcome = self._templates.render(spec, variables, variables_size, job_id)
            if outcome.violations:
                raise errors.InvalidArgument(summary(outcome.violations), outcome.violations)
            payload_hash = fingerprint("template", template_name, dict(variables), job_id)
            done = await self._create(
                platform, request_id, job_id, template_name, outcome.fields, payload_hash, caller, deadline
            )
        except BaseException as exc:
            self._observe(platform, outcome_of(exc), started)
            raise
        self._observe(platform, "replayed" if done.replayed else "created", started, done)
        return done

    async def _create(
        self,
        platform: str,
        request_id: str,
        job_id: str,
        template_name: str,
        fields: dict[str, str],
        payload_hash: str,
        caller: str,
        deadline: float | None,
    ) -> Done:
        if platform not in self._specs:
            raise errors.FailedPrecondition(f"platform {platform} is not enabled in this gateway")
        ticket_id = str(uuid.uuid4())
        # The marker (and a generated request_id) derive from the ticket id, unique per reservation.
        request_id = request_id or f"gw-{ticket_id}"
        marker = f"itsmgw-{ticket_id}"
        ticket = TicketRecord(
            id=ticket_id,
            platform=platform,
            request_id=request_id,
            state=PENDING,
            job_id=job_id,
            template_name=template_name,
            fields=dict(fields),
            marker=marker,
            created_by=caller,
        )
        operation = OperationRecord(
            request_id=request_id,
            kind=CREATE,
            ticket_id=ticket_id,
            payload_hash=payload_hash,
            marker=marker,
            created_by=caller,
        )
        self._telemetry.annotate(ticket_id=ticket_id)
        new = NewTicket(ticket, self._sla(platform, fields))
        done = await self._engine.execute(Request(operation, self._kind, new, deadline))
        self._telemetry.annotate(ticket_id=done.ticket.id)
        if done.replayed:
            self._telemetry.idempotent_replay(platform)
        else:
            self._telemetry.retries(platform, done.attempts - 1)
        return done

    def _sla(self, platform: str, fields: Mapping[str, str]) -> SlaTargets | None:
        priority = self._specs[platform].priority_of(fields)
        plan = plan_sla(self._config.sla, platform, priority)
        if plan is None:
            return None
        return SlaTargets(priority, plan.response_seconds, plan.resolution_seconds, ON_TRACK)

    def _observe(self, platform: str, outcome: str, started: float, done: Done | None = None) -> None:
        self._telemetry.ticket_created(platform, outcome, time.perf_counter() - started)
        self._telemetry.annotate(platform=platform, outcome=outcome)
        if done is not None:
            self._telemetry.annotate(
                ticket_id=done.ticket.id, attempts=done.ticket.attempts, state=done.ticket.state
            )
