"""TemplateService and CreateTicketFromTemplate end to end."""

from __future__ import annotations

import grpc
from google.protobuf import struct_pb2

from itsm.v1 import common_pb2, template_service_pb2, ticket_service_pb2
from tests.rpc import field_violations, rpc_error


def struct(**values: object) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(values)
    return s


OUTAGE = {"service": {"name": "checkout"}, "alert": {"host": "web-07", "summary": "5xx over 50%"}}


async def test_list_and_get_templates(harness) -> None:
    everything = await harness.templates.ListTemplates(template_service_pb2.ListTemplatesRequest())
    names = [t.name for t in everything.templates]
    assert names == sorted(names) and len(names) == 6
    jira = await harness.templates.ListTemplates(
        template_service_pb2.ListTemplatesRequest(platform=common_pb2.PLATFORM_JIRA)
    )
    assert {t.platform for t in jira.templates} == {common_pb2.PLATFORM_JIRA} and len(jira.templates) == 3
    got = await harness.templates.GetTemplate(
        template_service_pb2.GetTemplateRequest(name="servicenow_service_outage")
    )
    assert list(got.template.required_variables) == ["service.name", "alert.host", "alert.summary"]
    assert "{service.name}" in got.template.fields["summary"]
    missing = await rpc_error(harness.templates.GetTemplate(template_service_pb2.GetTemplateRequest(name="nope")))
    assert missing.code() == grpc.StatusCode.NOT_FOUND


async def test_render_is_a_preview_with_every_violation(harness) -> None:
    ok = await harness.templates.RenderTemplate(
        template_service_pb2.RenderTemplateRequest(
            name="servicenow_service_outage", variables=struct(**OUTAGE), job_id="job-1"
        )
    )
    assert ok.platform == common_pb2.PLATFORM_SERVICENOW
    assert ok.fields["summary"] == "P1 outage: checkout down on web-07"
    assert "Job: job-1" in ok.fields["description"]
    assert list(ok.violations) == []

    partial = await harness.templates.RenderTemplate(
        template_service_pb2.RenderTemplateRequest(
            name="jira_job_failure_bug", variables=struct(pipeline="has space")
        )
    )
    assert {(v.field, v.reason) for v in partial.violations} == {
        ("variables.error.message", "MISSING_VARIABLE"),
        ("labels[1]", "PATTERN"),
    }
    assert await harness.records("servicenow") == await harness.records("jira") == 0


async def test_a_template_creates_a_ticket_exactly_once(harness) -> None:
    request = ticket_service_pb2.CreateTicketFromTemplateRequest(
        template_name="jira_job_failure_bug",
        request_id="tpl-1",
        job_id="nightly-42",
        variables=struct(pipeline="etl", error={"message": "exit 1"}),
    )
    first = await harness.tickets.CreateTicketFromTemplate(request)
    assert first.ticket.template_name == "jira_job_failure_bug"
    assert first.ticket.fields["summary"] == "Job nightly-42 of etl failed"
    assert first.ticket.fields["labels"] == "job-failure,etl"
    assert first.ticket.external_key == "OPS-1"
    again = await harness.tickets.CreateTicketFromTemplate(request)
    assert again.ticket.id == first.ticket.id
    assert await harness.records("jira") == 1

    other = ticket_service_pb2.CreateTicketFromTemplateRequest()
    other.CopyFrom(request)
    other.variables["pipeline"] = "billing"
    mismatch = await rpc_error(harness.tickets.CreateTicketFromTemplate(other))
    assert mismatch.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_missing_variables_are_all_reported_and_nothing_is_sent(harness) -> None:
    error = await rpc_error(
        harness.tickets.CreateTicketFromTemplate(
            ticket_service_pb2.CreateTicketFromTemplateRequest(
                template_name="servicenow_service_outage", request_id="tpl-2", variables=struct(service={})
            )
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == {
        "variables.service.name": "MISSING_VARIABLE",
        "variables.alert.host": "MISSING_VARIABLE",
        "variables.alert.summary": "MISSING_VARIABLE",
    }
    assert await harness.records("servicenow") == 0
    unknown = await rpc_error(
        harness.tickets.CreateTicketFromTemplate(
            ticket_service_pb2.CreateTicketFromTemplateRequest(template_name="nope", request_id="tpl-3")
        )
    )
    assert unknown.code() == grpc.StatusCode.NOT_FOUND


async def test_injection_attempts_stay_text(harness) -> None:
    hostile = {
        "title": "{job.id} {0} {x.__class__} {{",
        "details": "{details}",
    }
    reply = await harness.tickets.CreateTicketFromTemplate(
        ticket_service_pb2.CreateTicketFromTemplateRequest(
            template_name="jira_ops_task", request_id="tpl-4", job_id="J", variables=struct(**hostile)
        )
    )
    assert reply.ticket.fields["summary"] == "{job.id} {0} {x.__class__} {{"
    assert reply.ticket.fields["description"].startswith("{details}\n\nRequested through job J.")


async def test_oversized_and_reserved_variables(harness) -> None:
    big = await rpc_error(
        harness.tickets.CreateTicketFromTemplate(
            ticket_service_pb2.CreateTicketFromTemplateRequest(
                template_name="jira_ops_task", request_id="tpl-5", variables=struct(title="t", details="x" * 70_000)
            )
        )
    )
    assert big.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "variables" in field_violations(big)
    reserved = await rpc_error(
        harness.tickets.CreateTicketFromTemplate(
            ticket_service_pb2.CreateTicketFromTemplateRequest(
                template_name="jira_ops_task",
                request_id="tpl-6",
                variables=struct(title="t", details="d", job={"id": "forged"}),
            )
        )
    )
    assert field_violations(reserved) == {"variables.job": "RESERVED"}
    assert await harness.records("jira") == 0
