"""gRPC servicers: proto <-> domain translation and nothing else.

Errors raised by the pipeline become statuses in server/status.py (through ErrorInterceptor).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2
from grpc import aio

from itsm.v1 import (
    common_pb2,
    template_service_pb2,
    template_service_pb2_grpc,
    ticket_pb2,
    ticket_service_pb2,
    ticket_service_pb2_grpc,
)
from server import errors
from server.auth import caller_name
from server.config import TemplateSpec
from server.pipeline import ListQuery, TicketPipeline
from server.store import TicketRecord
from server.validation import Violation

_PLATFORM_TO_NAME = {
    common_pb2.PLATFORM_SERVICENOW: "servicenow",
    common_pb2.PLATFORM_JIRA: "jira",
}
_NAME_TO_PLATFORM = {name: value for value, name in _PLATFORM_TO_NAME.items()}
_STATE_TO_PROTO = {
    "PENDING": common_pb2.TICKET_STATE_PENDING,
    "CREATED": common_pb2.TICKET_STATE_CREATED,
    "FAILED": common_pb2.TICKET_STATE_FAILED,
}
_PROTO_TO_STATE = {value: name for name, value in _STATE_TO_PROTO.items()}
_SLA_TO_PROTO = {
    "ON_TRACK": common_pb2.SLA_STATE_ON_TRACK,
    "AT_RISK": common_pb2.SLA_STATE_AT_RISK,
    "BREACHED": common_pb2.SLA_STATE_BREACHED,
    "MET": common_pb2.SLA_STATE_MET,
}
_PROTO_TO_SLA = {value: name for name, value in _SLA_TO_PROTO.items()}


def platform_name(value: int) -> str:
    """"" for PLATFORM_UNSPECIFIED or an unknown number: the pipeline decides what that means."""
    return _PLATFORM_TO_NAME.get(value, "")


def deadline_of(context: aio.ServicerContext) -> float | None:
    """The caller's deadline as an absolute time.monotonic(), or None when it set none."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    try:
        return json_format.MessageToDict(struct)
    except ValueError as exc:  # NaN or Infinity: not representable as a template value
        raise errors.InvalidArgument(
            "variables must hold JSON values",
            [Violation("variables", f"must hold JSON values: {exc}", "TYPE")],
        ) from None


def _timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def ticket_to_proto(record: TicketRecord) -> ticket_pb2.Ticket:
    ticket = ticket_pb2.Ticket(
        id=record.id,
        platform=_NAME_TO_PLATFORM.get(record.platform, common_pb2.PLATFORM_UNSPECIFIED),
        state=_STATE_TO_PROTO.get(record.state, common_pb2.TICKET_STATE_UNSPECIFIED),
        request_id=record.request_id,
        job_id=record.job_id,
        template_name=record.template_name,
        external_id=record.external_id,
        external_key=record.external_key,
        url=record.url,
        fields=record.fields,
        attempts=record.attempts,
        last_error=record.last_error,
        create_time=_timestamp(record.create_time),
        update_time=_timestamp(record.update_time),
        created_by=record.created_by,
    )
    _fill_sla(ticket.sla, record)
    return ticket


def _fill_sla(sla: common_pb2.Sla, record: TicketRecord) -> None:
    sla.state = _SLA_TO_PROTO.get(record.sla_state, common_pb2.SLA_STATE_UNSPECIFIED)
    sla.priority = record.priority
    for value, field in (
        (record.response_due, "response_due_time"),
        (record.resolution_due, "resolution_due_time"),
        (record.acknowledged_at, "acknowledged_time"),
        (record.resolved_at, "resolved_time"),
    ):
        ts = _timestamp(value)
        if ts is not None:
            getattr(sla, field).CopyFrom(ts)


def violations_to_proto(violations: list[Violation]) -> list[common_pb2.FieldViolation]:
    return [
        common_pb2.FieldViolation(field=v.field, description=v.description, reason=v.reason)
        for v in violations
    ]


def template_to_proto(spec: TemplateSpec) -> template_service_pb2.Template:
    return template_service_pb2.Template(
        name=spec.name,
        platform=_NAME_TO_PLATFORM[spec.platform],
        description=spec.description,
        required_variables=list(spec.required_variables),
        fields=dict(spec.fields),
    )


class TicketServicer(ticket_service_pb2_grpc.TicketServiceServicer):
    def __init__(self, pipeline: TicketPipeline) -> None:
        self._pipeline = pipeline

    async def CreateTicket(
        self, request: ticket_service_pb2.CreateTicketRequest, context: aio.ServicerContext
    ) -> ticket_service_pb2.CreateTicketResponse:
        record = await self._pipeline.create(
            platform=platform_name(request.platform),
            request_id=request.request_id,
            job_id=request.job_id,
            fields=dict(request.fields),
            caller=caller_name(),
            deadline=deadline_of(context),
        )
        return ticket_service_pb2.CreateTicketResponse(ticket=ticket_to_proto(record))

    async def CreateTicketFromTemplate(
        self,
        request: ticket_service_pb2.CreateTicketFromTemplateRequest,
        context: aio.ServicerContext,
    ) -> ticket_service_pb2.CreateTicketFromTemplateResponse:
        record = await self._pipeline.create_from_template(
            template_name=request.template_name,
            request_id=request.request_id,
            job_id=request.job_id,
            variables=struct_to_dict(request.variables),
            variables_size=request.variables.ByteSize(),
            caller=caller_name(),
            deadline=deadline_of(context),
        )
        return ticket_service_pb2.CreateTicketFromTemplateResponse(ticket=ticket_to_proto(record))

    async def ValidateTicket(
        self, request: ticket_service_pb2.ValidateTicketRequest, context: aio.ServicerContext
    ) -> ticket_service_pb2.ValidateTicketResponse:
        violations = self._pipeline.validate(platform_name(request.platform), dict(request.fields))
        return ticket_service_pb2.ValidateTicketResponse(
            valid=not violations, violations=violations_to_proto(violations)
        )

    async def GetTicket(
        self, request: ticket_service_pb2.GetTicketRequest, context: aio.ServicerContext
    ) -> ticket_service_pb2.GetTicketResponse:
        record = await self._pipeline.get(request.id)
        return ticket_service_pb2.GetTicketResponse(ticket=ticket_to_proto(record))

    async def ListTickets(
        self, request: ticket_service_pb2.ListTicketsRequest, context: aio.ServicerContext
    ) -> ticket_service_pb2.ListTicketsResponse:
        query = ListQuery(
            page_size=request.page_size,
            page_token=request.page_token,
            platform=platform_name(request.platform),
            state=_PROTO_TO_STATE.get(request.state, ""),
            job_id=request.job_id,
            request_id=request.request_id,
            external_key=request.external_key,
            sla_state=_PROTO_TO_SLA.get(request.sla_state, ""),
        )
        records, next_token = await self._pipeline.list(query)
        return ticket_service_pb2.ListTicketsResponse(
            tickets=[ticket_to_proto(r) for r in records], next_page_token=next_token
        )


class TemplateServicer(template_service_pb2_grpc.TemplateServiceServicer):
    def __init__(self, pipeline: TicketPipeline) -> None:
        self._pipeline = pipeline

    async def ListTemplates(
        self, request: template_service_pb2.ListTemplatesRequest, context: aio.ServicerContext
    ) -> template_service_pb2.ListTemplatesResponse:
        specs = self._pipeline.list_templates(platform_name(request.platform))
        return template_service_pb2.ListTemplatesResponse(
            templates=[template_to_proto(s) for s in specs]
        )

    async def GetTemplate(
        self, request: template_service_pb2.GetTemplateRequest, context: aio.ServicerContext
    ) -> template_service_pb2.GetTemplateResponse:
        spec = self._pipeline.get_template(request.name)
        return template_service_pb2.GetTemplateResponse(template=template_to_proto(spec))

    async def RenderTemplate(
        self, request: template_service_pb2.RenderTemplateRequest, context: aio.ServicerContext
    ) -> template_service_pb2.RenderTemplateResponse:
        preview = self._pipeline.preview_template(
            request.name,
            struct_to_dict(request.variables),
            request.variables.ByteSize(),
            request.job_id,
        )
        return template_service_pb2.RenderTemplateResponse(
            platform=_NAME_TO_PLATFORM[preview.platform],
            fields=preview.fields,
            violations=violations_to_proto(preview.violations),
        )
