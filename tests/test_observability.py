"""Real traffic through a running gateway, then its /metrics, its logs and its errors, from outside."""

from __future__ import annotations

import base64
import logging

import grpc
import pytest
from google.protobuf import struct_pb2
from prometheus_client.parser import text_string_to_metric_families

from itsm.v1 import common_pb2, template_service_pb2, ticket_service_pb2
from tests.gateway import running_gateway
from tests.rpc import rpc_error
from tests.test_dashboard import (
    ALERTS,
    SYNTHETIC,
    alert_exprs,
    dashboard_exprs,
    exported_names,
    metric_names_in,
)

SN = common_pb2.PLATFORM_SERVICENOW
JIRA = common_pb2.PLATFORM_JIRA
CANARY = "canary-5ecret-7f3a9c"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(scraped: dict, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in scraped.items() if n == name and wanted <= ls)


async def test_metrics_show_real_samples_and_the_dashboard_resolves(harness) -> None:
    t = harness.tickets
    await t.CreateTicket(ticket_service_pb2.CreateTicketRequest(platform=SN, request_id="m1", fields={"summary": "a"}))
    await t.CreateTicket(ticket_service_pb2.CreateTicketRequest(platform=SN, request_id="m1", fields={"summary": "a"}))
    await harness.sandbox_put("jira", "/_sandbox/faults", {"error_rate": 1.0, "statuses": [503]})
    await rpc_error(t.CreateTicket(ticket_service_pb2.CreateTicketRequest(platform=JIRA, request_id="m2", fields={"summary": "b"})))
    await rpc_error(t.CreateTicket(ticket_service_pb2.CreateTicketRequest(platform=JIRA, request_id="m3", fields={"summary": "x" * 300, "bogus": "1"})))
    variables = struct_pb2.Struct()
    await harness.templates.RenderTemplate(template_service_pb2.RenderTemplateRequest(name="jira_ops_task", variables=variables))
    await harness.gateway.sla_sync.run_once()

    scraped = samples(await harness.scrape())
    assert value(scraped, "itsm_ticket_creation_total", platform="servicenow", outcome="created") >= 1
    assert value(scraped, "itsm_idempotent_replays_total", platform="servicenow") >= 1
    assert value(scraped, "itsm_ticket_creation_total", platform="jira", outcome="unavailable") >= 1
    assert value(scraped, "itsm_ticket_retry_attempts_total", platform="jira") >= 11
    assert value(scraped, "itsm_platform_request_duration_seconds_count", platform="jira", status="503") >= 12
    assert value(scraped, "itsm_validation_errors_total", platform="jira", field="summary") >= 1
    assert value(scraped, "itsm_validation_errors_total", platform="jira", field="_unknown") >= 1
    assert value(scraped, "itsm_template_rendering_errors_total", template_name="jira_ops_task") >= 1
    assert value(scraped, "itsm_ticket_creation_duration_seconds_count", platform="servicenow") >= 1
    assert value(scraped, "itsm_open_tickets", platform="servicenow", sla_state="on_track") >= 1
    assert value(scraped, "grpc_server_handled_total", grpc_method="CreateTicket", grpc_code="INVALID_ARGUMENT") >= 1
    assert value(scraped, "grpc_server_handling_seconds_count", grpc_method="CreateTicket") >= 4

    families = list(text_string_to_metric_families(await harness.scrape()))
    available = exported_names(families) | SYNTHETIC
    for where, expr in {**dashboard_exprs(), **alert_exprs(ALERTS.read_text())}.items():
        missing = metric_names_in(expr) - available
        assert not missing, f"{where}: {sorted(missing)} not in the running gateway's /metrics"


async def test_a_canary_secret_appears_nowhere(migrated_database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """The gateway is configured with a Jira token the sandbox rejects: every error path runs."""
    caplog.set_level(logging.DEBUG)
    env = {"ITSM_SANDBOX_JIRA_PASSWORD": CANARY}
    async with running_gateway(migrated_database_url, env=env) as h:
        error = await rpc_error(
            h.tickets.CreateTicket(ticket_service_pb2.CreateTicketRequest(platform=JIRA, request_id="c1", fields={"summary": "s"}))
        )
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        listed = await h.tickets.ListTickets(ticket_service_pb2.ListTicketsRequest(request_id="c1"))
        scraped = await h.scrape()
    basic = base64.b64encode(f"dev@example.com:{CANARY}".encode()).decode()
    logs = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    for text in (error.details(), str(error.trailing_metadata()), listed.tickets[0].last_error, scraped, logs):
        assert CANARY not in text
        assert basic not in text
