"""ServiceNowClient over real HTTP against a small scripted Table API.

The full simulator lives in clients/sandbox; these stubs pin down exact edge cases (a drop right
after commit, a filter the instance ignores, a data-policy 403, token expiry) one at a time.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from clients import registry
from clients.errors import ErrorKind, PlatformError
from clients.servicenow import ServiceNowClient, ServiceNowSettings
from clients.settings import (
    Credentials,
    HttpSettings,
    RetryPolicy,
    TimeoutConfig,
)
from tests.http_stub import Recorder, cut, serve

TABLE = "/api/now/table/incident"
FAST = RetryPolicy(initial_delay=0.01, max_delay=0.05)
Fault = Callable[[web.Request], Awaitable[web.StreamResponse | None]]


def sn_error(message: str, detail: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "detail": detail}, "status": "failure"}


class FakeServiceNow:
    """Incident table in a dict. `create_faults` are consumed one per create: each either answers
    instead of the table (before or after storing) or is None to behave."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, str]] = {}
        self.journal: list[dict[str, str]] = []  # sys_journal_field rows
        self.resolve_mandatory = ["close_code", "close_notes"]  # the instance's data policy
        self.seen = Recorder()
        self.create_plan: list[str] = []  # per create: "ok", "cut", "slow", "502", "503", "503raw"
        self.ignore_correlation_filter = False
        self.drop_correlation = False  # an ACL or business rule blanking correlation_id
        self.tokens: dict[str, float] = {}  # access token -> expiry (monotonic)
        self.refresh_tokens: set[str] = set()
        self.token_ttl = 1799
        self.grants: list[str] = []
        self.basic = "Basic " + __import__("base64").b64encode(b"admin:admin").decode()

    def routes(self) -> dict[tuple[str, str], Any]:
        return {
            ("POST", TABLE): self.create,
            ("GET", TABLE): self.query,
            ("GET", TABLE + "/{sys_id}"): self.read,
            ("PATCH", TABLE + "/{sys_id}"): self.patch,
            ("GET", "/api/now/table/sys_journal_field"): self.journal_query,
            ("POST", "/oauth_token.do"): self.token,
        }

    def authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            expiry = self.tokens.get(header[7:])
            return expiry is not None and time.monotonic() < expiry
        return header == self.basic

    def denied(self) -> web.Response:
        return web.json_response(
            sn_error("User Not Authenticated", "Required to provide Auth information"), status=401
        )

    async def create(self, request: web.Request) -> web.StreamResponse:
        if not self.authorized(request):
            return self.denied()
        plan = self.create_plan.pop(0) if self.create_plan else "ok"
        if plan == "503":
            return web.json_response(sn_error("Service Unavailable"), status=503)
        if plan == "503raw":
            return web.Response(status=503, text="<html>maintenance</html>")
        body = await request.json()
        sys_id = uuid.uuid4().hex
        number = f"INC{10001 + len(self.records):07d}"
        record = {k: str(v) for k, v in body.items()}
        if self.drop_correlation:
            record["correlation_id"] = ""
        record |= {
            "sys_id": sys_id,
            "number": number,
            "state": "1",
            "sys_created_on": f"2024-01-01 00:00:{len(self.records):02d}",
        }
        self.records[sys_id] = record
        if plan == "cut":
            return await cut(request)
        if plan == "slow":
            await asyncio.sleep(5)
        if plan == "502":
            return web.Response(status=502, text="Bad Gateway")
        if plan == "500":  # a business rule threw after the insert
            return web.json_response(sn_error("Operation Failed", "Error during insert"), status=500)
        if plan == "html":
            return web.Response(status=201, text="<html>created</html>")
        return web.json_response({"result": record}, status=201)

    async def query(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return self.denied()
        query = request.query.get("sysparm_query", "")
        rows = sorted(self.records.values(), key=lambda r: r["sys_created_on"])
        for term in query.split("^"):
            if term.startswith("correlation_id=") and not self.ignore_correlation_filter:
                rows = [r for r in rows if r.get("correlation_id") == term.split("=", 1)[1]]
            elif term.startswith("sys_idIN"):
                wanted = set(term[len("sys_idIN") :].split(","))
                rows = [r for r in rows if r["sys_id"] in wanted]
        limit = int(request.query.get("sysparm_limit", "10000"))
        fields = request.query.get("sysparm_fields")
        if fields:
            rows = [{f: r.get(f, "") for f in fields.split(",")} for r in rows]
        return web.json_response({"result": rows[:limit]})

    async def read(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return self.denied()
        record = self.records.get(request.match_info["sys_id"])
        if record is None:
            return web.json_response(sn_error("No Record found"), status=404)
        return web.json_response({"result": record})

    async def patch(self, request: web.Request) -> web.StreamResponse:
        if not self.authorized(request):
            return self.denied()
        record = self.records.get(request.match_info["sys_id"])
        if record is None:
            return web.json_response(sn_error("No Record found"), status=404)
        body = await request.json()
        missing = [f for f in self.resolve_mandatory if not body.get(f)]
        if body.get("state") == "6" and missing:
            return web.json_response(
                sn_error(
                    "Operation Failed",
                    "Data Policy Exception: The following fields are mandatory: " + ", ".join(missing),
                ),
                status=403,
            )
        for journal in ("work_notes", "comments"):
            if journal in body:
                record[journal + "_count"] = str(int(record.get(journal + "_count", "0")) + 1)
                entry = {"sys_id": uuid.uuid4().hex, "element_id": record["sys_id"], "element": journal}
                self.journal.append(entry | {"value": str(body.pop(journal))})
        if self.create_plan and self.create_plan[0] == "cut-patch":
            self.create_plan.pop(0)
            return await cut(request)
        record.update({k: str(v) for k, v in body.items()})
        return web.json_response({"result": record})

    async def journal_query(self, request: web.Request) -> web.Response:
        terms = request.query.get("sysparm_query", "").split("^")
        rows = self.journal
        for term in terms:
            if term.startswith("element_id="):
                rows = [r for r in rows if r["element_id"] == term.split("=", 1)[1]]
            elif term.startswith("valueLIKE"):
                rows = [r for r in rows if term[len("valueLIKE") :] in r["value"]]
        return web.json_response({"result": rows[: int(request.query.get("sysparm_limit", "10000"))]})

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        grant = str(form.get("grant_type"))
        self.grants.append(grant)
        if form.get("client_id") != "cid" or form.get("client_secret") != CLIENT_SECRET:
            return web.json_response(
                {"error": "access_denied", "error_description": "bad client"}, status=401
            )
        if grant == "password" and (form.get("username"), form.get("password")) != ("admin", "admin"):
            return web.json_response({"error": "access_denied", "error_description": "bad user"}, status=401)
        if grant == "refresh_token" and form.get("refresh_token") not in self.refresh_tokens:
            return web.json_response(
                {"error": "invalid_grant", "error_description": "bad refresh"}, status=401
            )
        await asyncio.sleep(0.05)  # long enough for concurrent callers to pile up
        access, refresh = secrets.token_hex(16), secrets.token_hex(16)
        self.tokens[access] = time.monotonic() + self.token_ttl
        self.refresh_tokens.add(refresh)
        return web.json_response(
            {
                "access_token": access,
                "refresh_token": refresh,
                "token_type": "Bearer",
                "expires_in": self.token_ttl,
            }
        )


CLIENT_SECRET = "client-secret-value"


def client(
    base: str,
    creds: Credentials | None = None,
    retry: RetryPolicy = FAST,
    timeout: TimeoutConfig | None = None,
) -> ServiceNowClient:
    settings = ServiceNowSettings(HttpSettings(base), creds or Credentials("basic", "admin", "admin"))
    return ServiceNowClient(settings, retry, timeout or TimeoutConfig())


PAYLOAD = {"short_description": "Disk full", "urgency": "2", "impact": "2"}


async def test_create_stamps_the_marker_and_links_the_ticket() -> None:
    sn = FakeServiceNow()
    async with serve(sn.routes(), sn.seen) as base:
        c = client(base)
        ticket = await c.create(PAYLOAD, "m-1")
        await c.close()
    (post,) = sn.seen.matching("POST", TABLE)
    assert post.headers["Accept"] == "application/json"
    assert post.headers["Content-Type"].startswith("application/json")
    assert post.query["sysparm_exclude_reference_link"] == "true"
    record = sn.records[ticket.external_id]
    assert record["correlation_id"] == "m-1"
    assert record["short_description"] == "Disk full"
    assert ticket.external_key == "INC0010001"
    assert ticket.url == f"{base}/nav_to.do?uri=incident.do?sys_id={ticket.external_id}"
    assert not ticket.adopted
    assert (ticket.retry.attempts, ticket.retry.last_status) == (1, 201)


@pytest.mark.parametrize("failure", ["cut", "502", "html", "500", "slow"])
async def test_an_ambiguous_create_is_never_sent_again_and_its_marker_finds_it(failure: str) -> None:
    """A cut connection, a gateway's 502, a non-JSON 2xx, a 500 after the insert, a read timeout:
    the record may stand. The client says so (ambiguous) and sends nothing more; the caller looks
    the marker up (once the platform can no longer be applying it) and finds it."""
    sn = FakeServiceNow()
    sn.create_plan = [failure]
    async with serve(sn.routes(), sn.seen) as base:
        c = client(base, timeout=TimeoutConfig(read=0.3, total=10))
        with pytest.raises(PlatformError) as caught:
            await c.create(PAYLOAD, "m-drop")
        found = await c.find_by_marker("m-drop")
        await c.close()
    assert caught.value.ambiguous
    assert sn.seen.count("POST", TABLE) == 1  # never resent blind
    assert len(sn.records) == 1
    assert found is not None and found.adopted and found.external_id in sn.records
    lookup = sn.seen.matching("GET", TABLE)[0]
    assert lookup.query["sysparm_query"].startswith("correlation_id=m-drop")
    assert lookup.query["sysparm_limit"] == "1"


async def test_a_bare_503_to_a_create_is_ambiguous_and_nothing_is_found() -> None:
    """A 503 not in ServiceNow's own error format may come from a gateway that forwarded the POST."""
    sn = FakeServiceNow()
    sn.create_plan = ["503raw"]
    async with serve(sn.routes(), sn.seen) as base:
        c = client(base)
        with pytest.raises(PlatformError) as caught:
            await c.create(PAYLOAD, "m-2")
        assert await c.find_by_marker("m-2") is None
        await c.close()
    assert caught.value.ambiguous and caught.value.status == 503
    assert sn.seen.count("POST", TABLE) == 1 and not sn.records


async def test_create_says_whether_the_platform_kept_the_marker() -> None:
    """An ACL or business rule that blanks correlation_id shows in the create's own answer."""
    sn = FakeServiceNow()
    async with serve(sn.routes(), sn.seen) as base:
        c = client(base)
        kept = await c.create(PAYLOAD, "m-kept")
        sn.drop_correlation = True
        dropped = await c.create(PAYLOAD, "m-gone")
        await c.close()
    assert kept.marker_kept is True
    assert dropped.marker_kept is False


async def test_platform_503_is_retried_without_a_lookup() -> None:
    sn = FakeServiceNow()
    sn.create_plan = ["503", "503", "ok"]
    async with serve(sn.routes(), sn.seen) as base:
        c = client(base)
        ticket = await c.create(PAYLOAD, "m-3")
        await c.close()
    assert len(sn.records) == 1
    assert sn.seen.count("GET", TABLE) == 0
    assert (ticket.retry.attempts, ticket.retry.last_status) == (3, 201)


async def test_ignored_correlation_filter_is_caught() -> None:
    sn = FakeServiceNow()
    async with serve(sn.routes(), sn.seen) as base:
        c = client(base)
        await c.create(PAYLOAD, "someone-else")
        sn.ignore_correlation_filter = True
        with pytest.raises(PlatformError) as direct:
            await c.find_by_correlation("m-4")
        with pytest.raises(PlatformError) as during_lookup:
            await c.find_by_marker("m-4")
        await c.close()
    assert direct.value.kind is ErrorKind.BAD_RESPONSE
    assert "ignored" in direct.value.message
    # A look-up that cannot tell is an error, never "absent": absent would let the caller resend.
    assert during_lookup.value.kind is ErrorKind.BAD_RESPONSE


async def test_find_by_marker_and_correlation() -> None:
    sn = FakeServiceNow()
    async with serve(sn.routes(), sn.seen) as base:
        c = client(base)
        created = await c.create(PAYLOAD, "m-5")
        found = await c.find_by_marker("m-5")
        record = await c.find_by_correlation("m-5")
        missing = await c.find_by_marker("m-none")
        await c.close()
    assert found is not None and found.adopted and found.external_id == created.external_id
    assert record is not None and record["sys_id"] == created.external_id
    assert missing is None


async def test_follow_up_operations() -> None:
    sn = FakeServiceNow()
    async with serve(sn.routes(), sn.seen) as base:
        c = client(base)
        t = await c.create(PAYLOAD, "m-6")
        got = await c.get(t.external_id)
        changed = await c.update(t.external_id, {"urgency": "1"})
        note = await c.add_comment(t.external_id, "internal", "m-6-n", internal=True)
        public = await c.add_comment(t.external_id, "public", "m-6-c", internal=False)
        found = await c.find_comment(t.external_id, "m-6-c")
        missing = await c.find_comment(t.external_id, "m-6-x")
        sn.resolve_mandatory += ["u_root_cause", "u_fix"]  # a stricter instance's data policy
        with pytest.raises(PlatformError) as policy:
            await c.resolve(t.external_id, "", "")
        sn.resolve_mandatory = ["close_code", "close_notes"]
        resolved = await c.resolve(t.external_id, "Solution provided", "Cleaned up")
        other = await c.create(PAYLOAD, "m-7")
        statuses = await c.get_statuses([t.external_id, other.external_id])
        await c.close()
    assert got.data["number"] == t.external_key
    assert changed.not_applied == () and changed.retry.attempts == 1
    assert sn.records[t.external_id]["urgency"] == "1"
    assert sn.records[t.external_id]["work_notes_count"] == "1"
    assert sn.records[t.external_id]["comments_count"] == "1"
    assert [(e["element"], e["value"]) for e in sn.journal] == [
        ("work_notes", "internal\n\n[m-6-n]"),
        ("comments", "public\n\n[m-6-c]"),
    ]
    assert (note.comment_id, public.comment_id) == (sn.journal[0]["sys_id"], sn.journal[1]["sys_id"])
    assert (found, missing) == (public.comment_id, None)
    err = policy.value
    assert err.kind is ErrorKind.PAYLOAD_REJECTED  # a data policy, not an ACL problem
    assert err.field_errors == {"u_root_cause": "mandatory", "u_fix": "mandatory"}
    assert (resolved.category, resolved.resolution) == ("RESOLVED", "Solution provided")
    assert sn.records[t.external_id]["close_notes"] == "Cleaned up"
    by_id = {s.external_id: s for s in statuses}
    assert by_id[t.external_id].resolved and by_id[t.external_id].acknowledged
    assert by_id[other.external_id].status == "1"
    assert not by_id[other.external_id].acknowledged
    (query,) = sn.seen.matching("GET", TABLE)
    assert query.query["sysparm_query"].startswith("sys_idIN")


async def test_acl_403_is_an_auth_problem() -> None:
    async def acl(_: web.Request) -> web.Response:
        return web.json_response(
            sn_error("Operation Failed", "ACL Exception Insert Failed due to security constraints"),
            status=403,
        )

    async with serve({("POST", TABLE): acl}) as base:
        c = client(base)
        with pytest.raises(PlatformError) as caught:
            await c.create(PAYLOAD, "m-8")
        await c.close()
    err = caught.value
    assert (err.kind, err.status, err.attempts, err.ambiguous) == (ErrorKind.AUTH, 403, 1, False)
    assert str(err) == (
        "servicenow create failed (auth, HTTP 403, 1 attempt): Operation Failed: ACL Exception "
        "Insert Failed due to security constraints"
    )


async def test_journal_entry_is_never_resent_after_a_cut() -> None:
    sn = FakeServiceNow()
    async with serve(sn.routes(), sn.seen) as base:
        c = client(base)
        t = await c.create(PAYLOAD, "m-9")
        sn.create_plan = ["cut-patch"]
        with pytest.raises(PlatformError) as caught:
            await c.add_comment(t.external_id, "once", "m-9-n", internal=True)
        await c.close()
    assert caught.value.ambiguous
    assert caught.value.kind is ErrorKind.UNAVAILABLE
    assert sn.seen.count("PATCH") == 1


async def test_bad_identifier_is_refused_before_sending() -> None:
    sn = FakeServiceNow()
    async with serve(sn.routes(), sn.seen) as base:
        c = client(base)
        with pytest.raises(PlatformError) as caught:
            await c.get("../../sys_user")
        with pytest.raises(ValueError, match="marker"):
            await c.create(PAYLOAD, "bad marker^x")
        await c.close()
    assert caught.value.kind is ErrorKind.PAYLOAD_REJECTED
    assert sn.seen.count() == 0


# -- OAuth ------------------------------------------------------------------------------------


def oauth() -> Credentials:
    return Credentials("oauth", "admin", "admin", client_id="cid", client_secret=CLIENT_SECRET)


async def test_oauth_token_is_fetched_once_for_concurrent_calls() -> None:
    sn = FakeServiceNow()
    async with serve(sn.routes(), sn.seen) as base:
        c = client(base, oauth())
        tickets = await asyncio.gather(*(c.create(PAYLOAD, f"m-o{i}") for i in range(20)))
        await c.close()
    assert len(tickets) == 20 and len(sn.records) == 20
    assert sn.grants == ["password"]
    (token_request,) = sn.seen.matching("POST", "/oauth_token.do")
    assert token_request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert all(r.headers["Authorization"].startswith("Bearer ") for r in sn.seen.matching("POST", TABLE))


async def test_oauth_token_is_refreshed_before_expiry() -> None:
    sn = FakeServiceNow()
    sn.token_ttl = 1  # refreshed a tenth of its lifetime early
    async with serve(sn.routes(), sn.seen) as base:
        c = client(base, oauth())
        await c.create(PAYLOAD, "m-r1")
        await asyncio.sleep(1.0)
        await c.create(PAYLOAD, "m-r2")
        await c.close()
    assert sn.grants == ["password", "refresh_token"]
    assert sn.seen.count("POST", TABLE) == 2  # no 401 round trip: refreshed ahead of time


async def test_revoked_oauth_token_is_replaced_once() -> None:
    sn = FakeServiceNow()
    async with serve(sn.routes(), sn.seen) as base:
        c = client(base, oauth())
        await c.create(PAYLOAD, "m-v1")
        sn.tokens.clear()  # the instance revoked every token
        ticket = await c.create(PAYLOAD, "m-v2")
        await c.close()
    # A revoked access token usually means a revoked refresh token: straight to the password grant.
    assert sn.grants == ["password", "password"]
    assert ticket.retry.attempts == 3  # 401, token, create


async def test_oauth_with_wrong_client_secret_is_an_auth_error() -> None:
    sn = FakeServiceNow()
    creds = Credentials("oauth", "admin", "admin", client_id="cid", client_secret="wrong")
    async with serve(sn.routes(), sn.seen) as base:
        c = client(base, creds)
        with pytest.raises(PlatformError) as caught:
            await c.create(PAYLOAD, "m-w")
        await c.close()
    assert caught.value.kind is ErrorKind.AUTH
    assert "bad client" in caught.value.message
    assert sn.seen.count("POST", TABLE) == 0


# -- secrets ----------------------------------------------------------------------------------


def exception_texts(exc: BaseException) -> list[str]:
    texts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts += [str(current), repr(current), *(repr(a) for a in current.args)]
        texts += [repr(v) for v in vars(current).values()]
        current = current.__cause__ or current.__context__
    return texts


async def test_canary_secret_never_leaks(caplog: pytest.LogCaptureFixture) -> None:
    canary = "canary-" + secrets.token_hex(8)
    token_canary = "tok-" + secrets.token_hex(8)

    async def echo_401(request: web.Request) -> web.Response:
        # A hostile or buggy platform echoing everything it got.
        return web.json_response(
            sn_error(
                f"User Not Authenticated: {request.headers.get('Authorization')}",
                f"password was {canary}",
            ),
            status=401,
        )

    async def echo_token(request: web.Request) -> web.Response:
        form = await request.post()
        return web.json_response(
            {"error": "access_denied", "error_description": f"refused {dict(form)}"}, status=401
        )

    async def token_then_echo(request: web.Request) -> web.Response:
        return web.json_response({"access_token": token_canary, "expires_in": 1799})

    errors: list[PlatformError] = []
    caplog.set_level(logging.DEBUG)
    basic = Credentials("basic", "admin", canary)
    oauth_creds = Credentials("oauth", "admin", canary, client_id="cid", client_secret=canary)
    async with serve(
        {("POST", TABLE): echo_401, ("GET", TABLE): echo_401, ("POST", "/oauth_token.do"): echo_token}
    ) as base:
        for creds in (basic, oauth_creds):
            c = client(base, creds)
            for call in (c.create(PAYLOAD, "m-c"), c.find_by_marker("m-c")):
                with pytest.raises(PlatformError) as caught:
                    await call
                errors.append(caught.value)
            await c.close()
    async with serve({("POST", TABLE): echo_401, ("POST", "/oauth_token.do"): token_then_echo}) as base:
        c = client(base, oauth_creds)
        with pytest.raises(PlatformError) as caught:
            await c.create(PAYLOAD, "m-c")
        errors.append(caught.value)
        await c.close()
    # Unreachable platform with credentials in the URL and the proxy URL.
    unreachable = HttpSettings(f"http://admin:{canary}@127.0.0.1:9", proxy=None)
    c = ServiceNowClient(
        ServiceNowSettings(unreachable, basic), RetryPolicy(max_attempts=2, initial_delay=0.01)
    )
    with pytest.raises(PlatformError) as caught:
        await c.create(PAYLOAD, "m-c")
    errors.append(caught.value)
    await c.close()

    assert [e.kind for e in errors] == [ErrorKind.AUTH] * 5 + [ErrorKind.UNAVAILABLE]
    for err in errors:
        for text in exception_texts(err):
            assert canary not in text and token_canary not in text, text
    for record in caplog.records:
        line = record.getMessage() + str(record.exc_info or "") + str(record.__dict__)
        assert canary not in line and token_canary not in line


# -- registry ---------------------------------------------------------------------------------


async def test_registry_builds_a_servicenow_client() -> None:
    settings = ServiceNowSettings(HttpSettings("http://127.0.0.1:9"), Credentials("basic", "a", "b"))
    c = registry.spec("servicenow").build_client(settings, RetryPolicy(), TimeoutConfig(), None)
    assert c.platform == "servicenow"
    await c.close()
    with pytest.raises(TypeError):
        registry.spec("jira").build_client(settings, RetryPolicy(), TimeoutConfig(), None)
    with pytest.raises(ValueError, match="unknown platform"):
        registry.spec("remedy")


# -- transport settings -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


async def test_tls_private_ca_bundle(self_signed: tuple[str, str]) -> None:
    cert, key = self_signed
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    sn = FakeServiceNow()
    creds = Credentials("basic", "admin", "admin")
    async with serve(sn.routes(), sn.seen, ssl_context=server_ctx) as base:
        untrusted = ServiceNowClient(ServiceNowSettings(HttpSettings(base), creds), FAST)
        with pytest.raises(PlatformError) as caught:
            await untrusted.create(PAYLOAD, "m-tls")
        await untrusted.close()
        trusted = ServiceNowClient(ServiceNowSettings(HttpSettings(base, ca_bundle=cert), creds), FAST)
        ticket = await trusted.create(PAYLOAD, "m-tls")
        await trusted.close()
        unverified = ServiceNowClient(ServiceNowSettings(HttpSettings(base, verify_tls=False), creds), FAST)
        found = await unverified.find_by_marker("m-tls")
        await unverified.close()
    err = caught.value
    assert (err.kind, err.attempts, err.ambiguous) == (ErrorKind.UNAVAILABLE, 1, False)
    assert "tls" in err.message
    assert found is not None and found.external_id == ticket.external_id


async def test_requests_go_through_the_configured_proxy() -> None:
    sn = FakeServiceNow()
    async with serve(sn.routes(), sn.seen) as proxy:
        # The platform's own host does not resolve: only the proxy can have answered.
        settings = ServiceNowSettings(
            HttpSettings("http://instance.invalid", proxy=proxy), Credentials("basic", "admin", "admin")
        )
        c = ServiceNowClient(settings, FAST)
        ticket = await c.create(PAYLOAD, "m-proxy")
        await c.close()
    (post,) = sn.seen.matching("POST", TABLE)
    assert post.headers["Host"] == "instance.invalid"
    assert ticket.url.startswith("http://instance.invalid/nav_to.do")
