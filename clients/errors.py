"""The one error type every platform client raises, and helpers for parsing error bodies.

Each platform module parses its own error format into an ErrorDetail. The service maps ErrorKind to
its outcome; it never looks at HTTP codes itself.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

# Messages come from remote systems; bound what we carry around and print.
_MAX_MESSAGE_CHARS = 500
_MAX_FIELD_ERRORS = 20


class ErrorKind(enum.StrEnum):
    PAYLOAD_REJECTED = "payload_rejected"  # 400/413/422, data-policy 403: fix the ticket's fields
    AUTH = "auth"  # 401, ACL 403: the gateway's credentials or roles are wrong; not retried
    NOT_FOUND = "not_found"  # 404
    CONFLICT = "conflict"  # 409
    UNAVAILABLE = "unavailable"  # transient failures outlasted the retry budget, or unreachable
    DEADLINE = "deadline"  # the caller's deadline ran out before an answer
    BAD_RESPONSE = "bad_response"  # an answer we cannot use: 500, a redirect, non-JSON, a bad query
    NOT_APPLIED = "not_applied"  # answered, but the change was left out: an ACL, a workflow rule


_KIND_BY_STATUS: dict[int, ErrorKind] = {
    400: ErrorKind.PAYLOAD_REJECTED,
    401: ErrorKind.AUTH,
    403: ErrorKind.AUTH,
    404: ErrorKind.NOT_FOUND,
    409: ErrorKind.CONFLICT,
    413: ErrorKind.PAYLOAD_REJECTED,
    422: ErrorKind.PAYLOAD_REJECTED,
    429: ErrorKind.UNAVAILABLE,
    502: ErrorKind.UNAVAILABLE,
    503: ErrorKind.UNAVAILABLE,
    504: ErrorKind.UNAVAILABLE,
}


def kind_for_status(status: int) -> ErrorKind:
    return _KIND_BY_STATUS.get(status, ErrorKind.BAD_RESPONSE)


class PlatformError(Exception):
    """A platform call that did not succeed.

    Built only from parsed, redacted text: it never holds a request, a header or a URL with user
    info, so printing or pickling it cannot leak a credential.
    """

    def __init__(
        self,
        *,
        platform: str,
        operation: str,
        kind: ErrorKind,
        message: str,
        status: int | None = None,
        field_errors: Mapping[str, str] | None = None,
        attempts: int = 0,
        ambiguous: bool = False,
        url: str | None = None,
    ) -> None:
        self.platform = platform
        self.operation = operation
        self.kind = kind
        self.status = status
        self.message = _clip(message)
        self.field_errors: dict[str, str] = {
            _clip(k): _clip(v) for k, v in list((field_errors or {}).items())[:_MAX_FIELD_ERRORS]
        }
        self.attempts = attempts
        self.ambiguous = ambiguous  # the request may have been applied on the platform
        self.url = url
        super().__init__(self._one_line())

    def _one_line(self) -> str:
        status = f"HTTP {self.status}" if self.status is not None else "no HTTP status"
        text = f"{self.platform} {self.operation} failed ({self.kind.value}, {status}"
        text += f", {self.attempts} attempt{'s' if self.attempts != 1 else ''})"
        if self.message:
            text += f": {self.message}"
        if self.field_errors:
            text += " [" + "; ".join(f"{k}: {v}" for k, v in self.field_errors.items()) + "]"
        if self.ambiguous:
            text += " (may have been applied)"
        return text

    def __repr__(self) -> str:
        return (
            f"PlatformError(platform={self.platform!r}, operation={self.operation!r}, "
            f"kind={self.kind.value!r}, status={self.status!r}, message={self.message!r}, "
            f"field_errors={self.field_errors!r}, attempts={self.attempts}, "
            f"ambiguous={self.ambiguous})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self._fields(),))

    def _fields(self) -> dict[str, Any]:
        return {
            "platform": self.platform,
            "operation": self.operation,
            "kind": self.kind,
            "message": self.message,
            "status": self.status,
            "field_errors": self.field_errors,
            "attempts": self.attempts,
            "ambiguous": self.ambiguous,
            "url": self.url,
        }

    def evolve(self, **changes: Any) -> PlatformError:
        """A copy with some fields changed (e.g. marked ambiguous, renamed to the public call)."""
        return PlatformError(**{**self._fields(), **changes})


def _rebuild(fields: dict[str, Any]) -> PlatformError:
    return PlatformError(**fields)


@dataclass(frozen=True)
class ErrorDetail:
    """What a platform said in an error response."""

    message: str
    kind: ErrorKind
    field_errors: dict[str, str] = field(default_factory=dict)
    from_platform: bool = False  # the body is in the platform's own error format


def text_of(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def plain_text(text: str) -> str:
    """A plain-text or HTML body reduced to one short line."""
    stripped = re.sub(r"<[^>]+>", " ", text)
    return " ".join(stripped.split())[:200]


def status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def _clip(text: str) -> str:
    one_line = " ".join(str(text).split())
    return one_line if len(one_line) <= _MAX_MESSAGE_CHARS else one_line[:_MAX_MESSAGE_CHARS] + "…"
