"""Fields of the current RPC's log line that only the pipeline learns (ticket id, outcome...).

The RPC log interceptor binds a dict at the start of each call; the pipeline annotates it; the RPC's
log line and every outbound attempt's line made within the call carry the fields. Without a bound
dict (background work, tests), annotate() does nothing.
"""

from __future__ import annotations

import contextvars
import logging
from typing import Any, Protocol

_fields: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "itsm_log_fields", default=None
)
_attempts = logging.getLogger("itsm.attempt")


def bind(fields: dict[str, Any]) -> None:
    _fields.set(fields)


def annotate(**fields: Any) -> None:
    bound = _fields.get()
    if bound is not None:
        bound.update(fields)


def current() -> dict[str, Any]:
    return _fields.get() or {}


class Attempt(Protocol):
    platform: str
    operation: str
    method: str
    attempt: int
    status: int | None
    duration_seconds: float
    outcome: str
    reason: str | None


_CALL_FIELDS = ("ticket_id", "request_id", "job_id", "caller")


def log_attempt(event: Attempt) -> None:
    """One JSON line per outbound HTTP attempt (the clients' on_attempt hook): WARNING for one that
    failed, INFO for a success after a failed one. A first attempt that succeeds, the usual case,
    is DEBUG: its status and duration go on the RPC's own line instead (platform_status,
    platform_ms), so a healthy call is one line, not two."""
    first_success = event.outcome == "ok" and event.attempt == 1
    if event.outcome == "ok":
        annotate(platform_status=event.status, platform_ms=round(event.duration_seconds * 1000, 3))
    level = logging.DEBUG if first_success else logging.INFO if event.outcome == "ok" else logging.WARNING
    if not _attempts.isEnabledFor(level):
        return
    call = current()
    extra = {
        "platform": event.platform,
        "operation": event.operation,
        "attempt": event.attempt,
        "status": event.status,
        "outcome": event.outcome,
        "duration_ms": round(event.duration_seconds * 1000, 3),
        **{k: call[k] for k in _CALL_FIELDS if k in call},
    }
    if event.reason:
        extra["reason"] = event.reason
    _attempts.log(
        level, "%s %s attempt %d: %s", event.platform, event.operation, event.attempt,
        event.status or event.reason, extra=extra,
    )
