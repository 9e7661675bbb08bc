"""The one place where an Alertmanager notification's end becomes an HTTP answer.

Alertmanager retries a 5xx (within max(group_interval, 10 s)) and never a 4xx, so:
- 200: done, or nothing to do (the JSON body says which);
- 4xx: it will never work as sent: 400 not JSON, 401/403 token, 404 unknown receiver, 405 not POST,
  409 a precondition the gateway cannot meet (a platform not enabled, the platform refusing the
  gateway's credentials or the change), 413 too large, 415 not JSON by its type, 422 a payload that is
  not a version 4 notification or does not fit the receiver's template;
- 503 with Retry-After: a retry may succeed: a platform down or slow past the deadline, an outcome not
  known yet (OUTCOME_PENDING), the gateway's database unreachable, the gateway over capacity;
- 500: a bug, with a reference to its log line; never for anything a caller sent.
Bodies are JSON: {"code", "message", "violations"?} for a refusal, messages safe to show (domain
errors carry no secrets; the database's own message is logged, never answered).
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from server.domain import errors
from server.domain.validation import Violation
from server.service.alerts import AlertOutcome

log = logging.getLogger("itsm.server")

_UNAVAILABLE_RETRY_SECONDS = 1.0


@dataclass(frozen=True)
class Answer:
    status: int
    code: str  # ok, invalid_argument, ...: the body's "code", and the log line's (upper-cased)
    body: Mapping[str, Any]
    outcome: str  # the metric's outcome label: an action, refused, unavailable or failed
    retry_after: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


def done(outcome: AlertOutcome) -> Answer:
    body: dict[str, Any] = {
        "code": "ok",
        "action": outcome.action,
        "request_id": outcome.request_id,
        "dedup_key": outcome.dedup_key,
    }
    if outcome.ticket is not None:
        ticket = outcome.ticket
        body["ticket"] = {"id": ticket.id, "external_key": ticket.external_key, "url": ticket.url}
    if outcome.reason:
        body["reason"] = outcome.reason
    return Answer(200, "ok", body, outcome.action)


def refused(
    status: int, code: str, message: str, violations: Sequence[Violation] = (), **headers: str
) -> Answer:
    """A 4xx: the notification will never work as sent."""
    return Answer(status, code, _error(code, message, violations), "refused", headers=headers)


def unavailable(
    message: str, retry_after: float = _UNAVAILABLE_RETRY_SECONDS, code: str = "unavailable"
) -> Answer:
    """A 503: a retry may succeed."""
    return Answer(503, code, _error(code, message), "unavailable", retry_after=retry_after)


def from_error(exc: BaseException) -> Answer:
    """What a failed notification answers; errors the service raises, and anything else."""
    if isinstance(exc, errors.InvalidArgument):
        return refused(422, "invalid_argument", str(exc), exc.violations)
    if isinstance(exc, errors.NotFound):
        return refused(404, "not_found", str(exc))
    if isinstance(exc, errors.FailedPrecondition):
        return refused(409, "failed_precondition", str(exc))
    if isinstance(exc, errors.OutcomePending):
        return unavailable(str(exc), exc.retry_after_seconds or _UNAVAILABLE_RETRY_SECONDS, "outcome_pending")
    if isinstance(exc, errors.Unavailable):
        return unavailable(str(exc), exc.retry_after_seconds or _UNAVAILABLE_RETRY_SECONDS)
    if isinstance(exc, errors.DeadlineExceeded | TimeoutError):
        message = str(exc) or "the notification took longer than alertmanager.timeout_seconds"
        return unavailable(message, code="deadline_exceeded")
    if isinstance(exc, errors.ResourceExhausted):
        return unavailable(str(exc), code="resource_exhausted")
    if isinstance(exc, errors.StoreUnavailable):
        log.error("database unavailable: %s", exc)
        return unavailable("the gateway's database is unavailable; retry later")
    ref = uuid.uuid4().hex[:12]
    log.error("unhandled error in an Alertmanager notification ref=%s", ref, exc_info=exc)
    return Answer(500, "internal", _error("internal", f"internal error (ref {ref})"), "failed")


def retry_after_header(seconds: float) -> str:
    """Retry-After takes whole seconds."""
    return str(max(1, math.ceil(seconds)))


def _error(code: str, message: str, violations: Sequence[Violation] = ()) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if violations:
        body["violations"] = [
            {"field": v.field, "description": v.description, "reason": v.reason} for v in violations
        ]
    return body
