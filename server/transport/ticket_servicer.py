"""itsm.v1.TicketService: requests in, domain calls, responses out. Errors are mapped in one place
(server/transport/status.py, through the error interceptor)."""

from __future__ import annotations

from grpc import aio

from itsm.v1 import ticket_service_pb2, ticket_service_pb2_grpc
from server.service.pipeline import ListQuery, TicketPipeline
from server.transport.auth import caller_name
from server.transport.convert import (
    PROTO_TO_SLA,
    PROTO_TO_STATE,
    deadline_of,
    struct_to_dict,
    ticket_to_proto,
    violations_to_proto,
)
from server.transport.platforms import platform_name


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
            state=PROTO_TO_STATE.get(request.state, ""),
            job_id=request.job_id,
            request_id=request.request_id,
            external_key=request.external_key,
            sla_state=PROTO_TO_SLA.get(request.sla_state, ""),
        )
        records, next_token = await self._pipeline.list(query)
        return ticket_service_pb2.ListTicketsResponse(
            tickets=[ticket_to_proto(r) for r in records], next_page_token=next_token
        )
