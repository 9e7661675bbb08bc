"""Checks every request's identifiers get, whatever the call: bounded, printable, no control chars."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from server.domain import errors
from server.domain.validation import Violation

MAX_REQUEST_ID = 128
MAX_TEXT_ID = 255
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_PRINTABLE = re.compile(r"[\x21-\x7e]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_ids(request_id: str, job_id: str = "") -> None:
    found = request_id_violations(request_id) + text_violations("job_id", job_id)
    if found:
        raise errors.InvalidArgument(summary(found), found)


def request_id_violations(request_id: str) -> list[Violation]:
    if len(request_id) > MAX_REQUEST_ID or (request_id and not _PRINTABLE.fullmatch(request_id)):
        return [
            Violation(
                "request_id",
                f"must be at most {MAX_REQUEST_ID} printable ASCII characters without spaces",
                "PATTERN",
            )
        ]
    return []


def text_violations(name: str, value: str) -> list[Violation]:
    """Identifiers are stored and matched as text: bounded, and no control characters (PostgreSQL
    refuses NUL outright)."""
    if len(value) > MAX_TEXT_ID:
        return [Violation(name, f"must be at most {MAX_TEXT_ID} characters", "MAX_LENGTH")]
    if _CONTROL.search(value):
        return [Violation(name, "must not contain control characters", "PATTERN")]
    return []


def check_ticket_id(ticket_id: str, field: str = "id") -> None:
    if not _UUID.fullmatch(ticket_id):
        raise errors.InvalidArgument(
            f"{field} must be a ticket UUID",
            [Violation(field, "must be a lowercase UUID like 3f1c2a4e-...", "PATTERN")],
        )


def fingerprint(kind: str, target: str, body: Mapping[str, Any], job_id: str = "") -> str:
    """The payload hash a request_id is bound to: the same request_id with another payload is refused."""
    canonical = json.dumps([kind, target, body, job_id], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def summary(violations: Sequence[Violation]) -> str:
    first = violations[0]
    more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
    return f"invalid request: {first.field}: {first.description}{more}"


def quote(value: str, limit: int = 80) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")
