"""Through a real Alertmanager (Debian's prometheus-alertmanager): alerts pushed to its API reach the
gateway's receiver over its webhook, with the bearer token from http_config.authorization; the
ticket is opened (after the 503s a platform outage answers, which Alertmanager retries), then
resolved when the alert is. And the README's two configuration snippets, checked by amtool and by
the gateway's own configuration loader."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from itsm.v1 import common_pb2, ticket_service_pb2
from server.runtime.config import parse_config
from tests.gateway import Harness, running_gateway
from tests.processes import ENV, ROOT, SHIPPED_CONFIG, alertmanager_binary, free_port
from tests.test_alertmanager import counted
from tests.test_lifecycle import NO_FAULTS, incident
from tests.test_server import TOKENS, WRITER

RECEIVER = "ops_servicenow"
WAIT_SECONDS = 45.0


def alertmanager_config(webhook: str, token_file: Path) -> dict[str, Any]:
    """Small intervals so a test sees a notification within seconds; JSON is YAML."""
    return {
        "global": {"resolve_timeout": "5s"},
        "route": {
            "receiver": "itsm",
            "group_by": ["alertname"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "itsm",
                "webhook_configs": [
                    {
                        "url": webhook,
                        "send_resolved": True,
                        "http_config": {"authorization": {"type": "Bearer", "credentials_file": str(token_file)}},
                    }
                ],
            }
        ],
    }


@asynccontextmanager
async def alertmanager(tmp_path: Path, webhook: str) -> AsyncIterator[str]:
    """A real Alertmanager on free ports, clustering off; yields its URL."""
    binary = alertmanager_binary()
    token = tmp_path / "token"
    token.write_text(WRITER)
    config = tmp_path / "alertmanager.yml"
    config.write_text(json.dumps(alertmanager_config(webhook, token)))
    port = free_port()
    log = (tmp_path / "alertmanager.log").open("w")
    process = await asyncio.create_subprocess_exec(
        binary, f"--config.file={config}", f"--storage.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
        stdout=log, stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await until(lambda: _ready(url), "Alertmanager ready")
        yield url
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        log.close()


async def _ready(url: str) -> bool:
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{url}/-/ready") as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"gave up waiting for: {what}"
        await asyncio.sleep(0.2)


async def push(url: str, ends: datetime, starts: datetime) -> None:
    """POST /api/v2/alerts: an endsAt in the past resolves the alert."""
    alert = {
        "labels": {"alertname": "DiskFull", "instance": "db-1", "severity": "page"},
        "annotations": {"summary": "Disk 97% full on db-1", "description": "Free space is running out."},
        "startsAt": starts.isoformat(), "endsAt": ends.isoformat(), "generatorURL": "http://prometheus:9090/graph",
    }
    async with aiohttp.ClientSession() as http, http.post(f"{url}/api/v2/alerts", json=[alert]) as response:
        assert response.status == 200, await response.text()


async def receiver_tickets(h: Harness) -> list[Any]:
    """The receiver's created tickets (a create the outage failed leaves a FAILED one, never sent)."""
    request = ticket_service_pb2.ListTicketsRequest(
        job_id=f"alertmanager/{RECEIVER}", state=common_pb2.TICKET_STATE_CREATED
    )
    reply = await h.tickets.ListTickets(request, metadata=[("authorization", f"Bearer {WRITER}")])
    return list(reply.tickets)


async def test_alerts_through_a_real_alertmanager_open_then_resolve_one_ticket(
    tmp_path: Path, sqlite_template: Path
) -> None:
    database = tmp_path / "itsm.db"
    shutil.copyfile(sqlite_template, database)
    async with running_gateway(f"sqlite+aiosqlite:///{database}", tokens=TOKENS) as h:
        before = await h.scrape()  # the registry is the process's: counts are compared to these

        def delta(scraped: str, **labels: str) -> float:
            return counted(scraped, **labels) - counted(before, **labels)

        # The platform is down at first: the receiver answers 503, which Alertmanager retries.
        await h.sandbox_put("servicenow", "/_sandbox/faults", {"error_rate": 1.0, "statuses": [503]})
        async with alertmanager(tmp_path, f"{h.web_url}/alertmanager/{RECEIVER}") as url:
            starts = datetime.now(UTC)
            await push(url, ends=starts + timedelta(hours=1), starts=starts)

            async def refused_once() -> bool:
                return delta(await h.scrape(), receiver=RECEIVER, status="firing", code="503") >= 1

            await until(refused_once, "a 503 while the platform is down")
            await h.sandbox_put("servicenow", "/_sandbox/faults", NO_FAULTS)

            async def opened() -> bool:
                return bool(await receiver_tickets(h))

            await until(opened, "the ticket created")
            (ticket,) = await receiver_tickets(h)
            assert ticket.created_by == "alerts" and ticket.dedup_key.startswith(f"alertmanager/{RECEIVER}/")
            assert await h.records("servicenow") == 1

            await push(url, ends=datetime.now(UTC) - timedelta(seconds=1), starts=starts)

            async def resolved() -> bool:
                (current,) = await receiver_tickets(h)
                return current.status == common_pb2.TICKET_STATUS_RESOLVED

            await until(resolved, "the ticket resolved")
        assert (await incident(h, ticket.external_id))["state"] == "6"
        assert await h.records("servicenow") == 1
        scraped = await h.scrape()
        assert delta(scraped, receiver=RECEIVER, status="resolved", code="200", outcome="resolved") == 1
        assert delta(scraped, code="401") == 0  # the token from http_config.authorization was accepted


# ------------------------------------------------------------------------------ the README's snippets


def readme_block(language: str) -> str:
    """The first `language` code block of the README's Alertmanager section."""
    section = (ROOT / "README.md").read_text().split("## Alertmanager\n", 1)[1].split("\n## ", 1)[0]
    return section.split(f"```{language}\n", 1)[1].split("```", 1)[0]


async def test_the_readme_alertmanager_config_is_accepted_by_amtool(tmp_path: Path) -> None:
    amtool = Path(alertmanager_binary()).with_name("amtool")
    config = tmp_path / "alertmanager.yml"
    config.write_text(readme_block("yaml"))
    check = await asyncio.create_subprocess_exec(
        str(amtool), "check-config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(check.communicate(), 30)
    assert check.returncode == 0, out.decode()


def test_the_readme_receiver_config_is_accepted_by_the_gateway() -> None:
    raw = json.loads(SHIPPED_CONFIG.read_text())
    raw.update(json.loads("{" + readme_block("json") + "}"))
    receiver = parse_config(raw, ENV).alertmanager.receivers["ops_servicenow"]
    assert receiver.dedup_labels == ("alertname", "cluster") and receiver.on_resolved == "resolve"
