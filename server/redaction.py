"""Redaction at the logging boundary: whatever any module logs, no secret leaves the process.

Two nets, applied to the formatted message, every `extra` field (nested lists and dicts included),
the exception text and the stack text of every record that reaches the handlers it is installed on:

- the secret values registered at start-up (platform passwords, API tokens, OAuth client secrets,
  the base64 of user:password that a Basic header carries, their percent-encoded forms);
- credential shapes, registered or not: `Authorization: Basic/Bearer ...`, a bare
  `Bearer <token>`, `password=...` / `"token": "..."` style pairs, and `user:pass@` in URLs.

Registering is global and additive because the values arrive at different moments (config load,
token file, OAuth refresh), and one log handler serves the whole process. Every non-empty value is
honoured: a secret too short to be safe to mask is still a secret.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
import traceback
from collections.abc import Iterable
from typing import Any, Final
from urllib.parse import quote

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

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Longest first, so a secret containing another is masked whole. A tuple, swapped whole on
        # register, so readers on other threads never see it half-built.
        self._secrets: tuple[str, ...] = ()

    def register(self, values: Iterable[str]) -> None:
        with self._lock:
            known = set(self._secrets)
            for value in values:
                if value:
                    known.add(value)
                    known.add(quote(value, safe=""))  # as it would appear inside a URL or form
            self._secrets = tuple(sorted(known, key=len, reverse=True))

    def register_basic_auth(self, username: str, password: str) -> None:
        """The password, and the Basic header's base64 of user:password, which is as good as it."""
        if password:
            token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
            self.register((password, token))

    def clear(self) -> None:
        with self._lock:
            self._secrets = ()

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


# The process's redactor: start-up code registers into it, the logging filter reads it.
REDACTOR: Final = Redactor()


def register_secrets(values: Iterable[str]) -> None:
    REDACTOR.register(values)


def register_basic_auth(username: str, password: str) -> None:
    REDACTOR.register_basic_auth(username, password)


def redact(text: str) -> str:
    return REDACTOR(text)


_SCALARS: Final = frozenset({int, float, bool})
# Attributes every LogRecord has; anything else on a record came in through `extra`.
STANDARD_RECORD_ATTRIBUTES: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__
) | {"message", "asctime", "taskName"}


class RedactingFilter(logging.Filter):
    """Install on a handler: it rewrites each record in place before any formatter sees it."""

    def __init__(self, redactor: Redactor = REDACTOR) -> None:
        super().__init__()
        self._redact = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.__dict__
        if fields.get("_redacted"):  # already done by another handler's filter
            return True
        # The formatted message, not msg and args apart: an argument's str() can hold a secret
        # that neither the template nor the raw argument shows.
        message = _message(record)
        extras = extra_keys(record)
        texts = [message]
        plain = True
        for key in extras:
            value = fields[key]
            if type(value) is str:
                texts.append(value)
            elif value is not None and type(value) not in _SCALARS:
                plain = False
        # The usual record (a message, a few short strings and numbers) is checked in one pass of
        # substring tests; only a record that might hold something is redacted field by field.
        if plain and not self._redact.needs("\n".join(texts)):
            record.msg = message
        else:
            record.msg = self._redact(message)
            for key in extras:
                fields[key] = self._redact.value(fields[key])
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        # Formatters print exc_text when it is set; dropping the live exception means no handler
        # can format it again, unredacted, from its arguments.
        record.exc_info = None
        if record.stack_info:
            record.stack_info = self._redact(record.stack_info)
        fields["_redacted"] = True
        fields["_extra_keys"] = extras  # the formatter needs the same list: found once
        return True


def extra_keys(record: logging.LogRecord) -> list[str]:
    """Names of the fields a record got through `extra` (underscored ones are internal)."""
    known = record.__dict__.get("_extra_keys")
    if known is not None:
        return known
    return [k for k in record.__dict__ if k not in STANDARD_RECORD_ATTRIBUTES and k[0] != "_"]


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a bad format string must not lose the line, nor leak its arguments raw
        return f"{record.msg} {record.args!r}"
