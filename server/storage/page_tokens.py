"""Page tokens of ticket lists: an opaque, URL-safe cursor bound to the filters it was issued for.

Any token a caller sends is decoded defensively: whatever is wrong with it (bad base64, bad JSON, an
impossible timestamp, another list's filters) is InvalidPageToken, never another exception.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from server.domain.records import TicketRecord
from server.service.ports import InvalidPageToken, TicketFilter
from server.storage.schema import utc

MAX_PAGE_TOKEN_CHARS = 512
# No ticket was created outside these years; a cursor outside them is a forged token.
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class Cursor:
    """Position in the list order (create_time DESC, id DESC): the last record of a page."""

    create_time: datetime
    id: str

    @classmethod
    def after(cls, record: TicketRecord) -> Cursor:
        return cls(create_time=record.create_time, id=record.id)



def encode_page_token(cursor: Cursor, filters: TicketFilter) -> str:
    body = {"t": utc(cursor.create_time).isoformat(), "i": cursor.id, "f": filters.fingerprint()}
    raw = json.dumps(body, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str, filters: TicketFilter) -> Cursor | None:
    """The cursor in token, None for "" (first page). Raises InvalidPageToken, and nothing else."""
    if not token:
        return None
    if len(token) > MAX_PAGE_TOKEN_CHARS:
        raise InvalidPageToken("page_token is malformed")
    try:
        cursor, fingerprint = _parse(token)
    except Exception:  # a token is caller input: whatever breaks in it (OverflowError too) is theirs
        raise InvalidPageToken("page_token is malformed") from None
    if fingerprint != filters.fingerprint():
        raise InvalidPageToken("page_token was issued for a list with other filters")
    return cursor


def _parse(token: str) -> tuple[Cursor, str]:
    raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
    body = json.loads(raw)
    if not isinstance(body, dict) or set(body) != {"t", "i", "f"}:
        raise ValueError("not a page token")
    when, id_, fingerprint = body["t"], body["i"], body["f"]
    if not isinstance(when, str) or not isinstance(id_, str) or not _UUID.fullmatch(id_):
        raise ValueError("not a page token")
    if not isinstance(fingerprint, str):
        raise ValueError("not a page token")
    created = utc(datetime.fromisoformat(when))
    if not _EARLIEST <= created <= _LATEST:
        raise ValueError("timestamp out of range")
    return Cursor(create_time=created, id=id_), fingerprint
