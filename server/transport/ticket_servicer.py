"""itsm.v1.TicketService: requests in, domain calls, responses out. Errors are mapped in one place
(server/transport/status.py, through the error interceptor)."""

from __future__ import annotations

from grpc import aio

from itsm.v1 import ticket_service_pb2, ticket_service_pb2_grpc
from server.service.queries import ListQuery, TicketQueries
from server.service.tickets import TicketCreation
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

# Room kept in a ListTickets answer for the next page token and the message's own framing.
_PAGE_SLACK_BYTES = 2048


class TicketServicer(ticket_service_pb2_grpc.TicketServiceServicer):
    def __init__(self, creation: TicketCreation, queries: TicketQueries, max_message_bytes: int) -> None:
        self._creation = creation
        self._queries = queries
        self._max_page_bytes = max_message_bytes - _PAGE_SLACK_BYTES

    async def CreateTicket(
        self, request: ticket_service_pb2.CreateTicketRequest, context: aio.ServicerContext
    ) -> ticket_service_pb2.CreateTicketResponse:
        done = await self._creation.create(
            platform=platform_name(request.platform),
            request_id=request.request_id,
            job_id=request.job_id,
            fields=dict(request.fields),
            caller=caller_name(),
            deadline=deadline_of(context),
        )
        return ticket_service_pb2.CreateTicketResponse(ticket=ticket_to_proto(done.ticket))

    async def CreateTicketFromTemplate(
        self,
        request: ticket_service_pb2.CreateTicketFromTemplateRequest,
        context: aio.ServicerContext,
    ) -> ticket_service_pb2.CreateTicketFromTemplateResponse:
        done = await self._creation.create_from_template(
            template_name=request.template_name,
            request_id=request.request_id,
            job_id=request.job_id,
            variables=struct_to_dict(request.variables),
            variables_size=request.variables.ByteSize(),
            caller=caller_name(),
            deadline=deadline_of(context),
        )
        return ticket_service_pb2.CreateTicketFromTemplateResponse(ticket=ticket_to_proto(done.ticket))

    async def ValidateTicket(
        self, request: ticket_service_pb2.ValidateTicketRequest, context: aio.ServicerContext
    ) -> ticket_service_pb2.ValidateTicketResponse:
        violations = self._creation.validate(platform_name(request.platform), dict(request.fields))
        return ticket_service_pb2.ValidateTicketResponse(
            valid=not violations, violations=violations_to_proto(violations)
        )

    async def GetTicket(
        self, request: ticket_service_pb2.GetTicketRequest, context: aio.ServicerContext
    ) -> ticket_service_pb2.GetTicketResponse:
        record = await self._queries.get(request.id)
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
        page = await self._queries.list(query)
        # A page always fits the message size limit: when its tickets are large, it ends early and
        # the next token starts after the last ticket that fit.
        tickets, size = [], 0
        for index, record in enumerate(page.records):
            ticket = ticket_to_proto(record)
            size += ticket.ByteSize() + 8  # the field's tag and length prefix
            if tickets and size > self._max_page_bytes:
                return ticket_service_pb2.ListTicketsResponse(
                    tickets=tickets, next_page_token=page.token_after(index - 1)
                )
            tickets.append(ticket)
        return ticket_service_pb2.ListTicketsResponse(tickets=tickets, next_page_token=page.next_page_token)
