"""The page for people at `/` of the web port: index.html and its assets, built from web/ and shipped
in the package (server.webpage, committed like gen/ and checked fresh by scripts/build_web.py).

Every file is read once, at start-up, into an in-memory table keyed by its URL path: a request names
a key or gets 404, so no path from a request ever reaches the file system (no traversal, no symlink
or directory listing to think about). Each answer carries the page's security headers: a strict
Content-Security-Policy (only the gateway's own scripts, styles and calls; no inline script; no
framing), nosniff and no referrer. Vite names each asset after its content, so /assets/* is cached
for good; index.html (and the unhashed favicon) is revalidated on every load through its ETag.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Final

from aiohttp import web

PACKAGE: Final = "server.webpage"
INDEX: Final = "/index.html"
HASHED_DIR: Final = "/assets/"

CONTENT_SECURITY_POLICY: Final = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        # The page never submits a form natively: even with its script broken, a sign-in form
        # cannot send the token anywhere (in a URL, above all).
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS: Final[Mapping[str, str]] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    "Cross-Origin-Opener-Policy": "same-origin",
}
IMMUTABLE: Final = "public, max-age=31536000, immutable"
REVALIDATE: Final = "no-cache"

# By extension, not by the platform's mimetypes table (which reads /etc/mime.types): the same answer
# on every host. An unlisted extension is served as bytes, which nosniff keeps from being run.
CONTENT_TYPES: Final[Mapping[str, str]] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
}
OCTET_STREAM: Final = "application/octet-stream"
_COMPRESSIBLE: Final = (".html", ".js", ".css", ".svg", ".json", ".txt")
_MIN_GZIP_BYTES: Final = 1024


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes | None  # made once; None where it would not pay
    content_type: str
    cache_control: str
    etag: str


class WebPage:
    """The page's files by URL path; answers GET and HEAD for them."""

    def __init__(self, assets: Mapping[str, Asset]) -> None:
        self._assets = dict(assets)

    @classmethod
    def load(cls, root: Traversable | None = None) -> WebPage:
        """Every file under root (the shipped package by default). A build without the page (no
        index.html) serves 404 at /, as any unknown path."""
        root = resources.files(PACKAGE) if root is None else root
        assets: dict[str, Asset] = {}
        for path, item in _walk(root, ""):
            assets[path] = _asset(path, item.read_bytes())
        return cls(assets)

    @property
    def paths(self) -> frozenset[str]:
        return frozenset(self._assets)

    def answer(self, request: web.BaseRequest) -> web.Response:
        path = INDEX if request.path == "/" else request.path
        asset = self._assets.get(path)
        if asset is None:
            return not_found()
        headers = {
            **SECURITY_HEADERS,
            "Content-Type": asset.content_type,
            "Cache-Control": asset.cache_control,
            "ETag": asset.etag,
        }
        if asset.gzipped is not None:
            headers["Vary"] = "Accept-Encoding"
        if _matches(request.headers.get("If-None-Match"), asset.etag):
            return web.Response(status=304, headers=headers)
        body = asset.body
        if asset.gzipped is not None and _accepts_gzip(request.headers.get("Accept-Encoding", "")):
            body = asset.gzipped
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)


def not_found() -> web.Response:
    """404 for a GET of anything that is not the page's, with the page's headers all the same."""
    headers = {**SECURITY_HEADERS, "Content-Type": "text/plain; charset=utf-8", "Cache-Control": REVALIDATE}
    return web.Response(status=404, body=b"not found\n", headers=headers)


def _walk(folder: Traversable, prefix: str) -> list[tuple[str, Traversable]]:
    found: list[tuple[str, Traversable]] = []
    for item in sorted(folder.iterdir(), key=lambda i: i.name):
        if item.name.startswith((".", "__")):
            continue  # __pycache__, editor and VCS files are not the page's
        path = f"{prefix}/{item.name}"
        if item.is_dir():
            found.extend(_walk(item, path))
        elif item.is_file():
            found.append((path, item))
    return found


def _asset(path: str, body: bytes) -> Asset:
    extension = path[path.rfind(".") :] if "." in path.rsplit("/", 1)[-1] else ""
    gzipped = None
    if extension in _COMPRESSIBLE and len(body) >= _MIN_GZIP_BYTES:
        gzipped = gzip.compress(body, mtime=0)  # level 9 takes twice as long to save 0.3%
    return Asset(
        body=body,
        gzipped=gzipped,
        content_type=CONTENT_TYPES.get(extension, OCTET_STREAM),
        cache_control=IMMUTABLE if path.startswith(HASHED_DIR) else REVALIDATE,
        etag=f'"{hashlib.sha256(body).hexdigest()[:32]}"',
    )


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return etag in tags or "*" in tags


def _accepts_gzip(accept_encoding: str) -> bool:
    for part in accept_encoding.lower().split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip() in ("gzip", "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False
