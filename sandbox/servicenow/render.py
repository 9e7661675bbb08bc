"""Turns an incident into the Table API's JSON, honouring the display and link parameters."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from sandbox.servicenow import schema
from sandbox.servicenow.store import Incident, JournalEntry

DisplayMode = Literal["false", "true", "all"]


@dataclass(frozen=True)
class RenderOptions:
    base_url: str  # scheme://host[:port] of the instance, for reference links
    display: DisplayMode = "false"
    exclude_reference_link: bool = False
    fields: tuple[str, ...] | None = None  # sysparm_fields; None = all


def display_mode(raw: str | None) -> DisplayMode:
    """sysparm_display_value: "true"/"all" in any case; anything else means false, as on the instance."""
    value = (raw or "").strip().lower()
    if value == "true":
        return "true"
    if value == "all":
        return "all"
    return "false"


def field_list(raw: str | None) -> tuple[str, ...] | None:
    if raw is None or not raw.strip():
        return None
    return tuple(name.strip() for name in raw.split(",") if name.strip())


def _journal_text(entries: Iterable[JournalEntry], elements: frozenset[str]) -> str:
    # Newest first, in the instance's "<when> - <who> (<label>)" block format.
    blocks = [
        f"{e.created_on} - {e.created_by} ({schema.JOURNAL_LABELS[e.element]})\n{e.value}\n\n"
        for e in reversed(list(entries))
        if e.element in elements
    ]
    return "".join(blocks)


def _display_value(incident: Incident, name: str, value: str) -> str:
    if name in schema.JOURNAL_FIELDS:
        return _journal_text(incident.journal, frozenset({name}))
    if name == "comments_and_work_notes":
        return _journal_text(incident.journal, schema.JOURNAL_FIELDS)
    return schema.choice_label(name, value)


def _render_field(incident: Incident, name: str, options: RenderOptions) -> Any:
    value = incident.values.get(name, "")
    table = schema.REFERENCE_TABLES.get(name)
    link = f"{options.base_url}/api/now/table/{table}/{value}" if table and value else None
    with_link = link is not None and not options.exclude_reference_link
    if options.display == "false":
        return {"link": link, "value": value} if with_link else value
    shown = _display_value(incident, name, value)
    if options.display == "true":
        return {"display_value": shown, "link": link} if with_link else shown
    both: dict[str, Any] = {"display_value": shown, "value": value}
    if with_link:
        both["link"] = link
    return both


def render_incident(incident: Incident, options: RenderOptions) -> dict[str, Any]:
    names: Iterable[str] = options.fields if options.fields is not None else incident.values
    # Requested names the table lacks are left out, as the instance does.
    return {name: _render_field(incident, name, options) for name in names if name in incident.values}
