"""Proto messages <-> domain values. Pure translation: no decisions, no I/O."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2
from grpc import aio

from itsm.v1 import common_pb2, template_service_pb2, ticket_pb2
from server.domain import errors
from server.domain.records import CREATED, FAILED, PENDING, TicketRecord
from server.domain.templates import TemplateSpec
from server.domain.validation import Violation
from server.transport.platforms import platform_value

STATE_TO_PROTO = {
    PENDING: common_pb2.TICKET_STATE_PENDING,
    CREATED: common_pb2.TICKET_STATE_CREATED,
    FAILED: common_pb2.TICKET_STATE_FAILED,
}
PROTO_TO_STATE = {value: name for name, value in STATE_TO_PROTO.items()}
SLA_TO_PROTO = {
    "ON_TRACK": common_pb2.SLA_STATE_ON_TRACK,
    "AT_RISK": common_pb2.SLA_STATE_AT_RISK,
    "BREACHED": common_pb2.SLA_STATE_BREACHED,
    "MET": common_pb2.SLA_STATE_MET,
}
PROTO_TO_SLA = {value: name for name, value in SLA_TO_PROTO.items()}
# The gateway's ticket statuses are the enum's names without its prefix.
STATUS_TO_PROTO = {
    name.removeprefix("TICKET_STATUS_"): number
    for name, number in common_pb2.TicketStatus.items()
    if number != common_pb2.TICKET_STATUS_UNSPECIFIED
}
PROTO_TO_STATUS = {number: name for name, number in STATUS_TO_PROTO.items()}
OUTCOME_TO_PROTO = {
    "CREATED": common_pb2.CREATE_OUTCOME_CREATED,
    "ATTACHED": common_pb2.CREATE_OUTCOME_ATTACHED,
    "REOPENED": common_pb2.CREATE_OUTCOME_REOPENED,
}
VISIBILITY_FROM_PROTO = {
    common_pb2.COMMENT_VISIBILITY_PUBLIC: "PUBLIC",
    common_pb2.COMMENT_VISIBILITY_INTERNAL: "INTERNAL",
}


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


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    """As Timestamp.FromDatetime (a naive value is UTC), in a third of its time: a ticket has up
    to six, and every ticket answer converts them."""
    if value is None:
        return None
    since = (value if value.tzinfo is not None else value.replace(tzinfo=UTC)) - _EPOCH
    return timestamp_pb2.Timestamp(
        seconds=since.days * 86400 + since.seconds, nanos=since.microseconds * 1000
    )


def ticket_to_proto(record: TicketRecord) -> ticket_pb2.Ticket:
    ticket = ticket_pb2.Ticket(
        id=record.id,
        platform=platform_value(record.platform),
        state=STATE_TO_PROTO.get(record.state, common_pb2.TICKET_STATE_UNSPECIFIED),
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
        status=STATUS_TO_PROTO.get(record.status, common_pb2.TICKET_STATUS_UNSPECIFIED),
        dedup_key=record.dedup_key,
        resolution=record.resolution,
    )
    _fill_sla(ticket.sla, record)
    return ticket


def _fill_sla(sla: common_pb2.Sla, record: TicketRecord) -> None:
    sla.state = SLA_TO_PROTO.get(record.sla_state, common_pb2.SLA_STATE_UNSPECIFIED)
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
        platform=platform_value(spec.platform),
        description=spec.description,
        required_variables=list(spec.required_variables),
        fields=dict(spec.fields),
    )


def create_outcome(replayed: bool, result: dict[str, Any]) -> int:
    """What a create did, for its answer: a repeat of the request_id is REPLAYED."""
    if replayed:
        return common_pb2.CREATE_OUTCOME_REPLAYED
    return OUTCOME_TO_PROTO.get(str(result.get("outcome", "CREATED")), common_pb2.CREATE_OUTCOME_CREATED)
