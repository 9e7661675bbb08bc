"""Fault injection, control endpoints, start flags and the sandbox CLI, over real HTTP."""

from __future__ import annotations

import argparse
import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import aiohttp
import pytest

from sandbox import (
    FaultSettings,
    RunningSandbox,
    SandboxConfig,
    registered,
    start_sandbox,
)
from sandbox.cli import (
    add_sandbox_arguments,
    dev_sandbox_config,
    sandbox_config_from_args,
    serve_sandbox,
)
from sandbox.jira.settings import (
    DEFAULT_TOKEN as DEFAULT_JIRA_TOKEN,
)
from sandbox.jira.settings import (
    DEFAULT_USER as DEFAULT_JIRA_USER,
)
from sandbox.servicenow.settings import (
    DEFAULT_PASSWORD as DEFAULT_SERVICENOW_PASSWORD,
)
from sandbox.servicenow.settings import (
    DEFAULT_USER as DEFAULT_SERVICENOW_USER,
)


def basic(user: str, secret: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


SN_AUTH = {"Accept": "application/json", **basic(DEFAULT_SERVICENOW_USER, DEFAULT_SERVICENOW_PASSWORD)}
JIRA_AUTH = basic(DEFAULT_JIRA_USER, DEFAULT_JIRA_TOKEN)
INCIDENTS = "/api/now/table/incident"
JOURNAL = "/api/now/table/sys_journal_field"
ISSUES = "/rest/api/2/issue"
JIRA_TASK = {"fields": {"project": {"key": "OPS"}, "issuetype": {"name": "Task"}, "summary": "drill"}}


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    running = await start_sandbox(SandboxConfig.on_free_ports(seed=11))
    yield running
    await running.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def put_faults(http: aiohttp.ClientSession, base: str, settings: dict[str, Any]) -> tuple[int, Any]:
    async with http.put(f"{base}/_sandbox/faults", json=settings) as response:
        return response.status, await response.json()


async def stats(http: aiohttp.ClientSession, base: str) -> dict[str, int]:
    """The counters without `writes` (asserted on its own where it matters)."""
    async with http.get(f"{base}/_sandbox/stats") as response:
        assert response.status == 200
        result: dict[str, int] = await response.json()
        return {k: v for k, v in result.items() if k != "writes"}


async def test_stats_count_writes_apart_from_reads(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    sn = sandbox.url("servicenow")
    async with http.post(
        f"{sn}{INCIDENTS}", json={"short_description": "x"}, headers=SN_AUTH
    ) as r:
        sys_id = (await r.json())["result"]["sys_id"]
    for _ in range(3):
        async with http.get(f"{sn}{INCIDENTS}/{sys_id}", headers=SN_AUTH) as r:
            assert r.status == 200
    async with http.patch(f"{sn}{INCIDENTS}/{sys_id}", json={"urgency": "1"}, headers=SN_AUTH) as r:
        assert r.status == 200
    async with http.get(f"{sn}/_sandbox/stats") as r:
        counted = await r.json()
    assert (counted["requests"], counted["writes"]) == (5, 2)

    jira = sandbox.url("jira")
    async with http.post(f"{jira}{ISSUES}", json=JIRA_TASK, headers=JIRA_AUTH) as r:
        assert r.status == 201
    search = {"jql": "project = OPS", "maxResults": 10}
    async with http.post(f"{jira}/rest/api/3/search/jql", json=search, headers=JIRA_AUTH) as r:
        assert r.status == 200  # a query sent as POST: a read
    async with http.get(f"{jira}/_sandbox/stats") as r:
        counted = await r.json()
    assert (counted["requests"], counted["writes"]) == (2, 1)


async def test_servicenow_error_rate_one_faults_every_call_without_applying_it(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    base = sandbox.url("servicenow")
    status, _ = await put_faults(
        http, base, {"error_rate": 1.0, "statuses": [503, 429], "retry_after_seconds": 2}
    )
    assert status == 200
    seen = set()
    for _ in range(20):
        async with http.post(f"{base}{INCIDENTS}", json={"short_description": "x"}, headers=SN_AUTH) as r:
            seen.add(r.status)
            assert r.status in (503, 429)
            assert r.headers["Retry-After"] == "2"
            body = await r.json()
            assert body["status"] == "failure" and body["error"]["message"]
            if r.status == 429:
                assert body["error"]["message"] == "Rate limit exceeded"
                assert int(r.headers["X-RateLimit-Reset"]) > 1_600_000_000
                assert r.headers["X-RateLimit-Limit"].isdigit()
                assert len(r.headers["X-RateLimit-Rule"]) == 32
    assert seen == {503, 429}
    assert await stats(http, base) == {"records": 0, "requests": 20, "faults_injected": 20}


async def test_jira_429_carries_cloud_rate_limit_headers(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    base = sandbox.url("jira")
    await put_faults(http, base, {"error_rate": 1.0, "statuses": [429], "retry_after_seconds": 3})
    async with http.post(f"{base}{ISSUES}", json=JIRA_TASK, headers=JIRA_AUTH) as r:
        assert r.status == 429
        assert r.headers["Retry-After"] == "3"
        assert r.headers["X-RateLimit-Remaining"] == "0"
        assert r.headers["RateLimit-Reason"]
        assert datetime.fromisoformat(r.headers["X-RateLimit-Reset"])  # ISO-8601
        assert (await r.json())["errorMessages"]
    await put_faults(http, base, {"statuses": [503]})
    async with http.get(f"{base}/rest/api/2/myself", headers=JIRA_AUTH) as r:
        assert (r.status, r.headers["Retry-After"]) == (503, "3")
    assert (await stats(http, base))["records"] == 0


async def test_drop_after_commit_stores_the_record_and_cuts_the_connection(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    sn, jira = sandbox.url("servicenow"), sandbox.url("jira")
    for base in (sn, jira):
        await put_faults(http, base, {"drop_after_commit_rate": 1.0})
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        async with http.post(
            f"{sn}{INCIDENTS}", json={"short_description": "x", "correlation_id": "gw-9"}, headers=SN_AUTH
        ):
            pass
    async with http.get(
        f"{sn}{INCIDENTS}", params={"sysparm_query": "correlation_id=gw-9"}, headers=SN_AUTH
    ) as r:
        assert [row["number"] for row in (await r.json())["result"]] == ["INC0010001"]
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        async with http.post(f"{jira}{ISSUES}", json=JIRA_TASK, headers=JIRA_AUTH):
            pass
    async with http.get(f"{jira}{ISSUES}/OPS-1", headers=JIRA_AUTH) as r:
        assert r.status == 200
    for base in (sn, jira):
        assert await stats(http, base) == {"records": 1, "requests": 2, "faults_injected": 1}


async def test_late_commit_answers_504_at_once_and_stores_the_record_later(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    """A load balancer's 504 while the write still runs: the record appears late_commit_ms later,
    exactly the window a client must not re-send in."""
    sn, jira = sandbox.url("servicenow"), sandbox.url("jira")
    for base in (sn, jira):
        await put_faults(http, base, {"late_commit_rate": 1.0, "late_commit_ms": 300})
    async with http.post(
        f"{sn}{INCIDENTS}", json={"short_description": "x", "correlation_id": "late-1"}, headers=SN_AUTH
    ) as r:
        assert r.status == 504 and "Gateway" in await r.text()
    async with http.post(f"{jira}{ISSUES}", json=JIRA_TASK, headers=JIRA_AUTH) as r:
        assert r.status == 504
    for base in (sn, jira):
        assert (await stats(http, base))["records"] == 0
    await asyncio.sleep(0.5)
    for base in (sn, jira):
        assert await stats(http, base) == {"records": 1, "requests": 1, "faults_injected": 1}
    async with http.get(
        f"{sn}{INCIDENTS}", params={"sysparm_query": "correlation_id=late-1"}, headers=SN_AUTH
    ) as r:
        assert len((await r.json())["result"]) == 1


async def sn_call(
    http: aiohttp.ClientSession, method: str, url: str, body: dict[str, Any] | None = None
) -> tuple[int, Any]:
    async with http.request(method, url, json=body, headers=SN_AUTH) as r:
        return r.status, (await r.json()) if r.content_type == "application/json" else await r.text()


async def jira_call(
    http: aiohttp.ClientSession, method: str, url: str, body: dict[str, Any] | None = None
) -> tuple[int, Any]:
    async with http.request(method, url, json=body, headers=JIRA_AUTH) as r:
        return r.status, (await r.json()) if r.content_type == "application/json" else await r.text()


async def journal_values(http: aiohttp.ClientSession, sn: str, sys_id: str) -> list[str]:
    status, answer = await sn_call(http, "GET", f"{sn}{JOURNAL}?sysparm_query=element_id={sys_id}")
    assert status == 200
    return [row["value"] for row in answer["result"]]


async def test_late_commit_applies_to_updates_notes_comments_and_transitions(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    """Every write, not only creates, can be answered 504 while it still lands: the case where a
    gateway must look for its marker before sending a note or a transition again."""
    sn, jira = sandbox.url("servicenow"), sandbox.url("jira")
    status, created = await sn_call(http, "POST", f"{sn}{INCIDENTS}", {"short_description": "x"})
    incident = f"{sn}{INCIDENTS}/{created['result']['sys_id']}"
    assert (await jira_call(http, "POST", f"{jira}{ISSUES}", JIRA_TASK))[0] == 201
    for base in (sn, jira):
        await put_faults(http, base, {"late_commit_rate": 1.0, "late_commit_ms": 300})

    note = {"work_notes": "Freed space [itsmgw:op-1]", "urgency": "1"}
    assert (await sn_call(http, "PATCH", incident, note))[0] == 504
    assert (await sn_call(http, "PUT", incident, {"comments": "Customer told"}))[0] == 504
    assert (await jira_call(http, "PUT", f"{jira}{ISSUES}/OPS-1", {"fields": {"summary": "late"}}))[0] == 504
    comment = {"body": "Restarted", "properties": [{"key": "itsmgw", "value": {"op": "op-2"}}]}
    assert (await jira_call(http, "POST", f"{jira}{ISSUES}/OPS-1/comment", comment))[0] == 504
    move = {"transition": {"id": "21"}}
    assert (await jira_call(http, "POST", f"{jira}{ISSUES}/OPS-1/transitions", move))[0] == 504

    await put_faults(http, sn, {"late_commit_rate": 0.0})
    await put_faults(http, jira, {"late_commit_rate": 0.0})
    assert await journal_values(http, sn, created["result"]["sys_id"]) == []  # not yet
    assert (await sn_call(http, "GET", incident))[1]["result"]["urgency"] == "3"
    status, issue = await jira_call(http, "GET", f"{jira}{ISSUES}/OPS-1")
    assert (issue["fields"]["summary"], issue["fields"]["status"]["name"]) == ("drill", "To Do")
    assert issue["fields"]["comment"]["total"] == 0

    await asyncio.sleep(0.6)
    assert await journal_values(http, sn, created["result"]["sys_id"]) == [
        "Freed space [itsmgw:op-1]",
        "Customer told",
    ]
    assert (await sn_call(http, "GET", incident))[1]["result"]["urgency"] == "1"
    status, issue = await jira_call(http, "GET", f"{jira}{ISSUES}/OPS-1")
    assert (issue["fields"]["summary"], issue["fields"]["status"]["name"]) == ("late", "In Progress")
    [landed] = issue["fields"]["comment"]["comments"]
    property_url = f"{jira}/rest/api/3/comment/{landed['id']}/properties/itsmgw"
    status, marker = await jira_call(http, "GET", property_url)
    assert (status, marker["value"]) == (200, {"op": "op-2"})
    # Journal entries and comments are not records: the counters stay about incidents and issues.
    assert await stats(http, sn) == {"records": 1, "requests": 7, "faults_injected": 2}
    assert await stats(http, jira) == {"records": 1, "requests": 7, "faults_injected": 3}


async def test_drop_after_commit_applies_to_updates_notes_comments_and_transitions(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    sn, jira = sandbox.url("servicenow"), sandbox.url("jira")
    status, created = await sn_call(http, "POST", f"{sn}{INCIDENTS}", {"short_description": "x"})
    sys_id = created["result"]["sys_id"]
    assert (await jira_call(http, "POST", f"{jira}{ISSUES}", JIRA_TASK))[0] == 201
    for base in (sn, jira):
        await put_faults(http, base, {"drop_after_commit_rate": 1.0})

    cut = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)
    with pytest.raises(cut):
        await sn_call(http, "PATCH", f"{sn}{INCIDENTS}/{sys_id}", {"work_notes": "[itsmgw:op-3]"})
    with pytest.raises(cut):
        await sn_call(http, "PUT", f"{sn}{INCIDENTS}/{sys_id}", {"state": "2"})
    with pytest.raises(cut):
        await jira_call(http, "PUT", f"{jira}{ISSUES}/OPS-1", {"update": {"labels": [{"add": "cut"}]}})
    with pytest.raises(cut):
        await jira_call(http, "POST", f"{jira}{ISSUES}/OPS-1/comment", {"body": "cut"})
    with pytest.raises(cut):
        await jira_call(http, "POST", f"{jira}{ISSUES}/OPS-1/transitions", {"transition": {"id": "21"}})
    # A refused write is answered, never cut: nothing was committed to hide.
    done = {"transition": {"id": "31"}}
    status, refused = await jira_call(http, "POST", f"{jira}{ISSUES}/OPS-1/transitions", done)
    assert (status, refused["errors"]) == (400, {"resolution": "Resolution is required."})

    for base in (sn, jira):
        await put_faults(http, base, {"drop_after_commit_rate": 0.0})
    assert await journal_values(http, sn, sys_id) == ["[itsmgw:op-3]"]
    assert (await sn_call(http, "GET", f"{sn}{INCIDENTS}/{sys_id}"))[1]["result"]["state"] == "2"
    fields = (await jira_call(http, "GET", f"{jira}{ISSUES}/OPS-1"))[1]["fields"]
    assert (fields["labels"], fields["status"]["name"]) == (["cut"], "In Progress")
    assert [c["body"] for c in fields["comment"]["comments"]] == ["cut"]


async def test_dropped_fields_apply_to_updates_and_comments(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    sn, jira = sandbox.url("servicenow"), sandbox.url("jira")
    status, created = await sn_call(http, "POST", f"{sn}{INCIDENTS}", {"short_description": "x"})
    sys_id = created["result"]["sys_id"]
    assert (await jira_call(http, "POST", f"{jira}{ISSUES}", JIRA_TASK))[0] == 201
    await put_faults(http, sn, {"dropped_fields": ["work_notes"]})
    await put_faults(http, jira, {"dropped_fields": ["labels", "properties"]})

    note = {"work_notes": "lost", "urgency": "2"}
    status, _ = await sn_call(http, "PATCH", f"{sn}{INCIDENTS}/{sys_id}", note)
    assert status == 200  # silently: the rest of the write lands
    assert await journal_values(http, sn, sys_id) == []
    assert (await sn_call(http, "GET", f"{sn}{INCIDENTS}/{sys_id}"))[1]["result"]["urgency"] == "2"
    edit = {"fields": {"summary": "kept"}, "update": {"labels": [{"add": "gw-marker"}]}}
    assert (await jira_call(http, "PUT", f"{jira}{ISSUES}/OPS-1", edit))[0] == 204
    comment = {"body": "kept", "properties": [{"key": "itsmgw", "value": {"op": "op-4"}}]}
    status, added = await jira_call(http, "POST", f"{jira}{ISSUES}/OPS-1/comment?expand=properties", comment)
    assert (status, added["body"], added["properties"]) == (201, "kept", [])
    fields = (await jira_call(http, "GET", f"{jira}{ISSUES}/OPS-1"))[1]["fields"]
    assert (fields["summary"], fields["labels"]) == ("kept", [])


async def test_reset_clears_journal_and_comments_too(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    sn, jira = sandbox.url("servicenow"), sandbox.url("jira")
    await sn_call(http, "POST", f"{sn}{INCIDENTS}", {"short_description": "x", "work_notes": "note"})
    await jira_call(http, "POST", f"{jira}{ISSUES}", JIRA_TASK)
    comment = {"body": "c", "properties": [{"key": "itsmgw", "value": 1}]}
    status, first = await jira_call(http, "POST", f"{jira}{ISSUES}/OPS-1/comment", comment)
    assert status == 201
    for base in (sn, jira):
        assert (await stats(http, base))["records"] == 1
        async with http.post(f"{base}/_sandbox/reset") as r:
            assert r.status == 204
    status, rows = await sn_call(http, "GET", f"{sn}{JOURNAL}")
    assert (status, rows["result"]) == (200, [])
    property_url = f"{jira}/rest/api/2/comment/{first['id']}/properties/itsmgw"
    assert (await jira_call(http, "GET", property_url))[0] == 404
    await jira_call(http, "POST", f"{jira}{ISSUES}", JIRA_TASK)
    status, again = await jira_call(http, "POST", f"{jira}{ISSUES}/OPS-1/comment", {"body": "c"})
    assert again["id"] == first["id"]  # numbering restarts like a fresh site


async def test_partial_put_merges_and_bad_values_name_the_key(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    base = sandbox.url("servicenow")
    assert (await put_faults(http, base, {"error_rate": 0.25}))[0] == 200
    status, merged = await put_faults(http, base, {"latency_ms": 5, "statuses": [502]})
    assert status == 200
    assert merged == {**FaultSettings().to_json(), "error_rate": 0.25, "latency_ms": 5, "statuses": [502]}
    async with http.get(f"{base}/_sandbox/faults") as r:
        assert await r.json() == merged
    for bad, key in (
        ({"error_rate": 2}, "error_rate"),
        ({"error_rate": True}, "error_rate"),
        ({"statuses": [200]}, "statuses"),
        ({"statuses": []}, "statuses"),
        ({"retry_after_seconds": -1}, "retry_after_seconds"),
        ({"latency_ms": "10"}, "latency_ms"),
        ({"drop_after_commit_rate": -0.1}, "drop_after_commit_rate"),
        ({"search_lag_ms": 1.5}, "search_lag_ms"),
        ({"late_commit_rate": -0.1}, "late_commit_rate"),
        ({"late_commit_ms": 10**9}, "late_commit_ms"),
        ({"error_rate": 0.5, "typo": 1}, "typo"),
    ):
        status, error = await put_faults(http, base, bad)
        assert status == 400, bad
        assert list(error["errors"]) == [key]
    async with http.put(
        f"{base}/_sandbox/faults", data=b"[1]", headers={"Content-Type": "application/json"}
    ) as r:
        assert r.status == 400
    async with http.get(f"{base}/_sandbox/faults") as r:
        assert await r.json() == merged  # refused updates changed nothing


async def test_reset_clears_records_counters_and_faults(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    base = sandbox.url("servicenow")
    for _ in range(2):
        async with http.post(f"{base}{INCIDENTS}", json={"short_description": "x"}, headers=SN_AUTH) as r:
            assert r.status == 201
    await put_faults(http, base, {"error_rate": 1.0})
    async with http.get(f"{base}{INCIDENTS}", headers=SN_AUTH) as r:
        assert r.status in (503, 429)
    assert await stats(http, base) == {"records": 2, "requests": 3, "faults_injected": 1}
    async with http.post(f"{base}/_sandbox/reset") as r:
        assert r.status == 204
    assert await stats(http, base) == {"records": 0, "requests": 0, "faults_injected": 0}
    async with http.get(f"{base}/_sandbox/faults") as r:
        assert await r.json() == FaultSettings().to_json()
    async with http.post(f"{base}{INCIDENTS}", json={"short_description": "x"}, headers=SN_AUTH) as r:
        assert (await r.json())["result"]["number"] == "INC0010001"
    async with http.post(f"{sandbox.url('jira')}/_sandbox/reset") as r:
        assert r.status == 204


async def test_control_endpoints_need_no_credentials_and_are_never_faulted(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    for base in (sandbox.url("servicenow"), sandbox.url("jira")):
        await put_faults(http, base, {"error_rate": 1.0, "latency_ms": 1})
        for _ in range(5):
            async with http.get(f"{base}/_sandbox/stats") as r:
                assert r.status == 200
        assert (await stats(http, base))["requests"] == 0


async def test_seeded_faults_are_reproducible() -> None:
    async def sequence() -> list[int]:
        faults = FaultSettings(error_rate=0.5, statuses=(503, 429, 502))
        running = await start_sandbox(
            SandboxConfig.on_free_ports(seed=42, faults={"servicenow": faults})
        )
        try:
            async with aiohttp.ClientSession() as http:
                statuses = []
                for _ in range(30):
                    async with http.get(f"{running.url('servicenow')}{INCIDENTS}", headers=SN_AUTH) as r:
                        statuses.append(r.status)
                return statuses
        finally:
            await running.stop()

    first = await sequence()
    assert first == await sequence()
    assert {200, 503, 429, 502} == set(first)


async def test_faults_set_at_start_apply_per_platform(http: aiohttp.ClientSession) -> None:
    config = SandboxConfig.on_free_ports(faults={"jira": FaultSettings(error_rate=1.0, statuses=(502,))})
    running = await start_sandbox(config)
    try:
        async with http.get(f"{running.url('jira')}/rest/api/2/myself", headers=JIRA_AUTH) as r:
            assert r.status == 502
        async with http.get(f"{running.url('servicenow')}{INCIDENTS}", headers=SN_AUTH) as r:
            assert r.status == 200
        async with http.get(f"{running.url('jira')}/_sandbox/faults") as r:
            assert (await r.json())["error_rate"] == 1.0
    finally:
        await running.stop()


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_sandbox_arguments(parser)
    return parser.parse_args(argv)


def test_cli_flags_build_the_config() -> None:
    defaults = sandbox_config_from_args(parse([]))
    sn, jira = defaults.platforms["servicenow"], defaults.platforms["jira"]
    assert (defaults.host, sn.port, jira.port) == ("127.0.0.1", 8081, 8082)
    assert sn.auth.user == DEFAULT_SERVICENOW_USER
    assert jira.faults == FaultSettings()
    config = sandbox_config_from_args(
        parse(
            [
                "--servicenow-port", "0", "--jira-port", "9000", "--jira-user", "me@example.com", "--jira-token", "s3cr3t-tok",
                "--error-rate", "0.3", "--fault-statuses", "503,429", "--retry-after-seconds", "4",
                "--latency-ms", "7", "--drop-after-commit-rate", "0.05", "--seed", "3", "--fault-platform", "jira",
            ]
        )
    )  # fmt: skip
    sn, jira = config.platforms["servicenow"], config.platforms["jira"]
    assert (sn.port, jira.port, config.seed) == (0, 9000, 3)
    assert (jira.auth.user, jira.auth.token) == ("me@example.com", "s3cr3t-tok")
    assert jira.faults == FaultSettings(
        error_rate=0.3, statuses=(503, 429), retry_after_seconds=4, latency_ms=7, drop_after_commit_rate=0.05
    )
    assert sn.faults == FaultSettings()
    assert "s3cr3t-tok" not in repr(config)  # secrets stay out of reprs
    for bad in (["--error-rate", "2"], ["--fault-statuses", "200"], ["--jira-port", "70000"]):
        with pytest.raises(SystemExit):
            parse(bad)
    with pytest.raises(ValueError, match="tls"):
        sandbox_config_from_args(parse(["--tls-cert", "cert.pem"]))


async def test_serve_sandbox_runs_until_cancelled(http: aiohttp.ClientSession) -> None:
    ready: asyncio.Queue[RunningSandbox] = asyncio.Queue()
    task = asyncio.create_task(
        serve_sandbox(SandboxConfig.on_free_ports(), on_ready=ready.put_nowait)
    )
    running = await asyncio.wait_for(ready.get(), timeout=10)
    async with http.get(f"{running.url('servicenow')}/_sandbox/stats") as r:
        assert r.status == 200
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(aiohttp.ClientConnectionError):
        async with http.get(f"{running.url('jira')}/_sandbox/stats"):
            pass


async def test_dev_config_serves_the_advertised_credentials(http: aiohttp.ClientSession) -> None:
    running = await start_sandbox(dev_sandbox_config({"servicenow": 0, "jira": 0}))
    try:
        sn_user, sn_secret = registered()["servicenow"].credentials
        headers = {"Accept": "application/json", **basic(sn_user, sn_secret)}
        async with http.get(f"{running.url('servicenow')}{INCIDENTS}", headers=headers) as r:
            assert r.status == 200
        jira_user, jira_secret = registered()["jira"].credentials
        async with http.get(
            f"{running.url('jira')}/rest/api/3/myself", headers=basic(jira_user, jira_secret)
        ) as r:
            assert r.status == 200
        assert running.url("servicenow").startswith("http://127.0.0.1:")
    finally:
        await running.stop()


async def test_write_latency_delays_writes_and_not_reads(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    sn = sandbox.url("servicenow")
    await put_faults(http, sn, {"write_latency_ms": 1500})
    finished: list[str] = []

    async def write() -> None:
        async with http.post(f"{sn}{INCIDENTS}", json={"short_description": "slow"}, headers=SN_AUTH) as r:
            assert r.status == 201
        finished.append("write")

    async def read() -> None:
        await asyncio.sleep(0.1)  # after the write went out
        async with http.get(f"{sn}{INCIDENTS}", headers=SN_AUTH) as r:
            assert r.status == 200 and (await r.json())["result"] == []  # not stored yet
        finished.append("read")

    await asyncio.gather(write(), read())
    assert finished == ["read", "write"]
    assert (await stats(http, sn))["records"] == 1
