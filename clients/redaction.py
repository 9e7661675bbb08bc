"""Keeping secrets out of error messages and log lines: the one Redactor.

A platform can echo what it was sent (a login name in a 401, a form field in an OAuth error), and
exception text from the HTTP stack can carry URLs; everything the clients put in an exception, and
everything any module logs (server/observability/redaction.py installs it at the logging boundary),
passes through a Redactor. Two nets:

- the secret values registered (platform passwords, API tokens, OAuth client secrets and tokens, the
  base64 of user:password that a Basic header carries, their percent-encoded forms);
- credential shapes, registered or not: `Authorization: Basic/Bearer ...`, a bare `Bearer <token>`,
  `password=...` / `"token": "..."` style pairs, and `user:pass@` in URLs.

Every non-empty value is honoured: a secret too short to be safe to mask is still a secret. Pure
Python with no imports from the gateway, so clients/ and server/ share it.
"""

from __future__ import annotations

import base64
import re
import threading
from collections import deque
from collections.abc import Iterable
from typing import Any, Final
from urllib.parse import quote

from yarl import URL

MASK: Final = "***"
_MAX_DEPTH: Final = 6  # nested extras deeper than this are replaced whole: bounded work per record

_SHAPES = re.compile(
    # Authorization: Basic xxx / authorization=Bearer xxx (header dumps, repr of header dicts)
    r"(?P<header>(?i:\b(?:proxy-)?authorization\b)[\"']?\s*[:=]\s*[\"']?"
    r"(?:(?i:basic|bearer|token|digest|negotiate)\s+)?)(?P<header_value>[^\s\"',;}\]]+)"
    # a bare "Bearer <token>" / "Basic <b64>" as headers spell it, long enough to be a credential
    r"|(?P<scheme>\b(?:Basic|Bearer)\s+)(?P<scheme_value>[A-Za-z0-9._~+/-]{8,}=*)"
    # password=..., "client_secret": "...", token: ...
    r"|(?P<pair>(?i:\b(?:password|passwd|pwd|secret|client_secret|token|access_token|refresh_token"
    r"|id_token|api_key|apikey|api_token|private_key)\b)[\"']?\s*[:=]\s*[\"']?)"
    r"(?P<pair_value>[^\s\"'&,;}\]]+)"
    # scheme://user:password@host. Anchored on "://", not on the scheme: a scheme-first pattern
    # rescans every word of a long "a.a.a.a..." text, quadratic work a caller could trigger.
    r"|(?P<userinfo>://[^/\s:@]*:)(?P<userinfo_value>[^/\s@]+)(?=@)"
)
_KEEP = ("header", "scheme", "pair", "userinfo")


def _might_hold_credentials(text: str) -> bool:
    """Every _SHAPES branch contains one of these words (any case) or "://": a text with none of
    them cannot match, and the regex, which tries four branches at every position, is skipped.
    Spelt out rather than any(...) over a tuple: this runs for every log record."""
    if "://" in text:
        return True
    t = text.lower()
    return (
        "authorization" in t or "basic" in t or "bearer" in t or "pass" in t or "pwd" in t
        or "secret" in t or "token" in t or "key" in t
    )


def _mask_shape(match: re.Match[str]) -> str:
    for group in _KEEP:
        kept = match.group(group)
        if kept is not None:
            return kept + MASK
    return MASK  # pragma: no cover - every branch has a kept group


class Redactor:
    """Masks registered secret values, then credential shapes."""

    # Short-lived secrets (OAuth tokens) kept masked after they are replaced: late error messages
    # may still quote them, but a long-running process must not collect every token it ever had.
    ROTATING_KEPT = 4

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        # Longest first, so a secret containing another is masked whole. A tuple, swapped whole on
        # register, so readers on other threads never see it half-built.
        self._secrets: tuple[str, ...] = ()
        self._rotating: deque[str] = deque()
        self.register(secrets)

    def add(self, secret: str) -> None:
        self.register((secret,))

    def register(self, values: Iterable[str]) -> None:
        with self._lock:
            known = set(self._secrets)
            for value in values:
                if value:
                    known.add(value)
                    known.add(quote(value, safe=""))  # as it would appear inside a URL or form
            self._secrets = tuple(sorted(known, key=len, reverse=True))

    def add_rotating(self, secret: str) -> None:
        """A secret that replaces earlier ones of its kind; only the newest few stay masked."""
        if not secret or secret in self._secrets:
            return
        self.register((secret,))
        with self._lock:
            self._rotating.append(secret)
            dropped = set()
            while len(self._rotating) > self.ROTATING_KEPT:
                old = self._rotating.popleft()
                dropped |= {old, quote(old, safe="")}
            if dropped:
                self._secrets = tuple(s for s in self._secrets if s not in dropped)

    def register_basic_auth(self, username: str, password: str) -> None:
        """The password, and the Basic header's base64 of user:password, which is as good as it."""
        if password:
            token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
            self.register((password, token))

    add_basic = register_basic_auth

    def clear(self) -> None:
        with self._lock:
            self._secrets = ()
            self._rotating.clear()

    def needs(self, text: str) -> bool:
        """Could `text` hold anything to mask? Cheap substring tests, no regex: most log text has
        no credential-looking word at all, and a miss here means redaction costs nothing more."""
        for secret in self._secrets:
            if secret in text:
                return True
        return _might_hold_credentials(text)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        if _might_hold_credentials(text):
            text = _SHAPES.sub(_mask_shape, text)
        return text

    def value(self, value: Any, depth: int = 0) -> Any:
        """A log field with every string in it redacted; other objects become redacted text."""
        if isinstance(value, str):
            return self(value)
        if value is None or isinstance(value, bool | int | float):
            return value
        if depth >= _MAX_DEPTH:
            return MASK
        if isinstance(value, dict):
            return {self(str(k)): self.value(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.value(v, depth + 1) for v in value]
        return self(str(value))  # an object's str() may carry anything: redact it as text


def display_url(url: str | URL) -> str:
    """A URL fit for a message: no user info, no query (it may carry search terms)."""
    parsed = URL(url) if isinstance(url, str) else url
    return str(parsed.with_user(None).with_query(None).with_fragment(None))
