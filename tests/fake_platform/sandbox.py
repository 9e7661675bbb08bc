"""The fakedesk sandbox: what sandbox/<platform>/ would be for a real third platform."""

from __future__ import annotations

import base64
from typing import Any

from aiohttp import web

from sandbox.config import SandboxLimits
from sandbox.control import add_control_routes
from sandbox.faultgate import cut_connection, fault_middleware
from sandbox.faults import FaultState
from sandbox.spec import SandboxPlatform

USER, SECRET = "desk", "desk-secret"


class Tickets:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def record_count(self) -> int:
        return len(self.rows)

    def clear(self) -> None:
        self.rows.clear()


class FakeDeskSandbox:
    def __init__(self, faults: FaultState, limits: SandboxLimits) -> None:
        self.store = Tickets()
        self.faults = faults
        self._auth = "Basic " + base64.b64encode(f"{USER}:{SECRET}".encode()).decode()

    def app(self) -> web.Application:
        def refused(status: int, retry_after: int) -> web.Response:
            return web.json_response({"message": "busy"}, status=status, headers={"Retry-After": str(retry_after)})

        app = web.Application(middlewares=[fault_middleware(self.faults, refused)])
        add_control_routes(app, self.faults, self.store)
        app.router.add_post("/tickets", self.create)
        app.router.add_get("/tickets", self.find)
        return app

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == self._auth

    async def create(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return web.json_response({"message": "who are you?"}, status=401)
        body = await request.json()
        if not body.get("title"):
            return web.json_response({"message": "invalid", "fields": {"title": "required"}}, status=400)
        ticket = {"id": len(self.store.rows) + 1, **body}
        self.store.rows.append(ticket)
        if self.faults.roll_drop_after_commit():
            return cut_connection(request)
        return web.json_response(ticket, status=201)

    async def find(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"message": "who are you?"}, status=401)
        marker = request.query.get("marker")
        return web.json_response({"tickets": [t for t in self.store.rows if t.get("marker") == marker]})


SANDBOX = SandboxPlatform(
    name="fakedesk",
    default_port=8089,
    credentials=(USER, SECRET),
    build=lambda auth, faults, limits: FakeDeskSandbox(faults, limits),
    title="FakeDesk",
    records_path="/tickets",
)
