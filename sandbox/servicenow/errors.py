"""ServiceNow's error answers: {"error": {"message", "detail"}, "status": "failure"}."""

from __future__ import annotations

import time
from http import HTTPStatus

from aiohttp import web

RATE_LIMIT = 1000  # requests per hour the sandbox claims in X-RateLimit-Limit
RATE_LIMIT_RULE = "a3c1f7e01b8d4e2f9d6c5b4a39281706"  # sys_id of the sandbox's rate limit rule


def error_response(
    status: int,
    message: str,
    detail: str | None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = {"error": {"message": message, "detail": detail}, "status": "failure"}
    return web.json_response(body, status=status, headers=headers)


def not_authenticated() -> web.Response:
    return error_response(
        401,
        "User Not Authenticated",
        "Required to provide Auth information",
        {"WWW-Authenticate": 'BASIC realm="Service-now"'},
    )


def no_record() -> web.Response:
    return error_response(
        404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval"
    )


def fault_response(status: int, retry_after_seconds: int) -> web.Response:
    """An injected failure, dressed as the instance (or its load balancer) would send it."""
    headers: dict[str, str] = {}
    if status in (429, 503):
        headers["Retry-After"] = str(retry_after_seconds)
    if status == 429:
        headers["X-RateLimit-Limit"] = str(RATE_LIMIT)
        headers["X-RateLimit-Reset"] = str(int(time.time()) + retry_after_seconds)
        headers["X-RateLimit-Rule"] = RATE_LIMIT_RULE
        return error_response(
            429,
            "Rate limit exceeded",
            f"The rate limit of {RATE_LIMIT} requests per hour for rule {RATE_LIMIT_RULE} was exceeded",
            headers,
        )
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return error_response(status, phrase, "Injected by the sandbox fault settings", headers)
