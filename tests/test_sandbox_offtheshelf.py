"""Unmodified off-the-shelf clients against the sandbox: pysnc 1.2.1 and jira 3.10.5.

They are synchronous requests-based libraries, so they run in a worker thread while the sandbox
serves from the test's event loop. pysnc refuses plain-http instances, so the sandbox serves https
with a throwaway self-signed certificate made by the openssl command line.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jira
import pysnc
import pytest

from sandbox import (
    RunningSandbox,
    SandboxConfig,
    TlsFiles,
    start_sandbox,
)
from sandbox.jira.settings import (
    DEFAULT_TOKEN as DEFAULT_JIRA_TOKEN,
)
from sandbox.jira.settings import (
    DEFAULT_USER as DEFAULT_JIRA_USER,
)
from sandbox.servicenow.settings import (
    DEFAULT_CLIENT_ID as DEFAULT_SERVICENOW_CLIENT_ID,
)
from sandbox.servicenow.settings import (
    DEFAULT_CLIENT_SECRET as DEFAULT_SERVICENOW_CLIENT_SECRET,
)
from sandbox.servicenow.settings import (
    DEFAULT_PASSWORD as DEFAULT_SERVICENOW_PASSWORD,
)
from sandbox.servicenow.settings import (
    DEFAULT_USER as DEFAULT_SERVICENOW_USER,
)

pytestmark = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="openssl is needed for a test certificate"
)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return TlsFiles(str(cert), str(key))


@pytest.fixture
async def sandbox(certificate: TlsFiles, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RunningSandbox]:
    # requests lets these variables override a session's own `verify`, which pysnc relies on.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    running = await start_sandbox(SandboxConfig.on_free_ports(tls=certificate))
    yield running
    await running.stop()


def pysnc_round_trip(client: pysnc.ServiceNowClient) -> dict[str, Any]:
    created = client.GlideRecord("incident")
    created.initialize()
    created.short_description = "pysnc: disk full on db1"
    created.impact = "1"
    created.urgency = "2"
    created.correlation_id = "gw-pysnc-1"
    sys_id = str(created.insert())

    fetched = client.GlideRecord("incident")
    assert fetched.get(sys_id)
    seen: dict[str, Any] = {
        "number": fetched.get_value("number"),
        "priority": fetched.get_value("priority"),
        "state_label": fetched.get_display_value("state"),
    }

    found = client.GlideRecord("incident")
    found.add_query("correlation_id", "gw-pysnc-1")
    found.query()
    seen["found"] = [record.get_value("sys_id") for record in found]

    record = client.GlideRecord("incident")
    assert record.get(sys_id)
    record.work_notes = "pysnc: cleaned up old logs [itsmgw:op-1]"
    record.update()
    record.comments = "pysnc: we are on it"
    record.update()
    record.state = "6"
    record.close_code = "Solution provided"
    record.close_notes = "Freed 40 GB"
    record.update()

    # How a client finds the note it wrote: the journal rows, by record and marker.
    notes = client.GlideRecord("sys_journal_field")
    notes.add_query("element_id", sys_id)
    notes.add_query("element", "work_notes")
    notes.add_query("value", "ENDSWITH", "[itsmgw:op-1]")
    notes.query()
    seen["marked"] = [(n.get_value("name"), n.get_value("value")) for n in notes]
    every = client.GlideRecord("sys_journal_field")
    every.add_query("element_id", sys_id)
    every.order_by_desc("sys_created_on")
    every.query()
    seen["journal"] = [n.get_value("element") for n in every]
    forged = client.GlideRecord("sys_journal_field")
    forged.initialize()
    forged.element_id = sys_id
    forged.value = "forged"
    try:
        forged.insert()
        seen["forged"] = "inserted"
    except pysnc.exceptions.RoleException as exc:
        seen["forged"] = str(exc)

    final = client.GlideRecord("incident")
    final.display_value = True
    assert final.get(sys_id)
    seen.update(
        sys_id=sys_id,
        final_state=final.get_display_value("state"),
        work_notes=final.get_display_value("work_notes"),
    )
    return seen


async def test_pysnc_basic_auth_create_get_query_note_and_resolve(
    sandbox: RunningSandbox, certificate: TlsFiles
) -> None:
    def work() -> dict[str, Any]:
        auth = (DEFAULT_SERVICENOW_USER, DEFAULT_SERVICENOW_PASSWORD)
        client = pysnc.ServiceNowClient(sandbox.url("servicenow"), auth, verify=certificate.cert_file)
        return pysnc_round_trip(client)

    seen = await asyncio.to_thread(work)
    assert seen["number"] == "INC0010001"
    assert seen["priority"] == "2"
    assert seen["state_label"] == "New"
    assert seen["found"] == [seen["sys_id"]]
    assert seen["final_state"] == "Resolved"
    assert "pysnc: cleaned up old logs" in seen["work_notes"]
    assert seen["marked"] == [("incident", "pysnc: cleaned up old logs [itsmgw:op-1]")]
    assert seen["journal"] == ["comments", "work_notes"]  # newest first
    assert "ACL Exception Insert Failed" in seen["forged"]


async def test_pysnc_oauth_password_grant(sandbox: RunningSandbox, certificate: TlsFiles) -> None:
    def work() -> dict[str, Any]:
        flow = pysnc.ServiceNowPasswordGrantFlow(
            DEFAULT_SERVICENOW_USER,
            DEFAULT_SERVICENOW_PASSWORD,
            DEFAULT_SERVICENOW_CLIENT_ID,
            DEFAULT_SERVICENOW_CLIENT_SECRET,
        )
        client = pysnc.ServiceNowClient(sandbox.url("servicenow"), flow, verify=certificate.cert_file)
        return pysnc_round_trip(client)

    seen = await asyncio.to_thread(work)
    assert seen["final_state"] == "Resolved"


def jira_round_trip(client: jira.JIRA, description: Any) -> dict[str, Any]:
    issue = client.create_issue(
        fields={
            "project": "OPS",  # a key: the library looks the project and issue type up first
            "issuetype": "Task",
            "summary": "jira-python: rotate certificates",
            "description": description,
            "labels": ["gw-jira-1"],
            "priority": {"name": "High"},
        }
    )
    seen: dict[str, Any] = {"key": issue.key, "status": issue.fields.status.name}
    seen["found"] = [found.key for found in client.search_issues('labels = "gw-jira-1"')]
    comment_body: Any = "Started" if client._options["rest_api_version"] == "2" else description
    seen["comment"] = client.add_comment(issue.key, comment_body).id
    # is_internal sends Service Management's comment property: a comment with properties, as the
    # gateway's marked comments are.
    internal = client.add_comment(
        issue.key, comment_body, visibility={"type": "role", "value": "Developers"}, is_internal=True
    )
    seen["internal_visibility"] = internal.raw["visibility"]["value"]
    seen["comment_properties"] = [
        c.raw["properties"] for c in client.comments(issue.key, expand="properties", order_by="created")
    ]
    one = client.comment(issue.key, internal.id, expand="properties")
    seen["one_comment_properties"] = one.raw["properties"]
    seen["transitions"] = [t["name"] for t in client.transitions(issue.key)]
    client.transition_issue(issue.key, "In Progress")
    screens = client.transitions(issue.key, expand="transitions.fields")
    seen["screens"] = {t["name"]: sorted(t["fields"]) for t in screens}
    try:
        client.transition_issue(issue.key, "Done")  # the library sends "fields": {}: the screen refuses it
        seen["done_without_resolution"] = "accepted"
    except jira.JIRAError as exc:
        seen["done_without_resolution"] = (exc.status_code, exc.response.json()["errors"])
    client.transition_issue(issue.key, "Done", fields={"resolution": {"name": "Fixed"}})
    issue.update(summary="jira-python: certificates rotated", update={"labels": [{"add": "rotated"}]})
    final = client.issue(issue.key)
    assert final.fields.resolution is not None
    seen.update(
        final_status=final.fields.status.name,
        category=final.fields.status.statusCategory.key,
        resolution=final.fields.resolution.name,
        summary=final.fields.summary,
        labels=final.fields.labels,
        comments=len(client.comments(issue.key)),
    )
    client.transition_issue(issue.key, "Reopen")
    reopened = client.issue(issue.key)
    seen["reopened"] = (reopened.fields.status.name, reopened.fields.resolution)
    return seen


def check_jira_round_trip(seen: dict[str, Any]) -> None:
    assert seen["key"] == "OPS-1"
    assert seen["status"] == "To Do"
    assert seen["found"] == ["OPS-1"]
    assert seen["comment"]
    assert seen["internal_visibility"] == "Developers"
    internal = [{"key": "sd.public.comment", "value": {"internal": True}}]
    assert seen["comment_properties"] == [[], internal]
    assert seen["one_comment_properties"] == internal
    assert seen["transitions"] == ["In Progress"]
    assert seen["screens"] == {"To Do": [], "Done": ["resolution"]}
    assert seen["done_without_resolution"] == (400, {"resolution": "Resolution is required."})
    assert (seen["final_status"], seen["category"], seen["resolution"]) == ("Done", "done", "Fixed")
    assert seen["summary"] == "jira-python: certificates rotated"
    assert seen["labels"] == ["gw-jira-1", "rotated"]
    assert seen["comments"] == 2
    assert seen["reopened"] == ("To Do", None)


async def test_jira_python_data_center_flavour(sandbox: RunningSandbox, certificate: TlsFiles) -> None:
    def work() -> dict[str, Any]:
        client = jira.JIRA(
            sandbox.url("jira"),
            basic_auth=(DEFAULT_JIRA_USER, DEFAULT_JIRA_TOKEN),
            options={"verify": certificate.cert_file},
        )
        try:
            return jira_round_trip(client, "Plain wiki description")
        finally:
            client.close()

    check_jira_round_trip(await asyncio.to_thread(work))


async def test_jira_python_cloud_flavour_v3_and_token_auth(
    sandbox: RunningSandbox, certificate: TlsFiles
) -> None:
    document = {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": "ADF description"}]}],
    }

    def work() -> tuple[dict[str, Any], str]:
        # v3 makes serverInfo say Cloud, so search goes through /rest/api/3/search/jql.
        client = jira.JIRA(
            sandbox.url("jira"),
            basic_auth=(DEFAULT_JIRA_USER, DEFAULT_JIRA_TOKEN),
            options={"verify": certificate.cert_file, "rest_api_version": "3"},
        )
        personal = jira.JIRA(
            sandbox.url("jira"), token_auth=DEFAULT_JIRA_TOKEN, options={"verify": certificate.cert_file}
        )
        try:
            return jira_round_trip(client, document), personal.myself()["emailAddress"]
        finally:
            client.close()
            personal.close()

    seen, me = await asyncio.to_thread(work)
    check_jira_round_trip(seen)
    assert me == DEFAULT_JIRA_USER


def test_off_the_shelf_versions_are_the_pinned_ones() -> None:
    assert pysnc.__version__ == "1.2.1"
    assert jira.__version__ == "3.10.5"
    assert Path(pysnc.__file__).parent.name == "pysnc"


# -- what the gateway's RPCs did, as the off-the-shelf clients read it ------------------------


@pytest.mark.parametrize("database_backend", ["sqlite"], indirect=True)
async def test_the_gateways_lifecycle_as_pysnc_and_jira_read_it(
    migrated_database_url: str, certificate: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Update, comment, resolve and reopen through our RPCs; then pysnc and jira-python, unmodified,
    read the result from the sandbox the way a team's own tooling would."""
    from itsm.v1 import common_pb2, ticket_service_pb2
    from tests.gateway import running_gateway

    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)

    def trust(raw: dict[str, Any]) -> None:
        for block in raw["platforms"].values():
            block["ca_bundle"] = certificate.cert_file

    config = SandboxConfig.on_free_ports(tls=certificate)
    async with running_gateway(migrated_database_url, sandbox_config=config, mutate=trust) as h:
        t = h.tickets
        sn = (await t.CreateTicket(ticket_service_pb2.CreateTicketRequest(
            platform=common_pb2.PLATFORM_SERVICENOW, request_id="o1", fields={"summary": "db1 disk"}
        ))).ticket
        await t.UpdateTicket(ticket_service_pb2.UpdateTicketRequest(id=sn.id, request_id="o2", fields={"urgency": "1"}))
        await t.AddComment(ticket_service_pb2.AddCommentRequest(id=sn.id, request_id="o3", body="Freed 40 GB"))
        await t.ResolveTicket(ticket_service_pb2.ResolveTicketRequest(id=sn.id, request_id="o4", notes="Done"))
        ji = (await t.CreateTicket(ticket_service_pb2.CreateTicketRequest(
            platform=common_pb2.PLATFORM_JIRA, request_id="o5", fields={"summary": "rotate certs"}
        ))).ticket
        await t.UpdateTicket(ticket_service_pb2.UpdateTicketRequest(id=ji.id, request_id="o6", fields={"priority": "High"}))
        await t.AddComment(ticket_service_pb2.AddCommentRequest(id=ji.id, request_id="o7", body="Rotated"))
        await t.ResolveTicket(ticket_service_pb2.ResolveTicketRequest(id=ji.id, request_id="o8"))
        await t.ReopenTicket(ticket_service_pb2.ReopenTicketRequest(id=ji.id, request_id="o9", reason="Expired again"))

        def read() -> dict[str, Any]:
            auth = (DEFAULT_SERVICENOW_USER, DEFAULT_SERVICENOW_PASSWORD)
            snc = pysnc.ServiceNowClient(h.sandbox.url("servicenow"), auth, verify=certificate.cert_file)
            incident = snc.GlideRecord("incident")
            assert incident.get(sn.external_id)
            notes = snc.GlideRecord("sys_journal_field")
            notes.add_query("element_id", sn.external_id)
            notes.query()
            client = jira.JIRA(
                h.sandbox.url("jira"), basic_auth=(DEFAULT_JIRA_USER, DEFAULT_JIRA_TOKEN),
                options={"verify": certificate.cert_file},
            )
            try:
                issue = client.issue(ji.external_key)
                comments = client.comments(ji.external_key, expand="properties", order_by="created")
                return {
                    "sn": (incident.get_display_value("state"), incident.get_value("close_code"),
                           incident.get_value("urgency")),
                    "journal": [(n.get_value("element"), n.get_value("value").split("\n")[0]) for n in notes],
                    "jira": (issue.fields.status.name, issue.fields.resolution, issue.fields.priority.name),
                    "comments": [c.body for c in comments],
                    "marked": [bool(c.raw.get("properties")) for c in comments],
                }
            finally:
                client.close()

        seen = await asyncio.to_thread(read)
    assert seen["sn"] == ("Resolved", "Solution provided", "1")
    assert seen["journal"] == [("work_notes", "Freed 40 GB")]
    assert seen["jira"] == ("To Do", None, "High")  # reopened: back to To Do, no resolution
    assert seen["comments"] == ["Rotated", "Expired again"]
    assert seen["marked"] == [True, True]  # each carries the gateway's marker property
