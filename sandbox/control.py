"""The /_sandbox/ control endpoints: fault settings, counters and reset. No credentials, no faults."""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web

from sandbox.faults import FaultSettingsError, FaultState
from sandbox.wire import BodyNotJson, BodyTooLarge, read_json_body

MAX_CONTROL_BODY_BYTES = 64 * 1024


class ControlTarget(Protocol):
    """What the control endpoints need from a platform's store."""

    def record_count(self) -> int: ...

    def clear(self) -> None: ...


def _invalid(key: str, message: str) -> web.Response:
    return web.json_response({"error": f"{key}: {message}", "errors": {key: message}}, status=400)


def add_control_routes(app: web.Application, faults: FaultState, target: ControlTarget) -> None:
    async def get_faults(_: web.Request) -> web.Response:
        return web.json_response(faults.settings.to_json())

    async def put_faults(request: web.Request) -> web.Response:
        try:
            patch: Any = await read_json_body(request, MAX_CONTROL_BODY_BYTES)
        except BodyTooLarge:
            return _invalid("body", f"larger than {MAX_CONTROL_BODY_BYTES} bytes")
        except BodyNotJson:
            return _invalid("body", "must be a JSON object")
        if not isinstance(patch, dict):
            return _invalid("body", "must be a JSON object")
        try:
            faults.settings = faults.settings.merged(patch)
        except FaultSettingsError as exc:
            return _invalid(exc.key, exc.message)
        return web.json_response(faults.settings.to_json())

    async def get_stats(_: web.Request) -> web.Response:
        return web.json_response(
            {
                "records": target.record_count(),
                "requests": faults.requests,
                "writes": faults.writes,
                "faults_injected": faults.faults_injected,
            }
        )

    async def reset(_: web.Request) -> web.Response:
        target.clear()
        faults.reset()
        return web.Response(status=204)

    app.router.add_get("/_sandbox/faults", get_faults)
    app.router.add_put("/_sandbox/faults", put_faults)
    app.router.add_get("/_sandbox/stats", get_stats)
    app.router.add_post("/_sandbox/reset", reset)
