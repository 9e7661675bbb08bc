"""The sys_journal_field table: the incident journal's rows, read-only through the Table API.

The instance keeps every work note and comment as one row there (element_id = the record's
sys_id, element = the journal field, value = the text); clients find a note they wrote by
querying it. Writes are refused like any table whose ACLs grant the caller read access only.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sandbox.servicenow.errors import error_response
from sandbox.servicenow.render import RenderOptions
from sandbox.servicenow.store import JournalEntry

TABLE = "sys_journal_field"
COLUMNS = frozenset({"element", "element_id", "name", "sys_created_by", "sys_created_on", "sys_id", "value"})
# The ACL operation each refused method would have needed, as the instance names it in the error.
_OPERATIONS = {"POST": "Insert", "PUT": "Update", "PATCH": "Update", "DELETE": "Delete"}


def is_column(name: str) -> bool:
    return name in COLUMNS


def render_entry(entry: JournalEntry, options: RenderOptions) -> dict[str, Any]:
    columns = entry.columns()
    names = options.fields if options.fields is not None else sorted(columns)
    # No column is a reference or a choice, so the display value is the value itself.
    if options.display == "all":
        return {n: {"display_value": columns[n], "value": columns[n]} for n in names if n in columns}
    return {n: columns[n] for n in names if n in columns}


def write_refused(method: str) -> web.Response:
    operation = _OPERATIONS.get(method, "Update")
    return error_response(
        403, "Operation Failed", f"ACL Exception {operation} Failed due to security constraints"
    )
