"""JiraClient (v2 and v3) over real HTTP against a small scripted Jira, plus ADF conversion."""

from __future__ import annotations

import asyncio
import base64
import re
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from clients import registry
from clients.adf import text_to_adf
from clients.errors import ErrorKind, PlatformError
from clients.jira import JiraClient, JiraSettings
from clients.settings import (
    Credentials,
    HttpSettings,
    RetryPolicy,
    TimeoutConfig,
)
from tests.http_stub import Recorder, cut, serve

FAST = RetryPolicy(initial_delay=0.01, max_delay=0.05)
EMAIL, TOKEN = "dev@example.com", "dev-token"
TEXTAREA = "com.atlassian.jira.plugin.system.customfieldtypes:textarea"
STATUSES = {
    "To Do": {"name": "To Do", "statusCategory": {"key": "new"}},
    "In Progress": {"name": "In Progress", "statusCategory": {"key": "indeterminate"}},
    "Done": {"name": "Done", "statusCategory": {"key": "done"}},
}
TRANSITIONS = [
    {"id": "11", "name": "Start Progress", "to": {"name": "In Progress"}},
    {"id": "31", "name": "Resolve Issue", "to": {"name": "Done"}},
]


def jira_error(messages: list[str], errors: dict[str, str] | None = None) -> dict[str, Any]:
    return {"errorMessages": messages, "errors": errors or {}}


class FakeJira:
    def __init__(self, version: int) -> None:
        self.api = f"/rest/api/{version}"
        self.version = version
        self.issues: dict[str, dict[str, Any]] = {}  # id -> issue
        self.created_at: dict[str, float] = {}
        self.seen = Recorder()
        self.create_plan: list[str] = []  # per create: "ok", "cut"
        self.search_lag = 0.0
        self.drop_label_filter = False
        self.drop_labels = False
        self.search_bodies: list[dict[str, Any]] = []

    def routes(self) -> dict[tuple[str, str], Any]:
        api = self.api
        search = f"{api}/search/jql" if self.version == 3 else f"{api}/search"
        return {
            ("POST", f"{api}/issue"): self.create,
            ("GET", search): self.search,
            ("POST", search): self.search,
            ("GET", f"{api}/issue/{{key}}"): self.read,
            ("PUT", f"{api}/issue/{{key}}"): self.update,
            ("POST", f"{api}/issue/{{key}}/comment"): self.comment,
            ("GET", f"{api}/issue/{{key}}/transitions"): self.transitions,
            ("POST", f"{api}/issue/{{key}}/transitions"): self.transition,
            ("GET", f"{api}/field"): self.fields,
        }

    def authorized(self, request: web.Request) -> bool:
        basic = "Basic " + base64.b64encode(f"{EMAIL}:{TOKEN}".encode()).decode()
        return request.headers.get("Authorization") in (basic, f"Bearer {TOKEN}")

    def issue(self, key: str) -> dict[str, Any] | None:
        return next((i for i in self.issues.values() if key in (i["id"], i["key"])), None)

    async def create(self, request: web.Request) -> web.StreamResponse:
        if not self.authorized(request):
            return web.Response(status=401, text="Client must be authenticated to access this resource.")
        fields = (await request.json())["fields"]
        if not fields.get("summary"):
            return web.json_response(
                jira_error([], {"summary": "You must specify a summary of the issue."}), status=400
            )
        if self.version == 3 and isinstance(fields.get("description"), str):
            return web.json_response(
                jira_error([], {"description": "Operation value must be an Atlassian Document"}),
                status=400,
            )
        if self.drop_labels:
            fields = {k: v for k, v in fields.items() if k != "labels"}
        issue_id = str(10000 + len(self.issues))
        key = f"{fields['project']['key']}-{len(self.issues) + 1}"
        issue = {
            "id": issue_id,
            "key": key,
            "self": f"{self.api}/issue/{issue_id}",
            "fields": {**fields, "status": STATUSES["To Do"]},
        }
        self.issues[issue_id] = issue
        self.created_at[issue_id] = time.monotonic()
        plan = self.create_plan.pop(0) if self.create_plan else "ok"
        if plan == "cut":
            return await cut(request)
        return web.json_response({"id": issue_id, "key": key, "self": issue["self"]}, status=201)

    async def search(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            body = await request.json()
            self.search_bodies.append(body)
            jql, limit = body["jql"], int(body.get("maxResults", 50))
        else:
            jql, limit = request.query["jql"], int(request.query.get("maxResults", "50"))
        now = time.monotonic()
        visible = [i for i in self.issues.values() if now - self.created_at[i["id"]] >= self.search_lag]
        if (m := re.match(r'labels = "([^"]+)"', jql)) and not self.drop_label_filter:
            visible = [i for i in visible if m.group(1) in i["fields"].get("labels", [])]
        elif m := re.match(r"id in \(([^)]*)\)", jql):
            wanted = {x.strip() for x in m.group(1).split(",")}
            visible = [i for i in visible if i["id"] in wanted or i["key"] in wanted]
        page = visible[:limit]
        if self.version == 3:
            return web.json_response({"issues": page, "isLast": True})
        return web.json_response({"startAt": 0, "maxResults": limit, "total": len(visible), "issues": page})

    async def read(self, request: web.Request) -> web.Response:
        issue = self.issue(request.match_info["key"])
        if issue is None:
            return web.json_response(
                jira_error(["Issue does not exist or you do not have permission to see it."]), status=404
            )
        return web.json_response(issue)

    async def update(self, request: web.Request) -> web.Response:
        issue = self.issue(request.match_info["key"])
        assert issue is not None
        issue["fields"].update((await request.json())["fields"])
        return web.Response(status=204)

    async def comment(self, request: web.Request) -> web.Response:
        issue = self.issue(request.match_info["key"])
        assert issue is not None
        body = (await request.json())["body"]
        issue.setdefault("comments", []).append(body)
        return web.json_response({"id": str(len(issue["comments"])), "body": body}, status=201)

    async def transitions(self, request: web.Request) -> web.Response:
        return web.json_response({"transitions": TRANSITIONS})

    async def transition(self, request: web.Request) -> web.StreamResponse:
        issue = self.issue(request.match_info["key"])
        assert issue is not None
        wanted = (await request.json())["transition"]["id"]
        target = next(t for t in TRANSITIONS if t["id"] == wanted)
        issue["fields"]["status"] = STATUSES[target["to"]["name"]]
        if self.create_plan and self.create_plan[0] == "cut-transition":
            self.create_plan.pop(0)
            return await cut(request)
        return web.Response(status=204)

    async def fields(self, request: web.Request) -> web.Response:
        return web.json_response(
            [
                {"id": "summary", "schema": {"type": "string", "system": "summary"}},
                {"id": "customfield_10010", "schema": {"type": "string", "custom": TEXTAREA}},
                {
                    "id": "customfield_10020",
                    "schema": {
                        "type": "string",
                        "custom": "com.atlassian.jira.plugin.system.customfieldtypes:textfield",
                    },
                },
            ]
        )


def client(
    base: str, version: int = 2, creds: Credentials | None = None, retry: RetryPolicy = FAST, **kw: Any
) -> JiraClient:
    settings = JiraSettings(
        HttpSettings(base), creds or Credentials("basic", EMAIL, TOKEN), api_version=version
    )  # type: ignore[arg-type]
    return JiraClient(settings, retry, TimeoutConfig(), **kw)


def payload(**extra: Any) -> dict[str, Any]:
    return {"fields": {"issuetype": {"name": "Task"}, "summary": "Disk full", "labels": ["infra"], **extra}}


# -- ADF --------------------------------------------------------------------------------------


def test_adf_paragraphs_and_hard_breaks() -> None:
    assert text_to_adf("one\ntwo\n\nthree\r\n\r\n\n") == {
        "type": "doc",
        "version": 1,
        "content": [
            {
                "type": "paragraph",
                "content": [
                    {"type": "text", "text": "one"},
                    {"type": "hardBreak"},
                    {"type": "text", "text": "two"},
                ],
            },
            {"type": "paragraph", "content": [{"type": "text", "text": "three"}]},
        ],
    }
    assert text_to_adf("") == {"type": "doc", "version": 1, "content": []}
    # No empty text nodes: ADF rejects them.
    assert text_to_adf("a\n\nb\n")["content"][1] == {
        "type": "paragraph",
        "content": [{"type": "text", "text": "b"}],
    }


# -- create -----------------------------------------------------------------------------------


async def test_v2_create_appends_the_marker_label() -> None:
    jira = FakeJira(2)
    async with serve(jira.routes(), jira.seen) as base:
        c = client(base)
        ticket = await c.create(payload(description="plain *wiki*"), "m-1")
        await c.close()
    fields = jira.issues[ticket.external_id]["fields"]
    assert fields["labels"] == ["infra", "m-1"]
    assert fields["project"] == {"key": "OPS"}
    assert fields["description"] == "plain *wiki*"
    assert (ticket.external_key, ticket.url) == ("OPS-1", f"{base}/browse/OPS-1")
    assert not ticket.adopted and ticket.retry.attempts == 2  # the create, and reading the label back
    assert ticket.marker_kept is True


async def test_v3_create_converts_rich_text_to_adf() -> None:
    jira = FakeJira(3)
    async with serve(jira.routes(), jira.seen) as base:
        c = client(base, 3)
        ticket = await c.create(
            payload(
                description="Disk full\non db-1\n\nPlease clean up",
                customfield_10010="multi\nline",
                customfield_10020="single line",
            ),
            "m-2",
        )
        await c.create(payload(customfield_10010="again"), "m-3")
        await c.close()
    fields = jira.issues[ticket.external_id]["fields"]
    assert fields["description"] == text_to_adf("Disk full\non db-1\n\nPlease clean up")
    assert fields["customfield_10010"] == text_to_adf("multi\nline")
    assert fields["customfield_10020"] == "single line"  # a text field keeps its string
    assert jira.seen.count("GET", "/rest/api/3/field") == 1  # discovered once, then cached


async def test_v3_comment_is_adf_and_v2_plain() -> None:
    for version in (2, 3):
        jira = FakeJira(version)
        async with serve(jira.routes(), jira.seen) as base:
            c = client(base, version)
            t = await c.create(payload(), "m-c")
            comment = await c.add_comment(t.external_key, "first\nsecond", "m-c1", internal=False)
            await c.close()
        body = jira.issues[t.external_id]["comments"][0]
        assert body == (text_to_adf("first\nsecond") if version == 3 else "first\nsecond")
        assert comment.comment_id == "1"


async def test_an_ambiguous_create_is_never_resent_and_search_finds_it_after_its_lag() -> None:
    """A cut after commit: the client says so and sends nothing more. Search lags the commit, so a
    look-up right away misses the issue; one made after the lag finds it (the caller waits the
    platform's confirmation delay before it looks)."""
    jira = FakeJira(3)
    jira.search_lag = 0.6  # the new issue stays invisible to search this long
    jira.create_plan = ["cut"]
    async with serve(jira.routes(), jira.seen) as base:
        c = client(base, 3)
        with pytest.raises(PlatformError) as caught:
            await c.create(payload(), "m-lag")
        too_early = await c.find_by_marker("m-lag")
        await asyncio.sleep(0.7)
        found = await c.find_by_marker("m-lag")
        await c.close()
    assert caught.value.ambiguous
    assert too_early is None
    assert found is not None and found.adopted and found.external_key == "OPS-1"
    assert len(jira.issues) == 1 and jira.seen.count("POST", "/rest/api/3/issue") == 1
    search = jira.seen.matching("GET", "/rest/api/3/search/jql")[0]
    assert search.query["jql"].startswith('labels = "m-lag"')


async def test_a_gateway_timeout_to_a_create_is_ambiguous() -> None:
    jira = FakeJira(2)

    async def gateway_timeout(request: web.Request) -> web.StreamResponse:
        return web.Response(status=504, text="Gateway Timeout")

    routes = jira.routes() | {("POST", "/rest/api/2/issue"): gateway_timeout}
    async with serve(routes, jira.seen) as base:
        c = client(base, 2)
        with pytest.raises(PlatformError) as caught:
            await c.create(payload(), "m-504")
        await c.close()
    assert caught.value.ambiguous and caught.value.status == 504
    assert jira.seen.count("POST", "/rest/api/2/issue") == 1


async def test_create_says_whether_the_issue_kept_its_marker_label() -> None:
    """Jira's create answer holds no fields: the label is read back (a consistent GET)."""
    jira = FakeJira(2)
    async with serve(jira.routes(), jira.seen) as base:
        c = client(base)
        kept = await c.create(payload(), "m-kept")
        jira.drop_labels = True  # a create screen without the labels field drops them
        dropped = await c.create(payload(), "m-gone")
        await c.close()
    assert (kept.marker_kept, dropped.marker_kept) == (True, False)


async def test_search_that_ignores_the_label_is_caught() -> None:
    jira = FakeJira(2)
    async with serve(jira.routes(), jira.seen) as base:
        c = client(base)
        await c.create(payload(), "other")
        jira.drop_label_filter = True
        with pytest.raises(PlatformError) as caught:
            await c.find_by_label("m-x")
        await c.close()
    assert caught.value.kind is ErrorKind.BAD_RESPONSE


async def test_find_by_marker_finds_or_reports_absence() -> None:
    jira = FakeJira(2)
    async with serve(jira.routes(), jira.seen) as base:
        c = client(base)
        created = await c.create(payload(), "m-f")
        found = await c.find_by_marker("m-f")
        missing = await c.find_by_marker("m-none")
        await c.close()
    assert found is not None and found.adopted and found.external_key == created.external_key
    assert missing is None and missing is None


# -- errors -----------------------------------------------------------------------------------


async def test_field_errors_are_parsed() -> None:
    jira = FakeJira(2)
    async with serve(jira.routes(), jira.seen) as base:
        c = client(base)
        with pytest.raises(PlatformError) as caught:
            await c.create({"fields": {"summary": ""}}, "m-e")
        await c.close()
    err = caught.value
    assert (err.kind, err.status, err.attempts) == (ErrorKind.PAYLOAD_REJECTED, 400, 1)
    assert err.field_errors == {"summary": "You must specify a summary of the issue."}
    assert "summary: You must specify" in str(err)


async def test_plain_text_401_is_an_auth_error() -> None:
    jira = FakeJira(3)
    async with serve(jira.routes(), jira.seen) as base:
        c = client(base, 3, Credentials("basic", EMAIL, "wrong-token"))
        with pytest.raises(PlatformError) as caught:
            await c.create(payload(), "m-a")
        await c.close()
    err = caught.value
    assert (err.kind, err.status) == (ErrorKind.AUTH, 401)
    assert err.message == "Client must be authenticated to access this resource."
    assert "wrong-token" not in repr(err)


async def test_bearer_pat_and_iso_reset_header() -> None:
    jira = FakeJira(2)
    calls = {"n": 0}

    async def limited_once(request: web.Request) -> web.StreamResponse:
        calls["n"] += 1
        if calls["n"] == 1:
            reset = datetime.fromtimestamp(time.time() + 1.0, UTC).isoformat()
            return web.json_response(
                jira_error(["Rate limit exceeded."]), status=429, headers={"X-RateLimit-Reset": reset}
            )
        return await jira.create(request)

    routes = jira.routes() | {("POST", "/rest/api/2/issue"): limited_once}
    async with serve(routes, jira.seen) as base:
        c = client(base, 2, Credentials("bearer", token=TOKEN), RetryPolicy(max_delay=5))
        ticket = await c.create(payload(), "m-b")
        await c.close()
    first, second = jira.seen.matching("POST", "/rest/api/2/issue")
    assert second.at - first.at >= 0.9  # waited for the reset instant
    assert first.headers["Authorization"] == f"Bearer {TOKEN}"
    assert ticket.retry.attempts == 3 and len(jira.issues) == 1  # 429, created, label read back
    assert jira.seen.count("GET", "/rest/api/2/search") == 0  # a platform 429 was not applied: no look-up


# -- follow-up operations ---------------------------------------------------------------------


async def test_transition_resolves_the_id_by_target_status() -> None:
    jira = FakeJira(2)
    async with serve(jira.routes(), jira.seen) as base:
        c = client(base)
        t = await c.create(payload(), "m-t")
        reply = await c.transition(t.external_key, "done")
        with pytest.raises(PlatformError) as caught:
            await c.transition(t.external_key, "Archived")
        await c.close()
    assert reply.data == {"transition_id": "31", "status": "done"}
    assert jira.issues[t.external_id]["fields"]["status"]["name"] == "Done"
    err = caught.value
    assert err.kind is ErrorKind.PAYLOAD_REJECTED
    assert err.field_errors == {"transition": "available: Done, In Progress"}


async def test_a_transition_cut_after_apply_is_ambiguous_and_not_resent() -> None:
    jira = FakeJira(2)
    async with serve(jira.routes(), jira.seen) as base:
        c = client(base)
        t = await c.create(payload(), "m-tc")
        jira.create_plan = ["cut-transition"]
        with pytest.raises(PlatformError) as caught:
            await c.transition(t.external_key, "In Progress")
        await c.close()
    assert caught.value.ambiguous
    assert jira.seen.count("POST", f"/rest/api/2/issue/{t.external_key}/transitions") == 1
    assert jira.issues[t.external_id]["fields"]["status"]["name"] == "In Progress"


async def test_get_update_and_statuses_v2_and_v3() -> None:
    for version in (2, 3):
        jira = FakeJira(version)
        async with serve(jira.routes(), jira.seen) as base:
            c = client(base, version)
            a = await c.create(payload(), "m-s1")
            b = await c.create(payload(), "m-s2")
            changed = await c.update(a.external_key, {"fields": {"summary": "Disk very full", "description": "x"}})
            got = await c.get(a.external_key)
            await c.transition(b.external_key, "Done")
            statuses = await c.get_statuses([a.external_id, b.external_id])
            await c.close()
        assert got.data["fields"]["summary"] == "Disk very full"
        assert changed.not_applied == ()  # read back: both fields stored as sent
        expected_description = text_to_adf("x") if version == 3 else "x"
        assert got.data["fields"]["description"] == expected_description
        by_id = {s.external_id: s for s in statuses}
        assert (by_id[a.external_id].status, by_id[a.external_id].acknowledged) == ("To Do", False)
        assert by_id[b.external_id].resolved and by_id[b.external_id].acknowledged
        if version == 3:
            (body,) = jira.search_bodies
            assert body["reconcileIssues"] == [int(a.external_id), int(b.external_id)]
            assert body["jql"] == f"id in ({a.external_id}, {b.external_id})"


async def test_registry_builds_a_jira_client() -> None:
    settings = JiraSettings(HttpSettings("http://127.0.0.1:9"), Credentials("bearer", token="t"))
    c = registry.spec("jira").build_client(settings, RetryPolicy(), TimeoutConfig(), None)
    assert c.platform == "jira"
    await c.close()
    with pytest.raises(ValueError, match="basic"):
        JiraClient(JiraSettings(HttpSettings("http://x"), Credentials("oauth")))
