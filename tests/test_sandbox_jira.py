"""The Jira sandbox over real HTTP: v2 and v3 issues, field rules, comments, workflow and search."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from sandbox import (
    RunningSandbox,
    SandboxConfig,
    start_sandbox,
)
from sandbox.jira.settings import (
    DEFAULT_TOKEN as DEFAULT_JIRA_TOKEN,
)
from sandbox.jira.settings import (
    DEFAULT_USER as DEFAULT_JIRA_USER,
)

NOT_FOUND = {"errorMessages": ["Issue does not exist or you do not have permission to see it."], "errors": {}}


def basic(user: str, secret: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


AUTH = basic(DEFAULT_JIRA_USER, DEFAULT_JIRA_TOKEN)


def adf(text: str) -> dict[str, Any]:
    paragraph = {"type": "paragraph", "content": [{"type": "text", "text": text}]}
    return {"type": "doc", "version": 1, "content": [paragraph]}


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    running = await start_sandbox(SandboxConfig.on_free_ports())
    yield running
    await running.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def task(summary: str = "Rotate keys", **fields: Any) -> dict[str, Any]:
    return {
        "fields": {"project": {"key": "OPS"}, "issuetype": {"name": "Task"}, "summary": summary, **fields}
    }


class Jira:
    """Thin test helper: one API version of the sandbox's Jira."""

    def __init__(self, http: aiohttp.ClientSession, sandbox: RunningSandbox, version: int) -> None:
        self.http = http
        self.base = f"{sandbox.url('jira')}/rest/api/{version}"

    async def call(self, method: str, path: str, body: Any = None, **params: str) -> tuple[int, Any]:
        async with self.http.request(
            method, f"{self.base}/{path}", json=body, params=params or None, headers=AUTH
        ) as response:
            text = await response.text()
            return response.status, (await response.json()) if text else None

    async def ok(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        """The answer of a call that must succeed."""
        status, answer = await self.call(method, path, body, **params)
        assert 200 <= status < 300, answer
        return answer

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        status, created = await self.call("POST", "issue", body)
        assert status == 201, created
        result: dict[str, Any] = created
        return result

    async def fields(self, key: str) -> dict[str, Any]:
        status, issue = await self.call("GET", f"issue/{key}")
        assert status == 200, issue
        fields: dict[str, Any] = issue["fields"]
        return fields

    async def keys(self, jql: str, **params: str) -> list[str]:
        status, found = await self.call("GET", "search", jql=jql, **params)
        assert status == 200, found
        return [issue["key"] for issue in found["issues"]]


@pytest.fixture
def v2(http: aiohttp.ClientSession, sandbox: RunningSandbox) -> Jira:
    return Jira(http, sandbox, 2)


@pytest.fixture
def v3(http: aiohttp.ClientSession, sandbox: RunningSandbox) -> Jira:
    return Jira(http, sandbox, 3)


async def test_create_numbers_issues_and_get_reads_them_by_key_or_id(
    v2: Jira, sandbox: RunningSandbox
) -> None:
    first = await v2.create(task(description="Plain *wiki* text", labels=["ops", "gw-1"]))
    assert first == {"id": "10000", "key": "OPS-1", "self": f"{sandbox.url('jira')}/rest/api/2/issue/10000"}
    assert (await v2.create(task()))["key"] == "OPS-2"
    fields = await v2.fields("OPS-1")
    assert fields == await v2.fields("10000")
    assert fields["summary"] == "Rotate keys"
    assert fields["description"] == "Plain *wiki* text"
    assert fields["labels"] == ["gw-1", "ops"]
    assert fields["status"]["name"] == "To Do"
    assert fields["status"]["statusCategory"]["key"] == "new"
    assert fields["priority"]["name"] == "Medium"
    assert fields["issuetype"]["name"] == "Task"
    assert fields["project"]["key"] == "OPS"
    assert fields["resolution"] is None
    assert fields["reporter"]["emailAddress"] == DEFAULT_JIRA_USER
    status, missing = await v2.call("GET", "issue/OPS-99")
    assert (status, missing) == (404, NOT_FOUND)


async def test_references_by_id_key_or_name_and_unknown_ones(v2: Jira) -> None:
    created = await v2.create(
        {
            "fields": {
                "project": {"id": "10000"},
                "issuetype": {"id": "10002"},
                "summary": "x",
                "priority": {"id": "2"},
            }
        }
    )
    fields = await v2.fields(created["key"])
    assert (fields["issuetype"]["name"], fields["priority"]["name"]) == ("Bug", "High")
    by_name = await v2.create(task(priority={"name": "lowest"}, issuetype={"name": "Incident"}))
    assert (await v2.fields(by_name["key"]))["priority"]["name"] == "Lowest"

    status, error = await v2.call(
        "POST", "issue", {"fields": {**task()["fields"], "project": {"key": "NOPE"}}}
    )
    assert status == 400 and set(error["errors"]) == {"project"}
    status, error = await v2.call(
        "POST", "issue", task(issuetype={"name": "Epic"}, priority={"name": "Urgent"})
    )
    assert status == 400
    assert set(error["errors"]) == {"issuetype", "priority"}
    assert error["errorMessages"] == []
    status, error = await v2.call("POST", "issue", task(customfield_99999="x"))
    assert status == 400 and "customfield_99999" in error["errors"]


async def test_summary_and_label_rules(v2: Jira) -> None:
    status, error = await v2.call(
        "POST", "issue", {"fields": {"project": {"key": "OPS"}, "issuetype": {"name": "Task"}}}
    )
    assert status == 400 and "summary" in error["errors"]
    status, error = await v2.call("POST", "issue", task("x" * 255))
    assert (status, error) == (
        400,
        {"errorMessages": [], "errors": {"summary": "Summary must be less than 255 characters."}},
    )
    assert (await v2.create(task("x" * 254)))["key"] == "OPS-1"
    status, error = await v2.call("POST", "issue", task(labels=["ok", "x y"]))
    assert (status, error["errors"]) == (400, {"labels": "The label 'x y' contains spaces which is invalid."})


async def test_v3_wants_documents_and_v2_wants_strings(v2: Jira, v3: Jira) -> None:
    status, error = await v3.call("POST", "issue", task(description="plain text"))
    assert status == 400
    assert error["errors"]["description"].startswith("Operation value must be an Atlassian Document")
    cloud = await v3.create(task(description=adf("Rich text")))
    assert (await v3.fields(cloud["key"]))["description"] == adf("Rich text")
    assert (await v2.fields(cloud["key"]))["description"] == "Rich text"
    dc = await v2.create(task(description="Line one"))
    assert (await v3.fields(dc["key"]))["description"]["type"] == "doc"
    status, error = await v2.call("POST", "issue", task(description=adf("no")))
    assert status == 400 and "description" in error["errors"]


async def test_properties_on_create_and_property_endpoints(v2: Jira) -> None:
    body = {**task(), "properties": [{"key": "gateway", "value": {"marker": "gw-7"}}]}
    key = (await v2.create(body))["key"]
    assert await v2.call("GET", f"issue/{key}/properties/gateway") == (
        200,
        {"key": "gateway", "value": {"marker": "gw-7"}},
    )
    assert (await v2.call("PUT", f"issue/{key}/properties/extra", {"n": 1}))[0] == 201
    assert (await v2.call("PUT", f"issue/{key}/properties/extra", {"n": 2}))[0] == 200
    listing = await v2.ok("GET", f"issue/{key}/properties")
    assert [k["key"] for k in listing["keys"]] == ["gateway", "extra"]
    assert (await v2.call("DELETE", f"issue/{key}/properties/extra"))[0] == 204
    assert (await v2.call("GET", f"issue/{key}/properties/extra"))[0] == 404


async def test_edit_with_fields_and_update_operations(v2: Jira) -> None:
    key = (await v2.create(task(labels=["a", "b"])))["key"]
    status, _ = await v2.call(
        "PUT",
        f"issue/{key}",
        {
            "fields": {"summary": "Renamed", "priority": {"name": "High"}},
            "update": {"labels": [{"add": "c"}, {"remove": "a"}]},
        },
    )
    assert status == 204
    fields = await v2.fields(key)
    assert (fields["summary"], fields["priority"]["name"], fields["labels"]) == (
        "Renamed",
        "High",
        ["b", "c"],
    )
    status, error = await v2.call("PUT", f"issue/{key}", {"update": {"labels": [{"add": "has space"}]}})
    assert status == 400 and "labels" in error["errors"]
    status, error = await v2.call("PUT", f"issue/{key}", {"fields": {"project": {"key": "OPS"}}})
    assert status == 400 and "project" in error["errors"]
    assert (await v2.call("PUT", "issue/OPS-99", {"fields": {"summary": "x"}}))[0] == 404


async def test_comments(v2: Jira, v3: Jira) -> None:
    key = (await v2.create(task()))["key"]
    status, comment = await v2.call("POST", f"issue/{key}/comment", {"body": "Looking into it"})
    assert status == 201
    assert comment["body"] == "Looking into it"
    assert comment["author"]["emailAddress"] == DEFAULT_JIRA_USER
    assert comment["id"]
    status, error = await v3.call("POST", f"issue/{key}/comment", {"body": "plain"})
    assert status == 400 and "comment" in error["errors"]
    assert (await v3.call("POST", f"issue/{key}/comment", {"body": adf("rich")}))[0] == 201
    status, error = await v2.call("POST", f"issue/{key}/comment", {"body": ""})
    assert status == 400
    listing = await v2.ok("GET", f"issue/{key}/comment")
    assert [c["body"] for c in listing["comments"]] == ["Looking into it", "rich"]
    assert listing["total"] == 2


async def test_comment_properties_visibility_and_listing(v2: Jira, v3: Jira) -> None:
    key = (await v2.create(task()))["key"]
    marker = {"key": "itsmgw", "value": {"op": "op-7"}}
    developers = {"type": "role", "value": "Developers"}
    status, first = await v2.call(
        "POST",
        f"issue/{key}/comment",
        {"body": "Restarted the broker", "properties": [marker], "visibility": developers},
    )
    assert status == 201
    assert first["visibility"] == {"type": "role", "value": "Developers"}
    assert "properties" not in first  # only expand=properties shows them
    internal = {"key": "sd.public.comment", "value": {"internal": True}}  # Service Management's flag
    status, second = await v3.call(
        "POST",
        f"issue/{key}/comment",
        {
            "body": adf("Internal only"),
            "properties": [internal],
            "visibility": {"type": "group", "value": "jira-software-users"},
        },
        expand="properties",
    )
    assert status == 201
    assert second["visibility"] == {
        "type": "group",
        "value": "jira-software-users",
        "identifier": "jira-software-users",
    }
    assert second["properties"] == [internal]
    assert (first["jsdPublic"], second["jsdPublic"]) == (True, False)
    third = await v2.ok("POST", f"issue/{key}/comment", {"body": "Plain"})
    assert "visibility" not in third

    listing = await v2.ok("GET", f"issue/{key}/comment", expand="properties")
    assert [(c["id"], c["properties"]) for c in listing["comments"]] == [
        (first["id"], [marker]),
        (second["id"], [internal]),
        (third["id"], []),
    ]
    assert "properties" not in (await v2.ok("GET", f"issue/{key}/comment"))["comments"][0]
    newest = await v3.ok("GET", f"issue/{key}/comment", orderBy="-created", startAt="1", maxResults="1")
    assert ([c["id"] for c in newest["comments"]], newest["total"]) == ([second["id"]], 3)
    one = await v3.ok("GET", f"issue/{key}/comment/{first['id']}", expand="properties")
    assert one["properties"] == [marker]
    assert one["body"]["type"] == "doc"  # v3 reads it back as ADF
    assert one["visibility"]["identifier"] == "Developers"

    for bad, field, message in (
        ({"properties": {"itsmgw": 1}}, "properties", "properties must be a list of {key, value} objects."),
        ({"properties": [{"key": "k" * 256, "value": 1}]}, "properties", "1 to 255 characters"),
        ({"visibility": {"type": "role", "value": "Nope"}}, "commentLevel",
         "You are currently not a member of the project role: Nope."),
        ({"visibility": {"type": "group", "value": "strangers"}}, "commentLevel",
         "You are currently not a member of the group: strangers."),
        ({"visibility": {"type": "user", "value": "me"}}, "commentLevel", "type 'role' or 'group'"),
    ):  # fmt: skip
        status, error = await v2.call("POST", f"issue/{key}/comment", {"body": "x", **bad})
        assert status == 400 and message in error["errors"][field], bad
    assert (await v2.ok("GET", f"issue/{key}/comment"))["total"] == 3  # refused comments were not kept


async def test_comment_property_endpoints(v2: Jira, v3: Jira) -> None:
    key = (await v2.create(task()))["key"]
    body = {"body": adf("Fixed"), "properties": [{"key": "itsmgw", "value": {"op": "op-1"}}]}
    comment_id = (await v3.ok("POST", f"issue/{key}/comment", body))["id"]
    path = f"comment/{comment_id}/properties"
    assert await v3.call("GET", f"{path}/itsmgw") == (200, {"key": "itsmgw", "value": {"op": "op-1"}})
    assert (await v2.call("PUT", f"{path}/extra", {"n": 1}))[0] == 201
    assert (await v2.call("PUT", f"{path}/extra", {"n": 2}))[0] == 200
    keys = await v3.ok("GET", path)
    assert [k["key"] for k in keys["keys"]] == ["itsmgw", "extra"]
    assert keys["keys"][1]["self"].endswith(f"/rest/api/3/comment/{comment_id}/properties/extra")
    assert (await v3.call("DELETE", f"{path}/extra"))[0] == 204
    status, error = await v2.call("GET", f"{path}/extra")
    assert (status, error["errorMessages"]) == (404, ["The property with key 'extra' does not exist."])
    assert (await v2.call("DELETE", f"{path}/extra"))[0] == 404
    status, error = await v2.call("PUT", f"{path}/{'k' * 256}", {"n": 1})
    assert status == 400
    listed = await v2.ok("GET", f"issue/{key}/comment/{comment_id}", expand="properties")
    assert listed["properties"] == [{"key": "itsmgw", "value": {"op": "op-1"}}]
    status, error = await v2.call("GET", "comment/99999/properties/itsmgw")
    assert (status, error["errorMessages"]) == (404, ["Can not find a comment for the id: 99999."])
    assert (await v2.call("DELETE", f"issue/{key}"))[0] == 204
    assert (await v3.call("GET", f"{path}/itsmgw"))[0] == 404  # gone with its issue


async def test_transition_screens_require_a_resolution_into_done(v2: Jira, v3: Jira) -> None:
    key = (await v2.create(task()))["key"]
    expanded = await v2.ok("GET", f"issue/{key}/transitions", expand="transitions.fields")
    assert [(t["name"], t["hasScreen"], t["fields"]) for t in expanded["transitions"]] == [
        ("In Progress", False, {})
    ]
    await v2.ok("POST", f"issue/{key}/transitions", {"transition": {"id": "21"}})

    expanded = await v3.ok("GET", f"issue/{key}/transitions", expand="transitions.fields")
    by_name = {t["name"]: t for t in expanded["transitions"]}
    assert (by_name["To Do"]["hasScreen"], by_name["To Do"]["fields"]) == (False, {})
    done = by_name["Done"]
    assert done["hasScreen"] is True
    resolution = done["fields"]["resolution"]
    assert {k: v for k, v in resolution.items() if k != "allowedValues"} == {
        "required": True,
        "schema": {"type": "resolution", "system": "resolution"},
        "name": "Resolution",
        "key": "resolution",
        "hasDefaultValue": False,
        "operations": ["set"],
    }
    resolutions = await v3.ok("GET", "resolution")
    assert resolution["allowedValues"] == resolutions
    assert "Won't Do" in [r["name"] for r in resolution["allowedValues"]]
    plain = await v2.ok("GET", f"issue/{key}/transitions")
    assert all("fields" not in t for t in plain["transitions"])
    assert {t["name"]: t["hasScreen"] for t in plain["transitions"]} == {"To Do": False, "Done": True}

    required = {"errorMessages": [], "errors": {"resolution": "Resolution is required."}}
    for body in ({"transition": {"id": "31"}}, {"transition": {"id": "31"}, "fields": {}}):
        assert await v2.call("POST", f"issue/{key}/transitions", body) == (400, required)
    fields = await v2.fields(key)
    assert (fields["status"]["name"], fields["resolution"]) == ("In Progress", None)  # nothing changed

    won_t_do = {"transition": {"id": "31"}, "fields": {"resolution": {"name": "Won't Do"}}}
    assert (await v3.call("POST", f"issue/{key}/transitions", won_t_do))[0] == 204
    fields = await v2.fields(key)
    assert (fields["status"]["name"], fields["resolution"]["name"]) == ("Done", "Won't Do")

    from_done = await v2.ok("GET", f"issue/{key}/transitions")
    assert [(t["id"], t["name"], t["to"]["name"]) for t in from_done["transitions"]] == [
        ("11", "To Do", "To Do"),
        ("41", "Reopen", "To Do"),
    ]
    reopen_resolved = {"transition": {"id": "41"}, "fields": {"resolution": {"id": "1"}}}
    status, error = await v2.call("POST", f"issue/{key}/transitions", reopen_resolved)
    assert status == 400 and "resolution" in error["errors"]  # no screen, so no resolution field
    assert (await v2.call("POST", f"issue/{key}/transitions", {"transition": {"id": "41"}}))[0] == 204
    fields = await v2.fields(key)
    assert (fields["status"]["name"], fields["status"]["statusCategory"]["key"]) == ("To Do", "new")
    assert (fields["resolution"], fields["resolutiondate"]) == (None, None)


async def test_workflow_transitions(v2: Jira) -> None:
    key = (await v2.create(task()))["key"]
    listing = await v2.ok("GET", f"issue/{key}/transitions")
    assert [(t["id"], t["name"]) for t in listing["transitions"]] == [("21", "In Progress")]
    assert listing["transitions"][0]["to"]["statusCategory"] == {
        **listing["transitions"][0]["to"]["statusCategory"],
        "key": "indeterminate",
        "name": "In Progress",
    }
    status, error = await v2.call("POST", f"issue/{key}/transitions", {"transition": {"id": "31"}})
    assert (status, error["errorMessages"]) == (400, ["Transition id '31' is not valid for this issue."])
    assert (await v2.call("POST", f"issue/{key}/transitions", {"transition": {"id": "21"}, "fields": {}}))[
        0
    ] == 204
    fields = await v2.fields(key)
    assert (fields["status"]["name"], fields["status"]["statusCategory"]["key"]) == (
        "In Progress",
        "indeterminate",
    )

    status, _ = await v2.call(
        "POST",
        f"issue/{key}/transitions",
        {
            "transition": {"id": 31},
            "fields": {"resolution": {"name": "Fixed"}},
            "update": {"comment": [{"add": {"body": "Done"}}]},
        },
    )
    assert status == 204
    fields = await v2.fields(key)
    assert fields["status"]["statusCategory"]["key"] == "done"
    assert fields["resolution"]["name"] == "Fixed"
    assert fields["resolutiondate"] is not None
    assert [c["body"] for c in fields["comment"]["comments"]] == ["Done"]

    assert (await v2.call("POST", f"issue/{key}/transitions", {"transition": {"id": "11"}}))[0] == 204
    fields = await v2.fields(key)
    assert (fields["status"]["name"], fields["resolution"]) == ("To Do", None)
    status, error = await v2.call(
        "POST",
        f"issue/{key}/transitions",
        {"transition": {"id": "21"}, "fields": {"resolution": {"name": "Fixed"}}},
    )
    assert status == 400 and "resolution" in error["errors"]


async def test_classic_search_jql_paging_and_errors(v2: Jira) -> None:
    await v2.create(task("alpha", labels=["gw-a"]))  # OPS-1
    await v2.create(task("beta", labels=["gw-b", "shared"]))  # OPS-2
    await v2.create(task("gamma", labels=["shared"], issuetype={"name": "Bug"}))  # OPS-3
    await v2.call("POST", "issue/OPS-3/transitions", {"transition": {"id": "21"}})

    assert await v2.keys('labels = "gw-a"') == ["OPS-1"]
    assert await v2.keys("labels = shared ORDER BY key ASC") == ["OPS-2", "OPS-3"]
    assert await v2.keys("project = OPS ORDER BY created ASC") == ["OPS-1", "OPS-2", "OPS-3"]
    assert await v2.keys("project = OPS ORDER BY key DESC") == ["OPS-3", "OPS-2", "OPS-1"]
    assert await v2.keys('status = "In Progress"') == ["OPS-3"]
    assert await v2.keys("statusCategory != Done AND labels = shared ORDER BY key") == ["OPS-2", "OPS-3"]
    assert await v2.keys("statusCategory = indeterminate") == ["OPS-3"]
    assert await v2.keys("key = OPS-2") == ["OPS-2"]
    assert await v2.keys("labels != gw-a ORDER BY key") == [
        "OPS-2",
        "OPS-3",
    ]  # issues without labels never match
    assert await v2.keys("issuetype = Bug OR labels = gw-a ORDER BY key") == ["OPS-1", "OPS-3"]

    page = await v2.ok("GET", "search", jql="project = OPS ORDER BY key", startAt="1", maxResults="1")
    assert (page["startAt"], page["maxResults"], page["total"]) == (1, 1, 3)
    assert [i["key"] for i in page["issues"]] == ["OPS-2"]
    page = await v2.ok("GET", "search", jql="key = OPS-1", fields="summary,labels")
    assert set(page["issues"][0]["fields"]) == {"summary", "labels"}
    posted = await v2.ok(
        "POST", "search", {"jql": 'labels = "gw-b"', "fields": ["summary"], "maxResults": 10}
    )
    assert [i["fields"]["summary"] for i in posted["issues"]] == ["beta"]

    for bad in (
        "labels = ",
        "labels === x",
        "bogus = 1",
        "key = OPS-99",
        "status = Nope",
        "project = OPS ORDER BY",
    ):
        status, error = await v2.call("GET", "search", jql=bad)
        assert status == 400, bad
        assert error["errorMessages"] and error["errors"] == {}, bad


async def test_cloud_search_jql_tokens_and_removed_search(v3: Jira) -> None:
    for name in ("one", "two", "three"):
        await v3.create(task(name, labels=["batch"]))
    page = await v3.ok("GET", "search/jql", jql="labels = batch ORDER BY key", maxResults="2")
    assert page["issues"] == [{"id": "10000"}, {"id": "10001"}]  # fields default to id only
    assert page["isLast"] is False
    rest = await v3.ok(
        "POST",
        "search/jql",
        {
            "jql": "labels = batch ORDER BY key",
            "maxResults": 2,
            "nextPageToken": page["nextPageToken"],
            "fields": ["summary", "status"],
        },
    )
    assert [(i["key"], i["fields"]["summary"]) for i in rest["issues"]] == [("OPS-3", "three")]
    assert rest["isLast"] is True and "nextPageToken" not in rest
    status, error = await v3.call("GET", "search/jql", jql="ORDER BY created DESC")
    assert status == 400 and "Unbounded" in error["errorMessages"][0]
    status, error = await v3.call("GET", "search/jql", jql="labels = batch", nextPageToken="garbage!")
    assert status == 400
    status, error = await v3.call("GET", "search", jql="labels = batch")
    assert status == 410 and "/rest/api/3/search/jql" in error["errorMessages"][0]


async def test_search_lag_hides_new_issues_from_search_but_not_from_get_or_reconcile(
    v2: Jira, v3: Jira, http: aiohttp.ClientSession, sandbox: RunningSandbox
) -> None:
    async with http.put(f"{sandbox.url('jira')}/_sandbox/faults", json={"search_lag_ms": 600_000}) as r:
        assert r.status == 200
    created = await v3.create(task(labels=["gw-lag"]))
    assert await v2.keys("labels = gw-lag") == []
    assert (await v2.fields(created["key"]))["labels"] == ["gw-lag"]
    page = await v3.ok("GET", "search/jql", jql="labels = gw-lag")
    assert page["issues"] == []
    page = await v3.ok(
        "POST", "search/jql", {"jql": "labels = gw-lag", "reconcileIssues": [int(created["id"])]}
    )
    assert page["issues"] == [{"id": created["id"]}]
    async with http.put(f"{sandbox.url('jira')}/_sandbox/faults", json={"search_lag_ms": 0}) as r:
        assert r.status == 200
    assert await v2.keys("labels = gw-lag") == [created["key"]]


async def test_authentication(http: aiohttp.ClientSession, sandbox: RunningSandbox, v2: Jira) -> None:
    base = f"{sandbox.url('jira')}/rest/api"
    async with http.get(f"{base}/2/myself") as r:
        assert r.status == 401
        assert "errorMessages" in await r.json()
    async with http.get(f"{base}/3/myself") as r:
        assert r.status == 401  # Cloud answers in plain text
        assert r.content_type == "text/plain"
    async with http.get(f"{base}/2/myself", headers=basic(DEFAULT_JIRA_USER, "wrong")) as r:
        assert r.status == 401
    async with http.get(f"{base}/2/serverInfo", headers=basic(DEFAULT_JIRA_USER, "wrong")) as r:
        assert r.status == 401
    async with http.get(f"{base}/2/serverInfo") as r:
        assert r.status == 200  # public, as on real sites
        assert (await r.json())["deploymentType"] == "Server"
    async with http.get(f"{base}/3/serverInfo") as r:
        assert (await r.json())["deploymentType"] == "Cloud"
    async with http.get(f"{base}/2/myself", headers={"Authorization": f"Bearer {DEFAULT_JIRA_TOKEN}"}) as r:
        assert r.status == 200
        assert (await r.json())["emailAddress"] == DEFAULT_JIRA_USER


async def test_site_metadata_for_client_libraries(v2: Jira) -> None:
    fields = await v2.ok("GET", "field")
    assert {"summary", "labels", "customfield_10010"} <= {f["id"] for f in fields}
    assert next(f for f in fields if f["id"] == "fixVersions")["clauseNames"] == ["fixVersion"]
    project = await v2.ok("GET", "project/OPS")
    assert [t["name"] for t in project["issueTypes"]] == ["Task", "Bug", "Story", "Incident"]
    assert (await v2.call("GET", "project/NOPE"))[0] == 404
    projects = await v2.ok("GET", "project")
    assert [p["key"] for p in projects] == ["OPS"]
    priorities = await v2.ok("GET", "priority")
    assert [p["name"] for p in priorities] == ["Highest", "High", "Medium", "Low", "Lowest"]
    meta = await v2.ok("GET", "issue/createmeta", projectKeys="OPS", expand="projects.issuetypes.fields")
    issue_types = meta["projects"][0]["issuetypes"]
    assert issue_types[0]["fields"]["summary"]["required"] is True
    page = await v2.ok("GET", "issue/createmeta/OPS/issuetypes")
    assert page["total"] == 4
    page = await v2.ok("GET", "issue/createmeta/OPS/issuetypes/10001")
    assert "labels" in {f["fieldId"] for f in page["values"]}


async def test_unsupported_media_type_and_bad_json(
    http: aiohttp.ClientSession, sandbox: RunningSandbox
) -> None:
    url = f"{sandbox.url('jira')}/rest/api/2/issue"
    async with http.post(
        url, data=b"summary=x", headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"}
    ) as r:
        assert r.status == 415
    async with http.post(url, data=b"{oops", headers={**AUTH, "Content-Type": "application/json"}) as r:
        assert r.status == 400
        assert (await r.json())["errorMessages"]


async def test_fields_the_gateway_maps_round_trip(v2: Jira) -> None:
    parent = (await v2.create(task("parent")))["key"]
    created = await v2.create(
        task(
            components=[{"name": "Backend"}, {"name": "database"}],
            fixVersions=[{"name": "2.0"}],
            versions=[{"id": "10000"}],
            assignee={"name": "alice"},
            reporter={"name": "bob"},
            duedate="2030-01-31",
            parent={"key": parent},
            timetracking={"originalEstimate": "1d 2h"},
            customfield_10010="Platform",
            customfield_10016=5,
            customfield_10020="itsm-gateway",
        )
    )
    fields = await v2.fields(created["key"])
    assert [c["name"] for c in fields["components"]] == ["Backend", "Database"]
    assert [v["name"] for v in fields["fixVersions"]] == ["2.0"]
    assert [v["name"] for v in fields["versions"]] == ["1.0"]
    assert (fields["assignee"]["name"], fields["reporter"]["name"]) == ("alice", "bob")
    assert fields["duedate"] == "2030-01-31"
    assert fields["parent"]["key"] == parent
    assert fields["timetracking"]["originalEstimateSeconds"] == 10 * 3600
    assert (fields["customfield_10010"], fields["customfield_10016"]) == ("Platform", 5)

    status, error = await v2.call(
        "POST",
        "issue",
        task(
            components=[{"name": "Nope"}],
            assignee={"name": "mallory"},
            duedate="31/01/2030",
            customfield_10016="five",
            timetracking={"originalEstimate": "soon"},
            parent={"key": "OPS-404"},
        ),
    )
    assert status == 400
    assert set(error["errors"]) == {
        "components",
        "assignee",
        "duedate",
        "customfield_10016",
        "timetracking",
        "parent",
    }

    await v2.ok(
        "PUT", f"issue/{created['key']}", {"update": {"components": [{"remove": {"name": "backend"}}]}}
    )
    assert [c["name"] for c in (await v2.fields(created["key"]))["components"]] == ["Database"]
    assert await v2.keys("component = Database AND assignee = alice") == [created["key"]]
    assert await v2.keys("cf[10016] >= 5") == [created["key"]]


async def test_browse_link_opens_a_page(
    v2: Jira, http: aiohttp.ClientSession, sandbox: RunningSandbox
) -> None:
    key = (await v2.create(task("Rotate <keys>", labels=["gw-ui"])))["key"]
    await v2.ok("POST", f"issue/{key}/comment", {"body": "first comment"})
    async with http.get(f"{sandbox.url('jira')}/browse/{key}") as r:
        assert r.status == 401 and "WWW-Authenticate" in r.headers
    async with http.get(f"{sandbox.url('jira')}/browse/{key}", headers=AUTH) as r:
        assert r.status == 200
        page = await r.text()
    assert key in page and "Rotate &lt;keys&gt;" in page and "gw-ui" in page and "first comment" in page
