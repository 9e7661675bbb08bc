"""Comments, exactly once: each carries a marker (a Jira comment property people do not see; on
ServiceNow a short tag ending the journal entry), so after an ambiguous failure it is looked up
before anything is sent again."""

from __future__ import annotations

import hashlib

from server.domain.records import COMMENT
from server.service.engine import Applied, Work
from server.service.follow_up import FollowUpKind

PUBLIC, INTERNAL = "PUBLIC", "INTERNAL"


def comment_marker(request_id: str, step: str = "") -> str:
    """Short, unique per operation (and step), derived from its request_id: the same on every
    attempt of it, by any holder."""
    digest = hashlib.sha256(f"{request_id}\x00{step}".encode()).hexdigest()[:16]
    return f"itsmgw-c-{digest}"


def comment_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def ensure_comment(work: Work, text: str, marker: str, *, internal: bool) -> tuple[str, int]:
    """The comment's id, adding it unless an earlier attempt did: (id, HTTP attempts)."""
    client, external_id = work.client, work.ticket.external_id
    if work.retrying:
        found = await client.find_comment(external_id, marker, deadline=work.deadline)
        if found is not None:
            return found, 1
    added = await client.add_comment(external_id, text, marker, internal=internal, deadline=work.deadline)
    return added.comment_id, added.retry.attempts


class CommentKind(FollowUpKind):
    kind = COMMENT

    async def send(self, work: Work) -> Applied:
        payload = work.operation.payload
        comment_id, attempts = await ensure_comment(
            work, payload["body"], work.operation.marker, internal=payload["visibility"] != PUBLIC
        )
        return Applied({}, attempts, {"comment_id": comment_id})

    async def look_up(self, work: Work) -> Applied | None:
        found = await work.client.find_comment(
            work.ticket.external_id, work.operation.marker, deadline=work.deadline
        )
        return None if found is None else Applied({}, 1, {"comment_id": found})
