"""Minimal read-only HTML pages behind the ticket URLs the gateway hands out.

ServiceNow tickets link to /nav_to.do?uri=incident.do?sys_id=..., Jira issues to /browse/KEY. In
dev mode those links should open something readable in a browser rather than a 404.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

from aiohttp import web

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:2em}}td{{padding:2px 12px;vertical-align:top}}
th{{text-align:left}}pre{{white-space:pre-wrap;margin:0}}</style></head>
<body><h1>{title}</h1><p>{subtitle}</p><table>{rows}</table>{extra}</body></html>"""


def page(
    title: str, subtitle: str, rows: Iterable[tuple[str, str]], notes: Iterable[str] = ()
) -> web.Response:
    """An HTML page: a field table, then free-text notes (comments, journal) in order."""
    cells = "".join(
        f"<tr><th>{html.escape(name)}</th><td><pre>{html.escape(value)}</pre></td></tr>"
        for name, value in rows
    )
    extra = "".join(f"<hr><pre>{html.escape(note)}</pre>" for note in notes)
    body = _PAGE.format(title=html.escape(title), subtitle=html.escape(subtitle), rows=cells, extra=extra)
    return web.Response(text=body, content_type="text/html")


def login_required(realm: str) -> web.Response:
    # WWW-Authenticate makes a browser ask for the sandbox credentials.
    return web.Response(
        status=401,
        text="Log in with the sandbox credentials.",
        headers={"WWW-Authenticate": f'Basic realm="{realm}"'},
    )


def not_found(what: str) -> web.Response:
    return web.Response(status=404, text=f"{what} not found in the sandbox.")
