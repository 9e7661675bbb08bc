"""The README's picture of the page (docs/images/web-page.png), taken from the real page: the gateway
and its sandbox on free ports with a scratch SQLite database, a few tickets opened through the API,
then Debian's chromium (headless, through Playwright) signs in, picks a template and types a value
that breaks a field rule, so the picture shows the preview with a violation next to its input.

    .venv/bin/python scripts/screenshot_web.py [--out docs/images/web-page.png]

Needs what the browser test needs: the `browser` extra (make test installs it) and chromium.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "gen")]

from google.protobuf import struct_pb2  # noqa: E402

from itsm.v1 import common_pb2, ticket_service_pb2  # noqa: E402
from server.storage.migrate import migrate  # noqa: E402
from tests import browser  # noqa: E402
from tests.gateway import Harness, running_gateway  # noqa: E402

OUT = ROOT / "docs" / "images" / "web-page.png"


async def open_some_tickets(harness: Harness) -> None:
    variables = struct_pb2.Struct()
    variables.update({"job_name": "invoice-export", "error": {"message": "exit 3: disk quota exceeded"}})
    await harness.tickets.CreateTicketFromTemplate(
        ticket_service_pb2.CreateTicketFromTemplateRequest(
            template_name="servicenow_batch_job_failed", request_id="shot-1", job_id="nightly-41",
            variables=variables,
        )
    )
    await harness.tickets.CreateTicket(
        ticket_service_pb2.CreateTicketRequest(
            platform=common_pb2.PLATFORM_JIRA, request_id="shot-2",
            fields={"summary": "Rotate TLS certs on the edge proxies", "labels": "ops,certs",
                    "priority": "High"},
        )
    )
    await harness.tickets.CreateTicket(
        ticket_service_pb2.CreateTicketRequest(
            platform=common_pb2.PLATFORM_SERVICENOW, request_id="shot-3",
            fields={"summary": "Disk full on db-01", "urgency": "1", "impact": "1"},
        )
    )


async def shoot(out: Path) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite+aiosqlite:///{scratch}/itsm.db"
        await migrate(url)
        async with running_gateway(url) as harness, browser.chromium() as chromium:
            await open_some_tickets(harness)
            console = browser.Console()
            page = await browser.new_page(chromium, console, width=1280, height=900)
            await page.goto(harness.web_url + "/")
            await page.get_by_role("button", name="Sign in").click()  # no tokens: an empty token
            await page.get_by_role("radio", name="jira_job_failure_bug").check()
            await page.get_by_label("pipeline", exact=True).fill("etl nightly")
            await page.get_by_label("error.message", exact=True).fill("exit 1: upstream table missing")
            await page.get_by_label("Job id").fill("nightly-42")
            await page.locator("#var-pipeline-problems", has_text="labels[1]").wait_for()
            await page.locator("tbody tr").nth(2).wait_for()
            out.parent.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(out), full_page=True)
            if console.refusals():
                raise SystemExit(f"the page was refused by its CSP: {console.refusals()}")
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if (reason := browser.missing()) is not None:
        print(reason, file=sys.stderr)
        return 2
    asyncio.run(shoot(args.out.resolve()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
