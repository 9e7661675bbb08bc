"""The clients end to end against the sandbox simulators, and the acceptance drill (smaller).

scripts/drill_clients.py runs the full drill (1,000 creates per platform) and prints its timing.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from clients.adf import text_to_adf
from clients.errors import ErrorKind, PlatformError
from clients.jira import JiraClient, JiraSettings
from clients.servicenow import ServiceNowClient, ServiceNowSettings
from clients.settings import (
    Credentials,
    HttpSettings,
    RetryPolicy,
    TimeoutConfig,
)
from sandbox import RunningSandbox, start_sandbox
from sandbox import config as sandbox_config
from sandbox.jira import settings as jira_sandbox
from sandbox.servicenow import settings as servicenow_sandbox
from scripts.drill_clients import DrillFaults, run_drill


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    running = await start_sandbox(sandbox_config.SandboxConfig.on_free_ports(seed=11))
    yield running
    await running.stop()


async def set_faults(base_url: str, faults: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.put(f"{base_url}/_sandbox/faults", json=faults) as resp:
            assert resp.status == 200, await resp.text()


async def stats(base_url: str) -> dict[str, int]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base_url}/_sandbox/stats") as resp:
            result: dict[str, int] = await resp.json()
            return result


def servicenow_client(url: str, retry: RetryPolicy, timeout: TimeoutConfig) -> ServiceNowClient:
    creds = Credentials("basic", servicenow_sandbox.DEFAULT_USER, servicenow_sandbox.DEFAULT_PASSWORD)
    return ServiceNowClient(ServiceNowSettings(HttpSettings(url), creds), retry, timeout)


def jira_client(url: str, retry: RetryPolicy, timeout: TimeoutConfig, version: int) -> JiraClient:
    creds = Credentials("basic", jira_sandbox.DEFAULT_USER, jira_sandbox.DEFAULT_TOKEN)
    return JiraClient(JiraSettings(HttpSettings(url), creds, api_version=version), retry, timeout)  # type: ignore[arg-type]


async def test_drill_every_create_lands_exactly_once() -> None:
    """The drill of scripts/drill_clients.py at CI size: 30% 503/429, 5% drops after commit, 5% late
    commits and Jira search lag, with lags and confirmation delays shortened alike."""
    faults = DrillFaults(drop_after_commit_rate=0.1, late_commit_rate=0.1, late_commit_ms=400, search_lag_ms=700)
    delays = {"servicenow": (0.6, 0.6), "jira": (0.6, 1.3)}
    results = await run_drill(80, 40, faults, seed=7, parallel=True, delays=delays)
    for result in results:
        assert result.errors == [], result.summary()
        assert result.records == result.creates == len(result.external_ids) == 80, result.summary()
        assert result.faults_injected > 0


async def test_servicenow_lifecycle_with_oauth(sandbox: RunningSandbox) -> None:
    creds = Credentials(
        "oauth",
        servicenow_sandbox.DEFAULT_USER,
        servicenow_sandbox.DEFAULT_PASSWORD,
        client_id=servicenow_sandbox.DEFAULT_CLIENT_ID,
        client_secret=servicenow_sandbox.DEFAULT_CLIENT_SECRET,
    )
    c = ServiceNowClient(ServiceNowSettings(HttpSettings(sandbox.url("servicenow")), creds))
    try:
        payload = {"short_description": "Disk full on db-1", "urgency": "1", "impact": "2"}
        ticket = await c.create(payload, "e2e-sn-1")
        other = await c.create({**payload, "short_description": "Other"}, "e2e-sn-2")
        found = await c.find_by_marker("e2e-sn-1")
        assert found is not None and found.external_id == ticket.external_id
        assert await c.find_by_marker("e2e-sn-absent") is None
        assert ticket.external_key.startswith("INC")
        assert ticket.raw["correlation_id"] == "e2e-sn-1"
        assert ticket.raw["priority"] == "2"  # computed by the platform from impact x urgency

        changed = await c.update(ticket.external_id, {"state": "2", "not_a_field": "x"})
        note = await c.add_comment(ticket.external_id, "looking into it", "itsmgw-c-note", internal=True)
        said = await c.add_comment(ticket.external_id, "we are on it", "itsmgw-c-said", internal=False)
        found_note = await c.find_comment(ticket.external_id, "itsmgw-c-note")
        absent = await c.find_comment(ticket.external_id, "itsmgw-c-none")
        resolved = await c.resolve(ticket.external_id, "Solution provided", "Freed space")
        got = await c.get(ticket.external_id)
        reopened = await c.reopen(ticket.external_id)

        statuses = {s.external_id: s for s in await c.get_statuses([ticket.external_id, other.external_id])}
    finally:
        await c.close()
    # ServiceNow drops an unknown field silently: the update says so.
    assert changed.not_applied == ("not_a_field",)
    assert found_note == note.comment_id and note.comment_id != said.comment_id and absent is None
    assert (resolved.category, resolved.resolution) == ("RESOLVED", "Solution provided")
    assert got.data["close_code"] == "Solution provided"
    assert reopened.category == "IN_PROGRESS"
    assert statuses[ticket.external_id].acknowledged and not statuses[ticket.external_id].resolved
    assert statuses[other.external_id].category == "OPEN" and not statuses[other.external_id].acknowledged


@pytest.mark.parametrize("version", [2, 3])
async def test_jira_lifecycle(sandbox: RunningSandbox, version: int) -> None:
    c = jira_client(sandbox.url("jira"), RetryPolicy(), TimeoutConfig(), version)
    description = "Disk full on db-1\nsince 02:00\n\nPlease free space."
    try:
        payload = {
            "fields": {
                "issuetype": {"name": "Task"},
                "summary": "Disk full",
                "description": description,
                "priority": {"name": "High"},
                "labels": ["infra"],
            }
        }
        ticket = await c.create(payload, f"e2e-jira-{version}", dedup_key="disk full db-1")
        found = await c.find_by_marker(f"e2e-jira-{version}")
        assert found is not None and found.external_key == ticket.external_key
        comment = await c.add_comment(ticket.external_key, "first line\nsecond line", "itsmgw-c-1", internal=True)
        assert await c.find_comment(ticket.external_key, "itsmgw-c-1") == comment.comment_id
        assert await c.find_comment(ticket.external_key, "itsmgw-c-2") is None
        changed = await c.update(ticket.external_key, {"fields": {"summary": "Disk very full"}})
        await c.transition(ticket.external_key, "In Progress")
        in_progress = await c.get_statuses([ticket.external_id])
        resolved = await c.resolve(ticket.external_key, "", "freed space")
        with pytest.raises(PlatformError) as no_resolve:
            await c.resolve(ticket.external_key, "", "")  # Done offers no resolve transition
        reopened = await c.reopen(ticket.external_key)
        got = await c.get(ticket.external_key)
    finally:
        await c.close()
    assert ticket.url == f"{sandbox.url('jira')}/browse/{ticket.external_key}"
    assert changed.not_applied == ()
    fields = got.data["fields"]
    assert fields["summary"] == "Disk very full"
    assert set(fields["labels"]) == {"infra", f"e2e-jira-{version}", "itsm-dedup-disk_full_db-1"}
    assert fields["description"] == (text_to_adf(description) if version == 3 else description)
    assert no_resolve.value.kind is ErrorKind.NOT_APPLIED
    assert "Reopen" in no_resolve.value.field_errors["transition"]
    assert [(s.status, s.acknowledged, s.resolved) for s in in_progress] == [("In Progress", True, False)]
    assert (resolved.category, resolved.resolution) == ("RESOLVED", "Done")
    assert reopened.category == "OPEN"


async def test_servicenow_deadline_under_rate_limiting(sandbox: RunningSandbox) -> None:
    await set_faults(sandbox.url("servicenow"), {"error_rate": 1.0, "statuses": [429], "retry_after_seconds": 5})
    c = servicenow_client(sandbox.url("servicenow"), RetryPolicy(), TimeoutConfig())
    deadline = time.monotonic() + 2
    try:
        with pytest.raises(PlatformError) as caught:
            await c.create({"short_description": "x"}, "e2e-deadline", deadline=deadline)
    finally:
        await c.close()
    err = caught.value
    # Retry-After 5 s cannot fit in a 2 s deadline: one attempt, no sleep, no ambiguity.
    assert (err.kind, err.status, err.attempts, err.ambiguous) == (ErrorKind.DEADLINE, 429, 1, False)
    assert time.monotonic() < deadline
    assert (await stats(sandbox.url("servicenow")))["records"] == 0


async def test_wrong_credentials_fail_fast(sandbox: RunningSandbox) -> None:
    sn = ServiceNowClient(
        ServiceNowSettings(HttpSettings(sandbox.url("servicenow")), Credentials("basic", "admin", "nope"))
    )
    jira = JiraClient(JiraSettings(HttpSettings(sandbox.url("jira")), Credentials("bearer", token="nope")))
    errors = []
    for client, payload in (
        (sn, {"short_description": "x"}),
        (jira, {"fields": {"issuetype": {"name": "Task"}, "summary": "x"}}),
    ):
        try:
            with pytest.raises(PlatformError) as caught:
                await client.create(payload, "e2e-auth")
            errors.append(caught.value)
        finally:
            await client.close()
    assert [(e.kind, e.status, e.attempts) for e in errors] == [(ErrorKind.AUTH, 401, 1)] * 2
    assert all("nope" not in repr(e) for e in errors)
