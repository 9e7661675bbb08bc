"""Caller authentication: bearer tokens from a file, compared in constant time.

The tokens file (named by ITSM_AUTH_TOKENS_FILE, never part of the JSON config) has one caller a line:

    # name      token                          scopes (optional; default read,write)
    alerts      3f1c...e9                      write
    dashboards  77ab...01                      read

Blank lines and lines starting with # are ignored.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path

SCOPES = frozenset({"read", "write"})
ANONYMOUS = "anonymous"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
MIN_TOKEN_LENGTH = 16


class TokensFileError(Exception):
    """The tokens file is unreadable or malformed; the message never contains a token."""


@dataclass(frozen=True)
class Caller:
    name: str
    scopes: frozenset[str]


# Set by the auth interceptor for the duration of one RPC; read by servicers to stamp created_by.
current_caller: contextvars.ContextVar[Caller | None] = contextvars.ContextVar(
    "current_caller", default=None
)


def caller_name() -> str:
    caller = current_caller.get()
    return caller.name if caller else ANONYMOUS


@dataclass(frozen=True)
class _Entry:
    digest: bytes
    caller: Caller


class TokenRegistry:
    """Maps bearer tokens to callers.

    Tokens are kept only as SHA-256 digests and every entry is compared on every lookup, so neither
    the memory image nor the response time tells which token (or how much of one) was right.
    """

    def __init__(self, entries: list[tuple[str, str, frozenset[str]]]) -> None:
        self._entries = [
            _Entry(_digest(token), Caller(name, scopes)) for name, token, scopes in entries
        ]

    def __len__(self) -> int:
        return len(self._entries)

    def authenticate(self, token: str) -> Caller | None:
        digest = _digest(token)
        found: Caller | None = None
        for entry in self._entries:
            if hmac.compare_digest(entry.digest, digest):
                found = entry.caller
        return found

    @classmethod
    def from_file(cls, path: str | Path) -> TokenRegistry:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise TokensFileError(f"{path}: cannot read: {exc.strerror}") from None
        return cls.parse(text, source=str(path))

    @classmethod
    def parse(cls, text: str, source: str = "tokens file") -> TokenRegistry:
        entries: list[tuple[str, str, frozenset[str]]] = []
        names: set[str] = set()
        for number, line in enumerate(text.splitlines(), start=1):
            words = line.split()
            if not words or words[0].startswith("#"):
                continue
            where = f"{source}:{number}"
            entries.append(_parse_line(words, where, names))
        if not entries:
            raise TokensFileError(f"{source}: no callers defined")
        return cls(entries)


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` value (scheme case-insensitive), or None."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def _parse_line(words: list[str], where: str, names: set[str]) -> tuple[str, str, frozenset[str]]:
    if len(words) not in (2, 3):
        raise TokensFileError(f"{where}: expected 'name token [scopes]'")
    name, token = words[0], words[1]
    if not _NAME.fullmatch(name):
        raise TokensFileError(f"{where}: invalid caller name")
    if name in names:
        raise TokensFileError(f"{where}: caller {name!r} defined twice")
    if len(token) < MIN_TOKEN_LENGTH:
        raise TokensFileError(f"{where}: token of {name!r} is shorter than {MIN_TOKEN_LENGTH} characters")
    scopes = frozenset(words[2].split(",")) if len(words) == 3 else SCOPES
    if not scopes <= SCOPES:
        raise TokensFileError(f"{where}: scopes must be read, write or read,write")
    names.add(name)
    return name, token, scopes


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
