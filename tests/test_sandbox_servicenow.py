"""The ServiceNow sandbox over real HTTP: Table API shapes, rules, queries, paging and auth."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from sandbox import (
    RunningSandbox,
    SandboxConfig,
    SandboxLimits,
    start_sandbox,
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

TABLE = "/api/now/table/incident"
JOURNAL = "/api/now/table/sys_journal_field"
JSON = {"Accept": "application/json"}
NOT_AUTHENTICATED = {
    "error": {"message": "User Not Authenticated", "detail": "Required to provide Auth information"},
    "status": "failure",
}
NO_RECORD = {
    "error": {
        "message": "No Record found",
        "detail": "Record doesn't exist or ACL restricts the record retrieval",
    },
    "status": "failure",
}


def basic(user: str, secret: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


AUTH = {**JSON, **basic(DEFAULT_SERVICENOW_USER, DEFAULT_SERVICENOW_PASSWORD)}


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    running = await start_sandbox(
        SandboxConfig.on_free_ports(limits=SandboxLimits(max_body_bytes=4096, max_records=50))
    )
    yield running
    await running.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def create(
    http: aiohttp.ClientSession, sandbox: RunningSandbox, body: dict[str, Any], params: str = ""
) -> dict[str, Any]:
    async with http.post(f"{sandbox.url('servicenow')}{TABLE}{params}", json=body, headers=AUTH) as response:
        assert response.status == 201, await response.text()
        result: dict[str, Any] = (await response.json())["result"]
        return result


async def query(http: aiohttp.ClientSession, sandbox: RunningSandbox, params: dict[str, str]) -> list[str]:
    """Numbers of the incidents a GET with these parameters returns, in order."""
    async with http.get(f"{sandbox.url('servicenow')}{TABLE}", params=params, headers=AUTH) as response:
        assert response.status == 200, await response.text()
        return [r["number"] for r in (await response.json())["result"]]


async def test_create_answers_201_with_location_and_instance_defaults(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        f"{sandbox.url('servicenow')}{TABLE}",
        json={"short_description": "Disk full", "correlation_id": "gw-1"},
        headers=AUTH,
    ) as response:
        assert response.status == 201
        result = (await response.json())["result"]
        assert response.headers["Location"] == f"{sandbox.url('servicenow')}{TABLE}/{result['sys_id']}"
    assert re.fullmatch(r"[0-9a-f]{32}", result["sys_id"])
    assert result["number"] == "INC0010001"
    assert (result["state"], result["impact"], result["urgency"], result["priority"]) == ("1", "3", "3", "5")
    assert result["short_description"] == "Disk full"
    assert result["correlation_id"] == "gw-1"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", result["sys_created_on"])
    assert result["sys_updated_on"] == result["sys_created_on"]
    assert result["opened_by"]["link"].startswith(f"{sandbox.url('servicenow')}/api/now/table/sys_user/")
    scalars = {k: v for k, v in result.items() if not isinstance(v, dict)}
    assert all(isinstance(v, str) for v in scalars.values())
    second = await create(http, sandbox, {"short_description": "Another"})
    assert second["number"] == "INC0010002"


async def test_system_fields_cannot_be_set_and_values_become_strings(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    result = await create(
        http,
        sandbox,
        {
            "sys_id": "0" * 32,
            "sys_created_on": "2001-01-01 00:00:00",
            "short_description": "typed",
            "reassignment_count": 3,
            "knowledge": True,
            "no_such_field": "dropped",
        },
    )
    assert result["sys_id"] != "0" * 32
    assert result["sys_created_on"] != "2001-01-01 00:00:00"
    assert result["reassignment_count"] == "3"
    assert result["knowledge"] == "true"
    assert "no_such_field" not in result


async def test_priority_is_computed_from_impact_and_urgency(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    matrix = {
        ("1", "1"): "1", ("1", "2"): "2", ("1", "3"): "3",
        ("2", "1"): "2", ("2", "2"): "3", ("2", "3"): "4",
        ("3", "1"): "3", ("3", "2"): "4", ("3", "3"): "5",
    }  # fmt: skip
    for (impact, urgency), priority in matrix.items():
        result = await create(http, sandbox, {"impact": impact, "urgency": urgency, "priority": "1"})
        assert result["priority"] == priority, (impact, urgency)


async def test_versioned_paths_serve_the_same_table(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    for prefix in ("/api/now/v1/table/incident", "/api/now/v2/table/incident"):
        async with http.post(
            f"{sandbox.url('servicenow')}{prefix}", json={"short_description": prefix}, headers=AUTH
        ) as r:
            assert r.status == 201
            sys_id = (await r.json())["result"]["sys_id"]
        async with http.get(f"{sandbox.url('servicenow')}{prefix}/{sys_id}", headers=AUTH) as r:
            assert (await r.json())["result"]["short_description"] == prefix


async def test_bad_or_missing_credentials_get_401(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    for headers in (
        JSON,
        {**JSON, **basic(DEFAULT_SERVICENOW_USER, "wrong")},
        {**JSON, **basic("someone", DEFAULT_SERVICENOW_PASSWORD)},
        {**JSON, "Authorization": "Bearer not-issued"},
    ):
        async with http.get(f"{sandbox.url('servicenow')}{TABLE}", headers=headers) as response:
            assert response.status == 401
            assert await response.json() == NOT_AUTHENTICATED


async def test_oauth_password_and_refresh_grants_issue_working_bearer_tokens(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    form = {
        "grant_type": "password",
        "client_id": DEFAULT_SERVICENOW_CLIENT_ID,
        "client_secret": DEFAULT_SERVICENOW_CLIENT_SECRET,
        "username": DEFAULT_SERVICENOW_USER,
        "password": DEFAULT_SERVICENOW_PASSWORD,
    }
    async with http.post(f"{sandbox.url('servicenow')}/oauth_token.do", data=form) as response:
        assert response.status == 200
        token = await response.json()
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 1799
    assert token["scope"] == "useraccount"
    bearer = {**JSON, "Authorization": f"Bearer {token['access_token']}"}
    async with http.post(
        f"{sandbox.url('servicenow')}{TABLE}", json={"short_description": "oauth"}, headers=bearer
    ) as r:
        assert r.status == 201
        assert (await r.json())["result"]["sys_created_by"] == DEFAULT_SERVICENOW_USER

    refresh = {
        "grant_type": "refresh_token",
        "client_id": DEFAULT_SERVICENOW_CLIENT_ID,
        "client_secret": DEFAULT_SERVICENOW_CLIENT_SECRET,
        "refresh_token": token["refresh_token"],
    }
    async with http.post(f"{sandbox.url('servicenow')}/oauth_token.do", data=refresh) as response:
        assert response.status == 200
        renewed = await response.json()
    async with http.get(
        f"{sandbox.url('servicenow')}{TABLE}",
        headers={**JSON, "Authorization": f"Bearer {renewed['access_token']}"},
    ) as r:
        assert r.status == 200

    for bad in ({"client_secret": "nope"}, {"password": "nope"}):
        async with http.post(f"{sandbox.url('servicenow')}/oauth_token.do", data={**form, **bad}) as response:
            assert response.status == 401
            assert "access_token" not in await response.json()


async def test_media_types_are_checked_leniently(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    url = f"{sandbox.url('servicenow')}{TABLE}"
    credentials = basic(DEFAULT_SERVICENOW_USER, DEFAULT_SERVICENOW_PASSWORD)
    async with http.get(url, headers=credentials, skip_auto_headers=("Accept",)) as r:
        assert r.status == 400
        assert (await r.json())["status"] == "failure"
    async with http.get(url, headers={**credentials, "Accept": "text/html"}) as r:
        assert r.status == 406
    for accept in ("application/json; charset=utf-8", "*/*", "application/json, text/plain, */*"):
        async with http.get(url, headers={**credentials, "Accept": accept}) as r:
            assert r.status == 200, accept
    async with http.post(
        url, data=b'{"short_description": "x"}', headers=AUTH, skip_auto_headers=("Content-Type",)
    ) as r:
        assert r.status == 400  # no Content-Type at all
    async with http.post(
        url, data=b"short_description=x", headers={**AUTH, "Content-Type": "text/plain"}
    ) as r:
        assert r.status == 415
    async with http.post(
        url,
        data=b'{"short_description": "x"}',
        headers={**AUTH, "Content-Type": "application/json; charset=UTF-8"},
    ) as r:
        assert r.status == 201


async def test_missing_record_is_404_with_the_instance_body(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    missing = f"{sandbox.url('servicenow')}{TABLE}/{'a' * 32}"
    for method in ("GET", "PATCH", "PUT", "DELETE"):
        body = {"short_description": "x"} if method in ("PATCH", "PUT") else None
        async with http.request(method, missing, json=body, headers=AUTH) as response:
            assert response.status == 404, method
            assert await response.json() == NO_RECORD


async def test_patch_changes_only_sent_fields_and_journals_notes(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    created = await create(http, sandbox, {"short_description": "Printer on fire", "urgency": "2"})
    url = f"{sandbox.url('servicenow')}{TABLE}/{created['sys_id']}"
    async with http.patch(
        url, json={"work_notes": "Checked the toner", "comments": "We are on it", "impact": "1"}, headers=AUTH
    ) as r:
        assert r.status == 200
        updated = (await r.json())["result"]
    assert updated["short_description"] == "Printer on fire"
    assert (updated["impact"], updated["urgency"], updated["priority"]) == ("1", "2", "2")
    assert updated["work_notes"] == ""  # journal fields are write-only as values
    assert updated["sys_mod_count"] == "1"
    async with http.get(url, params={"sysparm_display_value": "true"}, headers=AUTH) as r:
        shown = (await r.json())["result"]
    assert "Checked the toner" in shown["work_notes"]
    assert "(Work notes)" in shown["work_notes"]
    assert "We are on it" in shown["comments"]
    assert "Checked the toner" not in shown["comments"]
    async with http.put(url, json={"short_description": "Printer fixed"}, headers=AUTH) as r:
        assert (await r.json())["result"]["short_description"] == "Printer fixed"


async def test_resolving_needs_close_code_and_notes(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    created = await create(http, sandbox, {"short_description": "VPN down"})
    url = f"{sandbox.url('servicenow')}{TABLE}/{created['sys_id']}"
    async with http.patch(url, json={"state": "6", "close_code": "Solution provided"}, headers=AUTH) as r:
        assert r.status == 403
        error = await r.json()
    assert error["status"] == "failure"
    assert (
        error["error"]["detail"]
        == "Data Policy Exception: The following fields are mandatory: Resolution notes"
    )
    async with http.patch(url, json={"state": "6"}, headers=AUTH) as r:
        assert (await r.json())["error"]["detail"].endswith("mandatory: Resolution code, Resolution notes")
    async with http.get(url, headers=AUTH) as r:
        assert (await r.json())["result"]["state"] == "1"  # the refused update changed nothing

    async with http.patch(
        url, json={"state": "6", "close_code": "Solution provided", "close_notes": "Restarted"}, headers=AUTH
    ) as r:
        assert r.status == 200
        resolved = (await r.json())["result"]
    assert (resolved["state"], resolved["incident_state"], resolved["active"]) == ("6", "6", "true")
    assert resolved["resolved_at"] != ""
    async with http.patch(url, json={"state": "7"}, headers=AUTH) as r:
        closed = (await r.json())["result"]
    assert (closed["state"], closed["active"]) == ("7", "false")


async def test_closed_incident_cannot_be_reopened_but_resolved_one_can(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    created = await create(http, sandbox, {"short_description": "Flaky DNS"})
    url = f"{sandbox.url('servicenow')}{TABLE}/{created['sys_id']}"
    resolve = {"state": "6", "close_code": "Solution provided", "close_notes": "Flushed caches"}
    async with http.patch(url, json=resolve, headers=AUTH) as r:
        assert r.status == 200
    async with http.patch(url, json={"state": "2", "work_notes": "Back again"}, headers=AUTH) as r:
        assert r.status == 200
        reopened = (await r.json())["result"]
    assert (reopened["state"], reopened["reopen_count"], reopened["active"]) == ("2", "1", "true")
    assert reopened["resolved_at"] == ""

    async with http.patch(url, json={**resolve, "state": "7"}, headers=AUTH) as r:
        closed = (await r.json())["result"]
    assert (closed["state"], closed["active"]) == ("7", "false")
    for method, body in (
        ("PATCH", {"state": "2", "work_notes": "reopen please"}),
        ("PUT", {"state": "1"}),
        ("PATCH", {"incident_state": "6"}),  # the legacy field leads to the same state change
    ):
        async with http.request(method, url, json=body, headers=AUTH) as r:
            assert r.status == 403, method
            assert await r.json() == {
                "error": {
                    "message": "Operation Failed",
                    "detail": "ACL Exception Update Failed due to security constraints: "
                    "a Closed incident cannot be reopened",
                },
                "status": "failure",
            }
    async with http.get(url, headers=AUTH) as r:
        after = (await r.json())["result"]
    assert (after["state"], after["reopen_count"]) == ("7", "1")
    assert after["sys_mod_count"] == closed["sys_mod_count"]
    notes = await journal(http, sandbox, {"sysparm_query": f"element_id={created['sys_id']}"})
    assert [n["value"] for n in notes] == ["Back again"]  # the refused note was not kept either
    async with http.patch(url, json={"state": "7", "work_notes": "Post-mortem linked"}, headers=AUTH) as r:
        assert r.status == 200  # staying Closed is no reopen


async def journal(
    http: aiohttp.ClientSession, sandbox: RunningSandbox, params: dict[str, str]
) -> list[dict[str, Any]]:
    async with http.get(f"{sandbox.url('servicenow')}{JOURNAL}", params=params, headers=AUTH) as response:
        assert response.status == 200, await response.text()
        rows: list[dict[str, Any]] = (await response.json())["result"]
        assert response.headers["X-Total-Count"].isdigit()
        return rows


async def test_journal_entries_are_rows_of_sys_journal_field(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    first = await create(http, sandbox, {"short_description": "Queue backlog", "work_notes": "Paged on-call"})
    other = await create(http, sandbox, {"short_description": "Other", "comments": "Unrelated"})
    url = f"{sandbox.url('servicenow')}{TABLE}/{first['sys_id']}"
    async with http.patch(url, json={"comments": "We are looking into it"}, headers=AUTH) as r:
        assert r.status == 200
    async with http.patch(url, json={"work_notes": "Drained the queue\n[itsmgw:op-7]"}, headers=AUTH) as r:
        assert r.status == 200

    own = f"element_id={first['sys_id']}"
    rows = await journal(http, sandbox, {"sysparm_query": f"{own}^ORDERBYsys_created_on"})
    assert [(r["element"], r["value"]) for r in rows] == [
        ("work_notes", "Paged on-call"),
        ("comments", "We are looking into it"),
        ("work_notes", "Drained the queue\n[itsmgw:op-7]"),
    ]
    assert sorted(rows[0]) == sorted(
        ["sys_id", "element_id", "name", "element", "value", "sys_created_on", "sys_created_by"]
    )
    for row in rows:
        assert re.fullmatch(r"[0-9a-f]{32}", row["sys_id"])
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", row["sys_created_on"])
        assert (row["element_id"], row["name"], row["sys_created_by"]) == (
            first["sys_id"],
            "incident",
            DEFAULT_SERVICENOW_USER,
        )
    assert len({r["sys_id"] for r in rows}) == 3

    newest_first = await journal(http, sandbox, {"sysparm_query": f"{own}^ORDERBYDESCsys_created_on"})
    assert [r["value"] for r in newest_first] == [r["value"] for r in reversed(rows)]
    marker = f"{own}^element=work_notes^valueLIKEitsmgw:op-7"
    assert await journal(http, sandbox, {"sysparm_query": marker}) == [rows[2]]
    assert await journal(http, sandbox, {"sysparm_query": "valueENDSWITH[itsmgw:op-7]"}) == [rows[2]]
    assert await journal(http, sandbox, {"sysparm_query": "valueLIKEitsmgw:op-8"}) == []
    either = await journal(http, sandbox, {"sysparm_query": "element=comments^name=incident^ORvalue=nothing"})
    assert [r["element_id"] for r in either] == [other["sys_id"], first["sys_id"]]  # creation order
    plain = await journal(http, sandbox, {"element_id": other["sys_id"]})  # a plain parameter filters too
    assert [r["value"] for r in plain] == ["Unrelated"]

    page = {"sysparm_query": "ORDERBYsys_created_on", "sysparm_limit": "2", "sysparm_offset": "2"}
    async with http.get(f"{sandbox.url('servicenow')}{JOURNAL}", params=page, headers=AUTH) as r:
        assert r.headers["X-Total-Count"] == "4"
        assert 'rel="prev"' in r.headers["Link"]
        assert len((await r.json())["result"]) == 2
    trimmed = await journal(
        http, sandbox, {"sysparm_fields": "value,element", "sysparm_query": f"element_id={other['sys_id']}"}
    )
    assert trimmed == [{"value": "Unrelated", "element": "comments"}]
    both = await journal(
        http, sandbox, {"sysparm_display_value": "all", "sysparm_query": f"element_id={other['sys_id']}"}
    )
    assert both[0]["value"] == {"display_value": "Unrelated", "value": "Unrelated"}

    async with http.get(f"{sandbox.url('servicenow')}{JOURNAL}/{rows[1]['sys_id']}", headers=AUTH) as r:
        assert r.status == 200
        assert (await r.json())["result"] == rows[1]
    versioned = f"{sandbox.url('servicenow')}/api/now/v2/table/sys_journal_field/{'0' * 32}"
    async with http.get(versioned, headers=AUTH) as r:
        assert (r.status, await r.json()) == (404, NO_RECORD)

    async with http.delete(f"{sandbox.url('servicenow')}{TABLE}/{other['sys_id']}", headers=AUTH) as r:
        assert r.status == 204
    assert await journal(http, sandbox, {"element_id": other["sys_id"]}) == []  # entries go with the record


async def test_journal_table_is_read_only(sandbox: RunningSandbox, http: aiohttp.ClientSession) -> None:
    created = await create(http, sandbox, {"short_description": "x", "work_notes": "original"})
    [entry] = await journal(http, sandbox, {"element_id": created["sys_id"]})
    base = f"{sandbox.url('servicenow')}{JOURNAL}"
    for method, url, operation in (
        ("POST", base, "Insert"),
        ("PATCH", f"{base}/{entry['sys_id']}", "Update"),
        ("PUT", f"{base}/{entry['sys_id']}", "Update"),
        ("DELETE", f"{base}/{entry['sys_id']}", "Delete"),
    ):
        body = {"element_id": created["sys_id"], "element": "work_notes", "value": "forged"}
        async with http.request(method, url, json=body, headers=AUTH) as r:
            assert r.status == 403, method
            assert await r.json() == {
                "error": {
                    "message": "Operation Failed",
                    "detail": f"ACL Exception {operation} Failed due to security constraints",
                },
                "status": "failure",
            }
    assert await journal(http, sandbox, {}) == [entry]


async def test_delete_removes_the_record(sandbox: RunningSandbox, http: aiohttp.ClientSession) -> None:
    created = await create(http, sandbox, {"short_description": "temp"})
    url = f"{sandbox.url('servicenow')}{TABLE}/{created['sys_id']}"
    async with http.delete(url, headers=AUTH) as r:
        assert r.status == 204
    async with http.get(url, headers=AUTH) as r:
        assert r.status == 404


async def test_encoded_query_operators_and_ordering(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    rows = [
        {"short_description": "Disk full on db1", "correlation_id": "a-1", "urgency": "1"},  # INC0010001
        {"short_description": "Disk slow on db2", "correlation_id": "a-2", "urgency": "2"},  # INC0010002
        {"short_description": "Network flap", "correlation_id": "b-1", "urgency": "3"},  # INC0010003
        {"short_description": "Backup failed", "correlation_id": "", "urgency": "2"},  # INC0010004
    ]
    for row in rows:
        await create(http, sandbox, row)

    async def numbers(q: str, **extra: str) -> list[str]:
        return await query(http, sandbox, {"sysparm_query": q, **extra})

    assert await numbers("correlation_id=a-2") == ["INC0010002"]
    assert await numbers("correlation_id=A-2") == ["INC0010002"]  # the database collation ignores case
    assert await numbers("correlation_id!=a-1") == ["INC0010002", "INC0010003"]  # empty never matches !=
    assert await numbers("short_descriptionLIKEdisk") == ["INC0010001", "INC0010002"]
    assert await numbers("correlation_idSTARTSWITHb") == ["INC0010003"]
    assert await numbers("short_descriptionLIKEdisk^urgency=2") == ["INC0010002"]
    assert await numbers("correlation_id=a-1^ORcorrelation_id=b-1") == ["INC0010001", "INC0010003"]
    assert await numbers("urgency=2^ORDERBYDESCnumber") == ["INC0010004", "INC0010002"]
    assert await numbers("ORDERBYurgency^ORDERBYDESCnumber") == [
        "INC0010001", "INC0010004", "INC0010002", "INC0010003",
    ]  # fmt: skip
    assert await numbers("correlation_idISEMPTY") == ["INC0010004"]
    # Plain field=value parameters filter too, and unknown sysparm_* parameters are ignored.
    assert await query(http, sandbox, {"urgency": "2", "sysparm_view": "", "sysparm_no_count": "x"}) == [
        "INC0010002", "INC0010004",
    ]  # fmt: skip
    # Like the instance, a condition on an unknown field is dropped: a typo matches everything.
    assert len(await numbers("correlation_idd=a-1")) == 4


async def test_limit_offset_and_paging_headers(sandbox: RunningSandbox, http: aiohttp.ClientSession) -> None:
    for index in range(5):
        await create(http, sandbox, {"short_description": f"row {index}"})
    url = f"{sandbox.url('servicenow')}{TABLE}"

    async def page(limit: int, offset: int) -> tuple[list[str], dict[str, str], str]:
        params = {
            "sysparm_limit": str(limit),
            "sysparm_offset": str(offset),
            "sysparm_query": "ORDERBYnumber",
        }
        async with http.get(url, params=params, headers=AUTH) as r:
            numbers = [row["number"] for row in (await r.json())["result"]]
            links = {
                rel: href for href, rel in re.findall(r'<([^>]+)>;rel="(\w+)"', r.headers.get("Link", ""))
            }
            return numbers, links, r.headers["X-Total-Count"]

    numbers, links, total = await page(2, 0)
    assert numbers == ["INC0010001", "INC0010002"]
    assert total == "5"
    assert set(links) == {"first", "next", "last"}
    assert "sysparm_offset=2" in links["next"]
    assert "sysparm_offset=4" in links["last"]
    numbers, links, _ = await page(2, 2)
    assert numbers == ["INC0010003", "INC0010004"]
    assert set(links) == {"first", "prev", "next", "last"}
    numbers, links, _ = await page(2, 4)
    assert numbers == ["INC0010005"]
    assert set(links) == {"first", "prev", "last"}
    async with http.get(links["first"], headers=AUTH) as r:  # the links themselves work
        assert len((await r.json())["result"]) == 2
    async with http.get(url, headers=AUTH) as r:
        assert "Link" not in r.headers  # one page
        assert r.headers["X-Total-Count"] == "5"
    async with http.get(url, params={"sysparm_limit": "zero"}, headers=AUTH) as r:
        assert r.status == 400


async def test_fields_display_values_and_reference_links(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    created = await create(http, sandbox, {"short_description": "ref", "assignment_group": "a" * 32})
    url = f"{sandbox.url('servicenow')}{TABLE}/{created['sys_id']}"

    async def get(**params: str) -> dict[str, Any]:
        async with http.get(url, params=params, headers=AUTH) as r:
            assert r.status == 200
            result: dict[str, Any] = (await r.json())["result"]
            return result

    group_link = f"{sandbox.url('servicenow')}/api/now/table/sys_user_group/{'a' * 32}"
    assert (await get())["assignment_group"] == {"link": group_link, "value": "a" * 32}
    assert (await get(sysparm_exclude_reference_link="True"))["assignment_group"] == "a" * 32
    assert (await get(sysparm_exclude_reference_link="false"))["assignment_group"]["value"] == "a" * 32
    assert (await get(sysparm_fields="number,state,nope")) == {"number": "INC0010001", "state": "1"}
    shown = await get(sysparm_display_value="TRUE", sysparm_fields="state,priority,caller_id")
    assert shown == {"state": "New", "priority": "5 - Planning", "caller_id": ""}
    both = await get(sysparm_display_value="all", sysparm_fields="state,assignment_group")
    assert both["state"] == {"display_value": "New", "value": "1"}
    assert both["assignment_group"]["link"] == group_link
    plain = await create(http, sandbox, {"state": "In Progress"}, "?sysparm_input_display_value=true")
    assert plain["state"] == "2"


async def test_unknown_table_path_and_method(sandbox: RunningSandbox, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{sandbox.url('servicenow')}/api/now/table/problem", headers=AUTH) as r:
        assert r.status == 400
        assert (await r.json())["error"]["message"] == "Invalid table problem"
    async with http.get(f"{sandbox.url('servicenow')}/api/now/nothing/here", headers=AUTH) as r:
        assert r.status == 400
        assert (await r.json())["error"]["message"] == "Requested URI does not represent any resource"
    async with http.delete(f"{sandbox.url('servicenow')}{TABLE}", headers=AUTH) as r:
        assert r.status == 405
        assert (await r.json())["status"] == "failure"


async def test_bad_bodies_and_bounds(sandbox: RunningSandbox, http: aiohttp.ClientSession) -> None:
    url = f"{sandbox.url('servicenow')}{TABLE}"
    headers = {**AUTH, "Content-Type": "application/json"}
    async with http.post(url, data=b"{not json", headers=headers) as r:
        assert r.status == 400
        assert (await r.json())["error"]["message"] == "Exception while reading request"
    async with http.post(url, json=["a", "list"], headers=AUTH) as r:
        assert r.status == 400
    async with http.post(url, json={"description": "x" * 5000}, headers=AUTH) as r:
        assert r.status == 413
        assert (await r.json())["status"] == "failure"
    for _ in range(50):
        await create(http, sandbox, {"short_description": "fill"})
    async with http.post(url, json={"short_description": "one too many"}, headers=AUTH) as r:
        assert r.status == 507


async def test_ticket_ui_link_opens_a_page(sandbox: RunningSandbox, http: aiohttp.ClientSession) -> None:
    created = await create(
        http, sandbox, {"short_description": "Broken <b>printer</b>", "work_notes": "toner"}
    )
    url = f"{sandbox.url('servicenow')}/nav_to.do?uri=incident.do?sys_id={created['sys_id']}"
    async with http.get(url) as r:
        assert r.status == 401
        assert r.headers["WWW-Authenticate"].lower().startswith("basic")
    async with http.get(url, headers=AUTH) as r:
        assert r.status == 200
        page = await r.text()
    assert "INC0010001" in page and "Broken &lt;b&gt;printer&lt;/b&gt;" in page and "toner" in page
    async with http.get(f"{sandbox.url('servicenow')}/incident.do?sys_id={'0' * 32}", headers=AUTH) as r:
        assert r.status == 404
