"""Jira's error answers: {"errorMessages": [...], "errors": {"field": "message"}}."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from http import HTTPStatus

from aiohttp import web

RATE_LIMIT = 350  # requests per window the sandbox claims in X-RateLimit-Limit
NOT_AUTHENTICATED = "You are not authenticated. Authentication required to perform this operation."
CLOUD_NOT_AUTHENTICATED = "Client must be authenticated to access this resource."


def error_response(
    status: int,
    messages: list[str] | None = None,
    errors: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = {"errorMessages": messages or [], "errors": errors or {}}
    return web.json_response(body, status=status, headers=headers)


def not_authenticated(version: int) -> web.Response:
    # Cloud (v3) answers a plain-text 401; Data Center (v2) a JSON body and a Seraph header.
    if version >= 3:
        return web.Response(status=401, text=CLOUD_NOT_AUTHENTICATED, content_type="text/plain")
    return error_response(401, [NOT_AUTHENTICATED], headers={"X-Seraph-LoginReason": "AUTHENTICATED_FAILED"})


def issue_not_found() -> web.Response:
    return error_response(404, ["Issue does not exist or you do not have permission to see it."])


def fault_response(status: int, retry_after_seconds: int) -> web.Response:
    """An injected failure with Jira Cloud's rate-limit headers on 429."""
    headers: dict[str, str] = {}
    if status in (429, 503):
        headers["Retry-After"] = str(retry_after_seconds)
    if status == 429:
        reset = datetime.now(UTC) + timedelta(seconds=retry_after_seconds)
        headers.update(
            {
                "X-RateLimit-Limit": str(RATE_LIMIT),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": reset.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "X-RateLimit-NearLimit": "true",
                "RateLimit-Reason": "jira-burst-based",
            }
        )
        return error_response(429, ["Rate limit exceeded."], headers=headers)
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return error_response(status, [f"{phrase} (injected by the sandbox fault settings)"], headers=headers)
