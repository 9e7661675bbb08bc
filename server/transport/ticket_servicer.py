"""itsm.v1.TicketService: requests in, domain calls, responses out. Errors are mapped in one place
(server/transport/status.py, through the error interceptor)."""

from __future__ import annotations

from grpc import aio

from itsm.v1 import ticket_service_pb2, ticket_service_pb2_grpc
from server.service.queries import ListQuery
from server.transport.auth import caller_name
from server.transport.convert import (
    PROTO_TO_SLA,
    PROTO_TO_STATE,
    PROTO_TO_STATUS,
    VISIBILITY_FROM_PROTO,
    create_outcome,
    deadline_of,
    struct_to_dict,
    ticket_to_proto,
    violations_to_proto,
)
from server.transport.platforms import platform_name
from server.transport.services import Services

# Room kept in a ListTickets answer for the next page token and the message's own framing.
_PAGE_SLACK_BYTES = 2048


class TicketServicer(ticket_service_pb2_grpc.TicketServiceServicer):
    def __init__(self, services: Services, max_message_bytes: int) -> None:
        self._creation = services.creation
        self._lifecycle = services.lifecycle
        self._queries = services.queries
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
            dedup_key=request.dedup_key,
        )
        return ticket_service_pb2.CreateTicketResponse(
            ticket=ticket_to_proto(done.ticket), outcome=create_outcome(done.replayed, done.operation.result)
        )

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
            dedup_key=request.dedup_key,
        )
        return ticket_service_pb2.CreateTicketFromTemplateResponse(
            ticket=ticket_to_proto(done.ticket), outcome=create_outcome(done.replayed, done.operation.result)
        )

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
            dedup_key=request.dedup_key,
            status=PROTO_TO_STATUS.get(request.status, ""),
            open_only=request.open_only,
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

    async def UpdateTicket(
        self, request: ticket_service_pb2.UpdateTicketRequest, context: aio.ServicerContext
    ) -> ticket_service_pb2.UpdateTicketResponse:
        done = await self._lifecycle.update(
            ticket_id=request.id,
            request_id=request.request_id,
            fields=dict(request.fields),
            caller=caller_name(),
            deadline=deadline_of(context),
        )
        return ticket_service_pb2.UpdateTicketResponse(ticket=ticket_to_proto(done.ticket))

    async def AddComment(
        self, request: ticket_service_pb2.AddCommentRequest, context: aio.ServicerContext
    ) -> ticket_service_pb2.AddCommentResponse:
        done = await self._lifecycle.comment(
            ticket_id=request.id,
            request_id=request.request_id,
            body=request.body,
            visibility=VISIBILITY_FROM_PROTO.get(request.visibility, "INTERNAL"),
            caller=caller_name(),
            deadline=deadline_of(context),
        )
        return ticket_service_pb2.AddCommentResponse(
            ticket=ticket_to_proto(done.ticket), comment_id=str(done.operation.result.get("comment_id", ""))
        )

    async def ResolveTicket(
        self, request: ticket_service_pb2.ResolveTicketRequest, context: aio.ServicerContext
    ) -> ticket_service_pb2.ResolveTicketResponse:
        done = await self._lifecycle.resolve(
            ticket_id=request.id,
            request_id=request.request_id,
            resolution=request.resolution,
            notes=request.notes,
            caller=caller_name(),
            deadline=deadline_of(context),
        )
        return ticket_service_pb2.ResolveTicketResponse(ticket=ticket_to_proto(done.ticket))

    async def ReopenTicket(
        self, request: ticket_service_pb2.ReopenTicketRequest, context: aio.ServicerContext
    ) -> ticket_service_pb2.ReopenTicketResponse:
        done = await self._lifecycle.reopen(
            ticket_id=request.id,
            request_id=request.request_id,
            reason=request.reason,
            caller=caller_name(),
            deadline=deadline_of(context),
        )
        return ticket_service_pb2.ReopenTicketResponse(ticket=ticket_to_proto(done.ticket))
