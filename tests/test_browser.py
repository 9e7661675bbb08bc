"""The page in a real browser (Debian's chromium, headless, through Playwright) against the real
gateway and sandbox: sign in, pick a template, see a violation next to its input, fix it, create, see
the outcome and the ticket in the list; a double click and a retry never make a second ticket; the
free-form create is checked as you type. Nothing the page does is refused by its CSP.

Without chromium or Playwright this module skips with the reason, except in CI
(ITSM_REQUIRE_POSTGRES=1), where a skip would hide an untested page: there it fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from itsm.v1 import common_pb2, ticket_pb2, ticket_service_pb2
from tests import browser
from tests.gateway import SHIPPED_CONFIG, Harness, running_gateway
from tests.test_server import TOKENS, WRITER

if TYPE_CHECKING:
    from playwright.async_api import Page

if (reason := browser.missing()) is not None:
    if os.environ.get("ITSM_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"the browser test cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)

from playwright.async_api import expect

SHIPPED_TEMPLATES: dict[str, Any] = json.loads(SHIPPED_CONFIG.read_text())["templates"]

# Waits are for the page to settle (a debounced preview, a create through the sandbox); the slowest
# is a create that fails through the whole retry budget (timeout.total_seconds: 4 s in tests).
expect.set_options(timeout=20_000)
AUTH = [("authorization", f"Bearer {WRITER}")]


class Session:
    def __init__(self, harness: Harness, page: Page, console: browser.Console) -> None:
        self.harness, self.page, self.console = harness, page, console

    async def sign_in(self, token: str = WRITER) -> None:
        await self.page.goto(self.harness.web_url + "/")
        await self.page.get_by_label("Bearer token").fill(token)
        await self.page.get_by_role("button", name="Sign in").click()

    async def tickets(self, **filters: Any) -> list[ticket_pb2.Ticket]:
        request = ticket_service_pb2.ListTicketsRequest(**filters)
        return list((await self.harness.tickets.ListTickets(request, metadata=AUTH)).tickets)


@pytest.fixture
async def session(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[Session]:
    """The gateway with caller tokens on SQLite (make run's database), and a fresh browser page."""
    path = tmp_path / "itsm.db"
    shutil.copyfile(sqlite_template, path)
    async with running_gateway(f"sqlite+aiosqlite:///{path}", tokens=TOKENS) as harness, browser.chromium() as b:
        console = browser.Console()
        page = await browser.new_page(b, console)
        yield Session(harness, page, console)
        assert console.refusals() == [], console.messages


async def test_sign_in_pick_a_template_fix_a_violation_create_and_find_the_ticket(session: Session) -> None:
    page = session.page
    await session.sign_in("not-the-token-0123456789")
    await expect(page.get_by_role("alert")).to_contain_text("refused this token")

    # By keyboard: the token, Enter; a template, Space.
    await page.get_by_label("Bearer token").fill(WRITER)
    await page.get_by_label("Bearer token").press("Enter")
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    # The token lives in this tab's sessionStorage, and nowhere in the URL.
    assert await page.evaluate("sessionStorage.getItem('itsm-gateway.token')") == WRITER
    assert WRITER not in page.url

    # Templates grouped by platform, with their descriptions.
    jira = page.get_by_role("group", name="Jira")
    await expect(jira.get_by_role("radio", name="jira_job_failure_bug")).to_be_visible()
    servicenow = [name for name, t in SHIPPED_TEMPLATES.items() if t["platform"] == "servicenow"]
    await expect(page.get_by_role("group", name="ServiceNow").get_by_role("radio")).to_have_count(len(servicenow))
    await jira.get_by_role("radio", name="jira_job_failure_bug").focus()
    await page.keyboard.press("Space")
    await expect(page.get_by_text("A bug filed from a failed pipeline job").first).to_be_visible()

    # A pipeline name with a space breaks the labels rule: shown next to the pipeline input.
    pipeline = page.get_by_label("pipeline", exact=True)
    await pipeline.fill("etl nightly")
    await page.get_by_label("error.message", exact=True).fill("exit 1")
    await page.get_by_label("Job id").fill("nightly-42")
    problems = page.locator("#var-pipeline-problems")
    await expect(problems).to_contain_text("labels[1]")
    await expect(pipeline).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#var-error\\.message-problems")).to_have_count(0)

    await pipeline.fill("etl")
    await expect(problems).to_have_count(0)
    await expect(page.get_by_text("Ready to create.")).to_be_visible()
    await expect(page.locator(".rendered")).to_contain_text("Job nightly-42 of etl failed")
    assert await session.harness.records("jira") == 0  # a preview sends nothing

    await page.get_by_role("button", name="Create ticket").click()
    done = page.locator(".outcome .done")
    await expect(done).to_have_attribute("data-outcome", "CREATE_OUTCOME_CREATED")
    (ticket,) = await session.tickets()
    assert ticket.external_key.startswith("OPS-") and ticket.job_id == "nightly-42"
    link = done.get_by_role("link", name=ticket.external_key)
    await expect(link).to_have_attribute("href", ticket.url)
    await expect(link).to_have_attribute("rel", "noopener noreferrer")
    assert await session.harness.records("jira") == 1

    # The list shows it, with its platform, status and SLA; the filters narrow it down.
    row = page.locator(f"tr[data-ticket-id='{ticket.id}']")
    for text in (ticket.external_key, "Job nightly-42 of etl failed", "Jira", "Open", "On track"):
        await expect(row).to_contain_text(text)
    platform, status, sla = page.locator("#filter-platform"), page.locator("#filter-status"), page.locator("#filter-sla")
    await platform.select_option(label="ServiceNow")
    await expect(page.get_by_text("No tickets match.")).to_be_visible()
    await platform.select_option(label="Jira")
    await expect(row).to_be_visible()
    await status.select_option(label="Resolved")
    await expect(row).to_have_count(0)
    await status.select_option(label="Any")
    await sla.select_option(label="On track")
    await expect(row).to_be_visible()

    # Signing out forgets the token.
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_label("Bearer token")).to_be_visible()
    assert await page.evaluate("sessionStorage.getItem('itsm-gateway.token')") is None


async def test_a_double_click_or_a_retry_never_makes_a_second_ticket(session: Session) -> None:
    page, harness = session.page, session.harness
    creates: list[str] = []
    page.on("request", lambda r: creates.append(r.url) if r.url.endswith("/CreateTicketFromTemplate") else None)
    await session.sign_in()
    await page.get_by_role("radio", name="jira_ops_task").check()
    await page.get_by_label("title", exact=True).fill("Rotate TLS certs")
    await page.get_by_label("details", exact=True).fill("Before Friday")
    await expect(page.get_by_text("Ready to create.")).to_be_visible()

    create = page.get_by_role("button", name="Create ticket")
    await create.dblclick()
    done = page.locator(".outcome .done")
    await expect(done).to_have_attribute("data-outcome", "CREATE_OUTCOME_CREATED")
    assert len(creates) == 1
    assert await harness.records("jira") == 1
    assert len(await session.tickets()) == 1
    # The form made its ticket: Create waits for a change.
    await expect(create).to_be_disabled()

    # A changed form is a new request; a failure through the whole budget keeps its request_id...
    await page.get_by_label("title", exact=True).fill("Rotate TLS certs on db-01")
    await expect(create).to_be_enabled()
    request_id = await page.get_by_test_id("request-id").text_content()
    assert request_id
    await harness.sandbox_put("jira", "/_sandbox/faults", {"error_rate": 1.0, "statuses": [503]})
    await create.click()
    failure = page.locator(".outcome .failure")
    await expect(failure).to_contain_text("Not created")
    await expect(failure).to_contain_text("same request")
    await expect(page.get_by_test_id("request-id")).to_have_text(request_id)
    assert await harness.records("jira") == 1

    # ...so the retry, once the platform is back, opens exactly one ticket under it.
    await harness.sandbox_put("jira", "/_sandbox/faults", {"error_rate": 0.0})
    await create.click()
    await expect(done).to_have_attribute("data-outcome", re.compile("CREATE_OUTCOME_(CREATED|REPLAYED)"))
    (retried,) = await session.tickets(request_id=request_id)
    assert retried.fields["summary"] == "Rotate TLS certs on db-01"
    assert await harness.records("jira") == 2
    assert len(await session.tickets()) == 2


async def test_free_form_is_checked_as_you_type_then_created(session: Session) -> None:
    page, harness = session.page, session.harness
    await session.sign_in()
    await page.get_by_role("button", name="Free-form").click()
    await page.locator("#freeform-platform").select_option(label="Jira")

    summary = page.get_by_label("summary", exact=True)
    await summary.fill("x" * 300)
    row = page.locator(".row-input").filter(has=summary)
    await expect(row.locator(".problems")).to_contain_text("254")
    await expect(summary).to_have_attribute("aria-invalid", "true")
    await summary.fill("Disk full on db-01")
    await expect(row.locator(".problems")).to_have_count(0)

    # A field the page did not offer: named by the person, checked all the same.
    await page.get_by_role("button", name="Add a field").click()
    await page.get_by_label("Field 3", exact=True).fill("priority")
    priority = page.get_by_label("priority", exact=True)
    await priority.fill("Urgent")
    await expect(page.locator(".row-input").filter(has=priority).locator(".problems")).to_contain_text("Highest")
    await priority.fill("High")
    await expect(page.get_by_text("Valid for this platform.")).to_be_visible()
    assert await harness.records("jira") == 0  # checking sends nothing

    await page.get_by_role("button", name="Create ticket").click()
    await expect(page.locator(".outcome .done")).to_have_attribute("data-outcome", "CREATE_OUTCOME_CREATED")
    (ticket,) = await session.tickets()
    assert ticket.fields["summary"] == "Disk full on db-01" and ticket.fields["priority"] == "High"
    assert await harness.records("jira") == 1
    await expect(page.locator(f"tr[data-ticket-id='{ticket.id}']")).to_contain_text("Disk full on db-01")


async def test_the_list_pages_with_page_tokens(session: Session) -> None:
    page, harness = session.page, session.harness
    for n in range(21):  # one more than a page
        await harness.tickets.CreateTicket(
            ticket_service_pb2.CreateTicketRequest(
                platform=common_pb2.PLATFORM_SERVICENOW, request_id=f"page-{n}", fields={"summary": f"Ticket {n}"}
            ),
            metadata=AUTH,
        )
    await session.sign_in()
    rows = page.locator("tbody tr")
    await expect(rows).to_have_count(20)
    await expect(rows.first).to_contain_text("Ticket 20")  # newest first
    previous, following = page.get_by_role("button", name="Previous page"), page.get_by_role("button", name="Next page")
    await expect(previous).to_be_disabled()
    await following.click()
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("Ticket 0")
    await expect(following).to_be_disabled()
    await previous.click()
    await expect(rows).to_have_count(20)
    # A filter starts again from the first page.
    await following.click()
    await expect(rows).to_have_count(1)
    await page.locator("#filter-platform").select_option(label="ServiceNow")
    await expect(rows).to_have_count(20)
