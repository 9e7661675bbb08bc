"""TicketService end to end: real gRPC -> pipeline -> real HTTP to the sandbox -> real database."""

from __future__ import annotations

import asyncio

import grpc

from itsm.v1 import common_pb2, ticket_service_pb2
from tests.gateway import running_gateway
from tests.rpc import field_violations, rpc_error

SN = common_pb2.PLATFORM_SERVICENOW
JIRA = common_pb2.PLATFORM_JIRA


def create(platform: int, request_id: str, job_id: str = "", **fields: str) -> ticket_service_pb2.CreateTicketRequest:
    return ticket_service_pb2.CreateTicketRequest(
        platform=platform, request_id=request_id, job_id=job_id, fields=fields
    )


async def test_servicenow_incident_is_created_read_back_and_listed(harness) -> None:
    reply = await harness.tickets.CreateTicket(
        create(SN, "sn-1", job_id="job-7", summary="Disk full on db-01", urgency="1", impact="2")
    )
    ticket = reply.ticket
    assert ticket.state == common_pb2.TICKET_STATE_CREATED
    assert ticket.external_key.startswith("INC")
    assert len(ticket.external_id) == 32
    assert ticket.url.startswith(harness.sandbox.url("servicenow"))
    assert ticket.fields["summary"] == "Disk full on db-01"
    assert ticket.fields["contact_type"] == "monitoring"  # a configured default
    assert ticket.attempts == 1
    assert ticket.job_id == "job-7"

    got = await harness.tickets.GetTicket(ticket_service_pb2.GetTicketRequest(id=ticket.id))
    assert got.ticket == ticket

    assert await harness.records("servicenow") == 1

    listed = await harness.tickets.ListTickets(ticket_service_pb2.ListTicketsRequest(job_id="job-7"))
    assert [t.id for t in listed.tickets] == [ticket.id]


async def test_jira_issue_is_created(harness) -> None:
    reply = await harness.tickets.CreateTicket(
        create(JIRA, "j-1", summary="Rotate TLS certs", labels="ops,certs", description="line 1\n\nline 2")
    )
    assert reply.ticket.external_key == "OPS-1"
    assert reply.ticket.url.endswith("/browse/OPS-1")
    assert await harness.records("jira") == 1


async def test_every_violation_comes_back_at_once_and_nothing_is_sent(harness) -> None:
    error = await rpc_error(
        harness.tickets.CreateTicket(
            create(
                JIRA,
                "bad-1",
                summary="x" * 300,
                priority="Urgent",
                labels="ok,has space",
                project="lower",
                colour="red",
            )
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == {
        "summary": "MAX_LENGTH",
        "priority": "ENUM",
        "labels[1]": "PATTERN",
        "project": "PATTERN",
        "colour": "UNKNOWN_FIELD",
    }
    assert await harness.records("jira") == 0
    listed = await harness.tickets.ListTickets(ticket_service_pb2.ListTicketsRequest())
    assert list(listed.tickets) == []


async def test_required_field_and_platform(harness) -> None:
    missing = await rpc_error(harness.tickets.CreateTicket(create(SN, "m-1", description="no summary")))
    assert field_violations(missing) == {"summary": "REQUIRED"}
    no_platform = await rpc_error(
        harness.tickets.CreateTicket(create(common_pb2.PLATFORM_UNSPECIFIED, "m-2", summary="s"))
    )
    assert no_platform.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(no_platform) == {"platform": "REQUIRED"}


async def test_validate_ticket_is_a_dry_run(harness) -> None:
    ok = await harness.tickets.ValidateTicket(
        ticket_service_pb2.ValidateTicketRequest(platform=SN, fields={"summary": "fine"})
    )
    assert ok.valid and list(ok.violations) == []
    bad = await harness.tickets.ValidateTicket(
        ticket_service_pb2.ValidateTicketRequest(platform=SN, fields={"impact": "9", "urgency": "x"})
    )
    assert not bad.valid
    assert {(v.field, v.reason) for v in bad.violations} == {
        ("summary", "REQUIRED"),
        ("impact", "ENUM"),
        ("urgency", "ENUM"),
    }
    assert await harness.records("servicenow") == 0


async def test_repeating_a_request_id_returns_the_same_ticket(harness) -> None:
    first = await harness.tickets.CreateTicket(create(SN, "same", summary="once"))
    again = await harness.tickets.CreateTicket(create(SN, "same", summary="once"))
    assert again.ticket.id == first.ticket.id
    assert again.ticket.external_id == first.ticket.external_id
    assert await harness.records("servicenow") == 1


async def test_fifty_concurrent_identical_requests_create_one_record(harness) -> None:
    calls = [harness.tickets.CreateTicket(create(JIRA, "storm", summary="once only")) for _ in range(50)]
    replies = await asyncio.gather(*calls)
    assert len({r.ticket.id for r in replies}) == 1
    assert {r.ticket.state for r in replies} == {common_pb2.TICKET_STATE_CREATED}
    assert await harness.records("jira") == 1


async def test_same_request_id_with_another_payload_is_refused(harness) -> None:
    await harness.tickets.CreateTicket(create(SN, "r-x", summary="first"))
    error = await rpc_error(harness.tickets.CreateTicket(create(SN, "r-x", summary="second")))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "different payload" in error.details()
    other_job = await rpc_error(harness.tickets.CreateTicket(create(SN, "r-x", job_id="j", summary="first")))
    assert other_job.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert await harness.records("servicenow") == 1


async def test_empty_request_id_gets_a_generated_one(harness) -> None:
    a = await harness.tickets.CreateTicket(create(SN, "", summary="no key"))
    b = await harness.tickets.CreateTicket(create(SN, "", summary="no key"))
    assert a.ticket.request_id.startswith("gw-") and a.ticket.request_id != b.ticket.request_id
    assert await harness.records("servicenow") == 2


async def test_get_ticket_errors(harness) -> None:
    malformed = await rpc_error(harness.tickets.GetTicket(ticket_service_pb2.GetTicketRequest(id="nope")))
    assert malformed.code() == grpc.StatusCode.INVALID_ARGUMENT
    unknown = await rpc_error(
        harness.tickets.GetTicket(
            ticket_service_pb2.GetTicketRequest(id="00000000-0000-4000-8000-000000000000")
        )
    )
    assert unknown.code() == grpc.StatusCode.NOT_FOUND


async def test_request_id_bounds(harness) -> None:
    error = await rpc_error(harness.tickets.CreateTicket(create(SN, "x" * 129, summary="s")))
    assert field_violations(error) == {"request_id": "PATTERN"}
    spaced = await rpc_error(harness.tickets.CreateTicket(create(SN, "has space", summary="s")))
    assert spaced.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_list_pages_filters_and_tokens(harness) -> None:
    for i in range(7):
        await harness.tickets.CreateTicket(create(SN if i % 2 else JIRA, f"p-{i}", job_id="batch", summary=f"t{i}"))
    seen: list[str] = []
    token = ""
    while True:
        page = await harness.tickets.ListTickets(
            ticket_service_pb2.ListTicketsRequest(page_size=3, page_token=token, job_id="batch")
        )
        assert len(page.tickets) <= 3
        seen += [t.request_id for t in page.tickets]
        token = page.next_page_token
        if not token:
            break
    assert seen == [f"p-{i}" for i in reversed(range(7))]  # newest first, no gaps or repeats

    jira_only = await harness.tickets.ListTickets(ticket_service_pb2.ListTicketsRequest(platform=JIRA))
    assert {t.platform for t in jira_only.tickets} == {JIRA} and len(jira_only.tickets) == 4
    by_request = await harness.tickets.ListTickets(ticket_service_pb2.ListTicketsRequest(request_id="p-3"))
    assert [t.request_id for t in by_request.tickets] == ["p-3"]
    key = by_request.tickets[0].external_key
    by_key = await harness.tickets.ListTickets(ticket_service_pb2.ListTicketsRequest(external_key=key))
    assert [t.request_id for t in by_key.tickets] == ["p-3"]
    created = await harness.tickets.ListTickets(
        ticket_service_pb2.ListTicketsRequest(state=common_pb2.TICKET_STATE_CREATED, page_size=1000)
    )
    assert len(created.tickets) == 7  # page_size above the cap is lowered, not refused

    first = await harness.tickets.ListTickets(ticket_service_pb2.ListTicketsRequest(page_size=2, job_id="batch"))
    foreign = await rpc_error(
        harness.tickets.ListTickets(
            ticket_service_pb2.ListTicketsRequest(page_size=2, page_token=first.next_page_token, job_id="other")
        )
    )
    assert foreign.code() == grpc.StatusCode.INVALID_ARGUMENT
    garbage = await rpc_error(
        harness.tickets.ListTickets(ticket_service_pb2.ListTicketsRequest(page_token="%%%"))
    )
    assert garbage.code() == grpc.StatusCode.INVALID_ARGUMENT
    negative = await rpc_error(harness.tickets.ListTickets(ticket_service_pb2.ListTicketsRequest(page_size=-1)))
    assert negative.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_hole9_a_list_page_always_fits_the_message_size_limit(migrated_database_url: str) -> None:
    """Hole 9: a page of large tickets exceeded the message size limit: RESOURCE_EXHAUSTED. A page
    now ends early, with a next token from its last ticket, and paging still returns every ticket."""

    def small_messages(raw: dict) -> None:
        raw["limits"]["max_message_bytes"] = 64 * 1024

    async with running_gateway(migrated_database_url, mutate=small_messages) as h:
        for i in range(12):
            await h.tickets.CreateTicket(create(JIRA, f"big-{i}", summary=f"big {i}", description="x" * 10_000))
        seen: list[str] = []
        pages, token = 0, ""
        while True:
            page = await h.tickets.ListTickets(ticket_service_pb2.ListTicketsRequest(page_size=50, page_token=token))
            assert page.ByteSize() < 64 * 1024
            seen += [t.request_id for t in page.tickets]
            pages, token = pages + 1, page.next_page_token
            if not token:
                break
    assert seen == [f"big-{i}" for i in reversed(range(12))]
    assert pages > 1
