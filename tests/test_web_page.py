"""The page at `/` of the web port, from outside over real HTTP: what is served, with which headers
(CSP, nosniff, framing, referrer, caching, compression), and what is not (unknown paths, traversal).
The browser's view of it is tests/test_browser.py."""

from __future__ import annotations

import asyncio
import gzip
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from sandbox import SandboxConfig, start_sandbox
from server.runtime.devmode import dev_banner
from server.transport import web_page
from server.transport.web_page import WebPage
from tests.gateway import Harness, running_gateway

ROOT = Path(__file__).resolve().parent.parent
BUILT = ROOT / "web" / "built"
CSP_DIRECTIVES = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "connect-src": "'self'",
    "frame-ancestors": "'none'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'none'",
}


@pytest.fixture
async def gateway(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[Harness]:
    """The real gateway on SQLite: serving files does not touch the database."""
    path = tmp_path / "itsm.db"
    shutil.copyfile(sqlite_template, path)
    async with running_gateway(f"sqlite+aiosqlite:///{path}") as harness:
        yield harness


def csp(headers: dict[str, str]) -> dict[str, str]:
    directives = [d.strip().split(None, 1) for d in headers["Content-Security-Policy"].split(";") if d.strip()]
    return {d[0]: d[1] if len(d) > 1 else "" for d in directives}


def assert_page_headers(headers: dict[str, str]) -> None:
    policy = csp(headers)
    for directive, value in CSP_DIRECTIVES.items():
        assert policy.get(directive) == value, (directive, policy)
    # No loophole in any directive: nothing inline, no eval, no data: or other origins.
    assert not re.search(r"unsafe-|data:|blob:|https?:|\*", headers["Content-Security-Policy"])
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Frame-Options"] == "DENY"


def referenced_assets(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="\./(assets/[^"]+)"', html)


async def test_slash_is_the_page_with_its_security_headers_and_no_inline_script(gateway: Harness) -> None:
    reply = await gateway.http("GET", "/")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "text/html; charset=utf-8"
    assert reply.headers["Cache-Control"] == "no-cache"
    assert_page_headers(reply.headers)
    html = reply.body.decode()
    assert html == (BUILT / "index.html").read_text()
    assert '<div id="root">' in html
    # Every script is a file of the gateway's; no inline script, style or event handler.
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all(re.search(r'\bsrc="\./assets/', s) for s in scripts), scripts
    assert all(not body.strip() for body in re.findall(r"<script\b[^>]*>(.*?)</script>", html, re.S))
    assert "<style" not in html and not re.search(r"\son[a-z]+=", html) and "style=" not in html
    # Nothing from elsewhere: every URL in the page is relative to it.
    assert not re.search(r'(?:src|href)="(?:https?:)?//', html)
    assert (await gateway.http("GET", "/index.html")).body == reply.body


async def test_assets_are_served_with_their_types_immutable_and_compressed(gateway: Harness) -> None:
    html = (await gateway.http("GET", "/")).body.decode()
    assets = referenced_assets(html)
    kinds = {Path(a).suffix for a in assets}
    assert kinds == {".js", ".css"}, assets
    for asset in assets:
        reply = await gateway.http("GET", f"/{asset}", headers={"Accept-Encoding": "identity"})
        assert reply.status == 200, asset
        expected = "text/javascript; charset=utf-8" if asset.endswith(".js") else "text/css; charset=utf-8"
        assert reply.headers["Content-Type"] == expected
        assert reply.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert_page_headers(reply.headers)
        assert reply.body == (BUILT / asset).read_bytes()
        assert "Content-Encoding" not in reply.headers

        # gzip when the browser takes it, made once at start-up; the same bytes once unpacked.
        async with gateway.web.get(
            f"{gateway.web_url}/{asset}", headers={"Accept-Encoding": "gzip"}, auto_decompress=False
        ) as packed:
            assert packed.headers["Content-Encoding"] == "gzip"
            assert packed.headers["Vary"] == "Accept-Encoding"
            assert gzip.decompress(await packed.read()) == reply.body

        # Revalidation: the ETag answers 304 with no body.
        etag = {k.lower(): v for k, v in reply.headers.items()}["etag"]
        again = await gateway.http("GET", f"/{asset}", headers={"If-None-Match": etag})
        assert again.status == 304 and again.body == b""

    icon = await gateway.http("GET", "/favicon.svg")
    assert icon.status == 200 and icon.headers["Content-Type"] == "image/svg+xml"
    assert icon.headers["Cache-Control"] == "no-cache"  # not content-named: revalidated


async def test_head_answers_the_headers_without_the_body(gateway: Harness) -> None:
    reply = await gateway.http("HEAD", "/")
    assert reply.status == 200 and reply.body == b""
    assert reply.headers["Content-Type"] == "text/html; charset=utf-8"
    assert_page_headers(reply.headers)


@pytest.mark.parametrize("path", ["/nope", "/assets/nope.js", "/assets/", "/assets", "/web/built/index.html",
                                  "/__init__.py", "/index.html/", "/INDEX.HTML"])
async def test_unknown_paths_are_404_with_the_page_headers(gateway: Harness, path: str) -> None:
    reply = await gateway.http("GET", path)
    assert reply.status == 404
    assert reply.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert_page_headers(reply.headers)


@pytest.mark.parametrize(
    "target",
    [
        "/../pyproject.toml",
        "/assets/../../pyproject.toml",
        "/assets/../../../../etc/passwd",
        "/%2e%2e/pyproject.toml",
        "/assets/%2e%2e/%2e%2e/pyproject.toml",
        "/assets/..%2f..%2fpyproject.toml",
        "/assets/%2E%2E%2F%2E%2E%2Fserver%2F__init__.py",
        "/..%5c..%5cpyproject.toml",
        "/assets/..\\..\\pyproject.toml",
        "//etc/passwd",
        "/./index.html/../../pyproject.toml",
        "/%00",
    ],
)
async def test_no_path_reaches_outside_the_page(gateway: Harness, target: str) -> None:
    """Sent byte for byte (a client library would normalise the dots away first)."""
    status, body = await raw_get(gateway.gateway.web_port, target)
    assert status in (400, 404), (target, status)
    assert b"[project]" not in body and b"root:" not in body and b"import" not in body


async def raw_get(port: int, target: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
    status_line = answer.split(b"\r\n", 1)[0].split()
    return int(status_line[1]), answer


async def test_rpc_paths_still_answer_calls_and_the_page_is_only_get(gateway: Harness) -> None:
    listed = await gateway.connect("TemplateService/ListTemplates", {})
    assert listed.status == 200 and listed.json()["templates"]
    # A call to the page's path is no call: Connect's unknown-procedure answer.
    posted = await gateway.http("POST", "/", {})
    assert posted.status == 404 and posted.json()["code"] == "unimplemented"
    assert (await gateway.http("PUT", "/")).status == 405
    assert (await gateway.http("GET", "/healthz")).json() == {"status": "SERVING"}


def test_the_served_files_are_exactly_the_built_page() -> None:
    page = WebPage.load()
    on_disk = {
        "/" + p.relative_to(BUILT).as_posix()
        for p in BUILT.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.name != "__init__.py"
    }
    assert page.paths == on_disk
    assert "/index.html" in on_disk


@dataclass(frozen=True)
class Ports:
    grpc_port: int = 50051
    metrics_port: int = 9464
    web_port: int = 8080


async def test_the_dev_banner_shows_where_the_page_is_and_how_to_sign_in() -> None:
    sandbox = await start_sandbox(SandboxConfig.on_free_ports())
    try:
        open_banner = dev_banner(Ports(), sandbox, "sqlite+aiosqlite:///var/itsm.db", tokens=False)
        with_tokens = dev_banner(Ports(), sandbox, "sqlite+aiosqlite:///var/itsm.db", tokens=True)
    finally:
        await sandbox.stop()
    assert "page          http://127.0.0.1:8080/" in open_banner
    assert "token left empty" in open_banner and "token from the tokens file" in with_tokens


# ------------------------------------------------------------------------------ any page's files


async def serve(page: WebPage) -> tuple[web.ServerRunner, int]:
    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        return page.answer(request)

    runner = web.ServerRunner(web.Server(handle))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site.port


async def test_content_types_by_extension_and_nothing_but_the_files(tmp_path: Path) -> None:
    (tmp_path / "assets").mkdir()
    files = {
        "index.html": ("text/html; charset=utf-8", b"<!doctype html>"),
        "assets/a-1.js": ("text/javascript; charset=utf-8", b"export {};"),
        "assets/a-1.css": ("text/css; charset=utf-8", b"a{}"),
        "assets/logo-2.svg": ("image/svg+xml", b"<svg/>"),
        "assets/logo-3.png": ("image/png", b"\x89PNG"),
        "assets/font-4.woff2": ("font/woff2", b"wOF2"),
        "assets/data-5.bin": ("application/octet-stream", b"\x00"),
        "robots.txt": ("text/plain; charset=utf-8", b"User-agent: *"),
    }
    for name, (_, body) in files.items():
        (tmp_path / name).write_bytes(body)
    # Not the page's: the package's own files, caches, hidden files, symlinks to elsewhere.
    (tmp_path / "__init__.py").write_text("# package\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "x.pyc").write_bytes(b"\x00")
    (tmp_path / ".hidden").write_text("secret")
    page = WebPage.load(tmp_path)
    assert page.paths == {f"/{name}" for name in files}

    runner, port = await serve(page)
    try:
        for name, (content_type, body) in files.items():
            status, answer = await raw_get(port, f"/{name}")
            head, _, payload = answer.partition(b"\r\n\r\n")
            assert status == 200 and payload == body, name
            assert f"Content-Type: {content_type}".encode() in head, (name, head)
            cache = web_page.IMMUTABLE if name.startswith("assets/") else web_page.REVALIDATE
            assert f"Cache-Control: {cache}".encode() in head
        for hidden in ("/__init__.py", "/__pycache__/x.pyc", "/.hidden"):
            assert (await raw_get(port, hidden))[0] == 404
    finally:
        await runner.cleanup()


async def test_a_build_without_the_page_answers_404(tmp_path: Path) -> None:
    runner, port = await serve(WebPage.load(tmp_path))
    try:
        status, answer = await raw_get(port, "/")
        assert status == 404 and b"Content-Security-Policy" in answer
    finally:
        await runner.cleanup()
