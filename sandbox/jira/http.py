"""Request plumbing the Jira handlers share: API version, link base and bounded JSON bodies."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sandbox.jira.errors import error_response
from sandbox.jira.render import Api
from sandbox.wire import BodyNotJson, BodyTooLarge, read_json_body

# "latest" is what Data Center calls its newest version, which is 2.
API_ROOT = "/rest/api/{version:2|3|latest}"


def api_version(request: web.Request) -> int:
    version = request.match_info.get("version", "2")
    return 2 if version == "latest" else int(version)


def api_of(request: web.Request) -> Api:
    return Api(str(request.url.origin()), api_version(request))


async def json_object(request: web.Request, max_bytes: int) -> dict[str, Any] | web.Response:
    """The body as a JSON object, or the error answer to send instead."""
    try:
        body = await read_json_body(request, max_bytes)
    except BodyTooLarge:
        return error_response(413, [f"The request body is larger than {max_bytes} bytes."])
    except BodyNotJson as exc:
        return error_response(400, [f"Unexpected character in the request body: {exc}"])
    if not isinstance(body, dict):
        return error_response(400, ["The request body must be a JSON object."])
    return body
