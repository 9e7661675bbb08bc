"""Request parsing both sandboxes share: bounded JSON bodies, lenient flags, media types."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


class BodyTooLarge(Exception):
    pass


class BodyNotJson(Exception):
    pass


async def read_json_body(request: web.Request, max_bytes: int) -> Any:
    """The decoded JSON body; raises BodyTooLarge or BodyNotJson.

    Content-Length is checked first so an oversized upload is refused before it is buffered.
    """
    if request.content_length is not None and request.content_length > max_bytes:
        raise BodyTooLarge
    raw = bytearray()
    while chunk := await request.content.read(64 * 1024):
        raw += chunk
        if len(raw) > max_bytes:  # chunked uploads carry no Content-Length
            raise BodyTooLarge
    if not raw.strip():
        raise BodyNotJson("empty body")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BodyNotJson(str(exc)) from exc


def flag(value: str | None, default: bool = False) -> bool:
    """Both platforms read "true" in any case as true; clients send "True" and "true" alike."""
    if value is None:
        return default
    return value.strip().lower() == "true"


def int_param(value: str | None, default: int) -> int | None:
    """An integer query parameter, the default when absent, None when malformed."""
    if value is None or value.strip() == "":
        return default
    try:
        return int(value.strip())
    except ValueError:
        return None


def _media_ranges(header: str) -> list[tuple[str, float]]:
    ranges: list[tuple[str, float]] = []
    for part in header.split(","):
        pieces = [p.strip() for p in part.split(";")]
        if not pieces[0]:
            continue
        quality = 1.0
        for param in pieces[1:]:
            name, _, val = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(val)
                except ValueError:
                    quality = 0.0
        ranges.append((pieces[0].lower(), quality))
    return ranges


def accepts_json(accept: str) -> bool:
    """Whether an Accept header admits a JSON answer (wildcards and +json suffixes included)."""
    for media, quality in _media_ranges(accept):
        if quality <= 0:
            continue
        if media in ("*/*", "application/*", "application/json") or media.endswith("+json"):
            return True
    return False


def is_json_content_type(content_type: str) -> bool:
    """application/json with any parameters (charset=UTF-8 is common) or a +json subtype."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))
