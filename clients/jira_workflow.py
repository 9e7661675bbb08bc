"""Moving Jira issues through their workflow.

Transition ids differ per workflow, and names per workflow and language: a move lists what the issue
offers now (with each transition's screen fields) and picks by name, in the caller's order. A move
is one POST that is never re-sent here after an ambiguous failure: the caller reads where the issue
stands before trying again.
"""

from __future__ import annotations

from typing import Any

from clients.adf import text_to_adf
from clients.errors import ErrorKind, PlatformError
from clients.http import Call, HttpTransport, Request

PLATFORM = "jira"


class JiraWorkflow:
    def __init__(self, http: HttpTransport, api: str, version: int) -> None:
        self._http, self._api, self._version = http, api, version

    async def move(
        self,
        call: Call,
        operation: str,
        key: str,
        names: tuple[str, ...],
        via: tuple[str, ...],
        resolution: str,
        notes: str,
    ) -> None:
        """Through the first of `names` the issue offers (going through one of `via` first where
        the workflow needs a step, To Do -> In Progress -> Done), with the resolution when its
        screen has the field (some require it, others reject it), and notes as its comment."""
        offered = await self._offered(call, key)
        chosen = first_named(offered, names)
        if chosen is None and (step := first_named(offered, via)) is not None:
            await self._post(call, operation, key, {"transition": {"id": str(step["id"])}})
            offered = await self._offered(call, key)
            chosen = first_named(offered, names)
        if chosen is None:
            raise _no_transition(call, operation, key, names, offered)
        body: dict[str, Any] = {"transition": {"id": str(chosen["id"])}}
        screen = chosen.get("fields") if isinstance(chosen.get("fields"), dict) else {}
        if resolution and "resolution" in screen:
            body["fields"] = {"resolution": {"name": resolution}}
        if notes:
            text = text_to_adf(notes) if self._version == 3 else notes
            body["update"] = {"comment": [{"add": {"body": text}}]}
        await self._post(call, operation, key, body)

    async def to_status(self, call: Call, key: str, target: str, fields: dict[str, Any] | None) -> str:
        """Into the status named `target` (or through the transition of that name); returns the
        transition id taken."""
        transitions = await self._offered(call, key, expand=False)
        chosen = pick_transition(transitions, target)
        if chosen is None:
            names = sorted({_to_name(t) or str(t.get("name", "")) for t in transitions} - {""})
            raise PlatformError(
                platform=PLATFORM, operation="transition", kind=ErrorKind.PAYLOAD_REJECTED,
                attempts=call.attempts, message=f"no transition of {key} leads to {target!r}",
                field_errors={"transition": "available: " + (", ".join(names) or "none")},
            )
        body: dict[str, Any] = {"transition": {"id": str(chosen["id"])}}
        if fields:
            body["fields"] = fields
        await self._post(call, "transition", key, body)
        return str(chosen["id"])

    async def _offered(self, call: Call, key: str, *, expand: bool = True) -> list[dict[str, Any]]:
        path = f"{self._api}/issue/{key}/transitions"
        params = {"expand": "transitions.fields"} if expand else {}
        listed = await self._http.send(call, Request("transitions", "GET", path, params=params))
        return transitions_of(listed.data)

    async def _post(self, call: Call, operation: str, key: str, body: dict[str, Any]) -> None:
        path = f"{self._api}/issue/{key}/transitions"
        await self._http.send(call, Request(operation, "POST", path, json=body, idempotent=False))


def _no_transition(
    call: Call, operation: str, key: str, names: tuple[str, ...], offered: list[dict[str, Any]]
) -> PlatformError:
    available = sorted({str(t.get("name", "")) for t in offered} - {""})
    return PlatformError(
        platform=PLATFORM, operation=operation, kind=ErrorKind.NOT_APPLIED, attempts=call.attempts,
        message=f"the workflow offers {key} none of the configured {operation} transitions "
        f"({', '.join(names)})",
        field_errors={"transition": "available: " + (", ".join(available) or "none")},
    )


def transitions_of(data: Any) -> list[dict[str, Any]]:
    items = data.get("transitions") if isinstance(data, dict) else None
    return [t for t in items or [] if isinstance(t, dict) and "id" in t]


def first_named(offered: list[dict[str, Any]], names: tuple[str, ...]) -> dict[str, Any] | None:
    """The offered transition with the first of `names` (configuration order wins)."""
    return next((t for name in names for t in offered if _named(t, name)), None)


def _named(transition: dict[str, Any], name: str) -> bool:
    """A transition matches a configured name by its own name or by the status it leads to."""
    wanted = name.casefold()
    return str(transition.get("name", "")).casefold() == wanted or _to_name(transition).casefold() == wanted


def _to_name(transition: dict[str, Any]) -> str:
    to = transition.get("to")
    return str(to.get("name", "")) if isinstance(to, dict) else ""


def pick_transition(transitions: list[dict[str, Any]], target: str) -> dict[str, Any] | None:
    wanted = target.casefold()
    # The destination status is what callers mean; a transition's own name is the fallback
    # (workflows name them "Start Progress", "Resolve Issue", ...).
    for t in transitions:
        if _to_name(t).casefold() == wanted:
            return t
    for t in transitions:
        if str(t.get("name", "")).casefold() == wanted:
            return t
    return None
