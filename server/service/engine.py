"""The exactly-once engine: every write to a platform, whatever its kind, happens once per request_id.

The rules, in one place:
- reserve: one insert of the operation under its request_id (with its new ticket, for a create); the
  holder of the lease sends, everyone else follows it;
- a repeat replays a success, replays a permanent failure (payload or credentials rejected) as the
  same error, and takes over (compare-and-set) a transient failure or an abandoned operation;
- an ambiguous failure (a timeout, a cut connection, a 5xx to a write) is never followed by a blind
  re-send: the operation is marked uncertain, and the marker is looked up once the platform can no
  longer be applying the earlier attempt (the platform's confirmation delay, counted on the
  database's clock); only a look-up that finds nothing lets it send again;
- a write answers OK only when it happened on the platform: when the outcome cannot be known within
  the caller's deadline (or the in-flight wait), OutcomePending, and the operation stays PENDING for
  a repeat or the reconciler to finish;
- the outcome and the ticket's change are written together, fenced by the holder's lease token.

An operation kind plugs in with its send / look-up pair (OperationKind). No transaction or pooled
connection is held while waiting on a platform; final writes are shielded from cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from clients.errors import ErrorKind, PlatformError
from clients.platform import PlatformClient
from server.domain import errors
from server.domain.records import FAILED, PENDING, SUCCEEDED, OperationRecord, TicketRecord
from server.service.ports import KeyClaim, NewTicket, OperationLedger

log = logging.getLogger("itsm.engine")

# An answer must reach the caller before its deadline does: the engine stops this much earlier
# (room for the final write, the answer's trip, and an event loop running late under load).
ANSWER_MARGIN_SECONDS = 0.25
# A look-up squeezed into less time than this cannot get an answer from a platform.
MIN_LOOK_UP_SECONDS = 0.2
# A repeat that finds its operation in flight polls at most this often (another process holds it).
_POLL_SECONDS = (0.02, 0.5)


@dataclass(frozen=True)
class ConfirmationDelays:
    """How long after an ambiguous attempt ended a platform can still apply it: a look-up made later
    sees the truth. `search`: for look-ups through a search index, which lags the record."""

    direct: float
    search: float


@dataclass(frozen=True)
class EngineSettings:
    lease_seconds: float  # a holder's lease: longer than its longest call
    call_seconds: float  # the longest one call may take (timeout.total_seconds), deadline or not
    in_flight_wait_seconds: float  # how long a repeat waits for the holder, within its deadline
    delays: Mapping[str, ConfirmationDelays]  # by platform


@dataclass(frozen=True)
class Applied:
    """The platform did it (a send answered, or a look-up found it)."""

    ticket_changes: Mapping[str, Any]  # the ticket's columns as they now stand
    attempts: int  # HTTP attempts it took
    result: Mapping[str, Any] = field(default_factory=dict)  # kept on the operation, replayed


@dataclass
class Work:
    """One holder's work on one operation."""

    operation: OperationRecord
    ticket: TicketRecord
    client: PlatformClient
    deadline: float  # time.monotonic(): every platform call is over by then
    attempts: int = 0  # HTTP attempts this holder made that did not apply it
    observed: float = field(default_factory=time.monotonic)  # when operation.observed_at was read
    sent: bool = False  # an attempt went out since the operation was last marked uncertain
    prior_attempts: int = field(init=False)  # made by earlier holders

    def __post_init__(self) -> None:
        self.prior_attempts = self.operation.attempts

    @property
    def total_attempts(self) -> int:
        return self.prior_attempts + self.attempts

    @property
    def retrying(self) -> bool:
        """Something may have gone out before (this holder's or an earlier one's attempt): a kind
        with several steps checks each before writing it again."""
        return self.operation.uncertain_since is not None or self.total_attempts > 0

    def refresh(self, operation: OperationRecord) -> None:
        self.operation, self.observed = operation, time.monotonic()


class OperationKind(Protocol):
    """What an operation kind brings to the engine."""

    kind: str
    searches: bool  # its look-up reads a search index: the longer confirmation delay applies

    async def send(self, work: Work) -> Applied:
        """Apply it once. Raises PlatformError (ambiguous=True when it may have been applied)."""
        ...

    async def look_up(self, work: Work) -> Applied | None:
        """Find it applied (by its marker, or by reading the record back), or None."""
        ...

    def failed(self, work: Work, error: str) -> Mapping[str, Any]:
        """The ticket's change when it failed for good."""
        ...

    def retried(self, operation: OperationRecord) -> Mapping[str, Any]:
        """The ticket's change when a repeat takes over a failed or abandoned operation."""
        ...

    def decides_afresh(self, operation: OperationRecord) -> bool:
        """Whether a repeat of it, once it FAILED for a reason a repeat may retry, must decide again
        rather than retry it as it stands (a dedup create: its key may have passed to another ticket)."""
        ...

    def to_error(self, work: Work, error: PlatformError) -> errors.GatewayError:
        """What the caller hears about a failure that was not applied."""
        ...


@dataclass(frozen=True)
class Request:
    operation: OperationRecord  # as the caller asks it (its request_id, payload hash, payload)
    kind: OperationKind
    new_ticket: NewTicket | None  # a create's ticket, reserved together with it
    deadline: float | None  # the caller's, time.monotonic(); None: no deadline
    claim: KeyClaim | None = None  # a dedup decision made good with the reservation


@dataclass(frozen=True)
class Done:
    operation: OperationRecord
    ticket: TicketRecord
    replayed: bool  # answered from an earlier call: nothing sent by this one
    attempts: int = 0  # HTTP attempts this call made


class _Undecided(Exception):
    """The outcome is unknown and there is no time left to find out."""

    def __init__(self, why: str, retry_after: float) -> None:
        super().__init__(why)
        self.retry_after = retry_after


class DecideAfresh(Exception):
    """A followed operation FAILED and its kind decides afresh: the caller forgets it and decides
    again (the engine must not take it over as it stands)."""


class _FencedOut(Exception):
    """Another holder took the operation over: this one must not record anything."""


class Engine:
    def __init__(
        self,
        ledger: OperationLedger,
        clients: Mapping[str, PlatformClient],
        settings: EngineSettings,
    ) -> None:
        self._ledger = ledger
        self._clients = clients
        self._settings = settings
        self._in_flight: dict[str, asyncio.Future[None]] = {}
        self._background: set[asyncio.Task[Any]] = set()

    def client(self, platform: str) -> PlatformClient:
        client = self._clients.get(platform)
        if client is None:
            raise errors.FailedPrecondition(f"platform {platform} is not enabled in this gateway")
        return client

    def holds(self, request_id: str) -> bool:
        return request_id in self._in_flight

    async def execute(self, request: Request) -> Done:
        token = _token()
        wanted = replace(request.operation, lease_token=token)
        operation, reserved = await self._ledger.reserve(
            wanted, request.new_ticket, lease_seconds=self._settings.lease_seconds, claim=request.claim
        )
        if reserved:
            ticket = request.new_ticket.record if request.new_ticket else None
            return await self._hold(operation, request, ticket)
        if request.claim is not None:
            # The dedup decision was rolled back with the reservation: the kind follows the stored one.
            request = replace(request, claim=None)
        _same_request(operation, request.operation)
        return await self._follow(operation, request)

    async def settle(self, operation: OperationRecord, kind: OperationKind) -> Done | None:
        """The reconciler's entry: take over an abandoned operation and finish it (look, then send).
        None when someone else holds it."""
        taken = await self._ledger.take_over(
            operation.request_id,
            token=_token(),
            lease_seconds=self._settings.lease_seconds,
            ticket_changes=kind.retried(operation),
            # Abandoned ones only: the one it listed may have FAILED since (a repeat took it over
            # and failed), and a failure is retried only by a repeat, which may decide afresh.
            retry_failed=False,
        )
        if taken is None:
            return None
        request = Request(taken, kind, None, None)
        return await self._hold(taken, request, None)

    # -- following another holder ---------------------------------------------------------------

    async def _follow(self, operation: OperationRecord, request: Request) -> Done:
        waited_until = self._wait_end(request.deadline)
        poll = _POLL_SECONDS[0]
        while True:
            if operation.state == SUCCEEDED:
                return Done(operation, await self._ticket(operation), replayed=True)
            if operation.permanent:
                work = await self._work_for(operation, request)
                raise request.kind.to_error(work, _stored_error(operation, work.ticket.platform))
            if operation.state == FAILED and request.kind.decides_afresh(operation):
                raise DecideAfresh(operation.request_id)
            if operation.state == FAILED or operation.lease_expired:
                taken = await self._ledger.take_over(
                    operation.request_id,
                    token=_token(),
                    lease_seconds=self._settings.lease_seconds,
                    ticket_changes=request.kind.retried(operation),
                )
                if taken is not None:
                    return await self._hold(taken, request, None)
            else:
                await self._wait(operation, waited_until, poll)
                poll = min(poll * 2, _POLL_SECONDS[1])
            latest = await self._ledger.get(operation.request_id)
            if latest is None:  # rows are never deleted; a vanished one is a database problem
                raise errors.Unavailable(f"operation {operation.request_id!r} vanished from the ledger")
            operation = latest

    async def _wait(self, operation: OperationRecord, until: float, poll: float) -> None:
        """One wait for the holder: until it settles (same process: the moment it does), or a poll
        interval passes (another process). Out of time: OutcomePending."""
        remaining = until - time.monotonic()
        if remaining <= 0:
            raise errors.OutcomePending(
                f"operation {operation.request_id!r} is still in flight on ticket {operation.ticket_id}; "
                "repeat the request_id later for its outcome",
                ticket_id=operation.ticket_id,
                request_id=operation.request_id,
                retry_after_seconds=1.0,
            )
        future = self._in_flight.get(operation.request_id)
        if future is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(future), remaining)
            return
        await asyncio.sleep(min(poll, remaining))

    # -- holding the lease ----------------------------------------------------------------------

    async def _hold(
        self, operation: OperationRecord, request: Request, ticket: TicketRecord | None
    ) -> Done:
        work = await self._work_for(operation, request, ticket)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._in_flight[operation.request_id] = future
        try:
            return await self._run(work, request)
        finally:
            self._in_flight.pop(operation.request_id, None)
            future.set_result(None)

    async def _work_for(
        self, operation: OperationRecord, request: Request, ticket: TicketRecord | None = None
    ) -> Work:
        ticket = ticket or await self._ticket(operation)
        return Work(operation, ticket, self.client(ticket.platform), self._call_end(request.deadline))

    async def _run(self, work: Work, request: Request) -> Done:
        kind = request.kind
        try:
            applied = await self._attempts(work, kind)
        except PlatformError as exc:  # definitely not applied
            await self._record_failure(work, kind, exc.kind.value, str(exc))
            raise kind.to_error(work, exc) from None
        except errors.GatewayError as exc:  # the gateway refused to send (e.g. a stale field mapping)
            await self._record_failure(work, kind, "precondition", str(exc))
            raise
        except _Undecided as undecided:
            await self._shielded(self._release_uncertain(work, str(undecided)))
            raise self._pending(work, str(undecided), undecided.retry_after) from None
        except _FencedOut:
            return await self._follow(work.operation, request)
        except asyncio.CancelledError:
            # The caller went away mid-call: what was sent may still land. The operation stays
            # PENDING and uncertain; a repeat or the reconciler looks before sending again.
            self._spawn(self._release_uncertain(work, "the call was cancelled before the outcome was known"))
            raise
        attempts = work.total_attempts + applied.attempts
        ticket = await self._shielded(
            self._ledger.succeed(
                work.operation.request_id,
                token=work.operation.lease_token,
                attempts=attempts,
                result=applied.result,
                ticket_changes={**applied.ticket_changes},
            )
        )
        if ticket is None:  # fenced out after it applied: the new holder finds it by its marker
            return await self._follow(work.operation, request)
        done = replace(work.operation, state=SUCCEEDED, attempts=attempts, result=dict(applied.result))
        return Done(done, ticket, replayed=False, attempts=work.attempts + applied.attempts)

    async def _attempts(self, work: Work, kind: OperationKind) -> Applied:
        look_first = work.operation.uncertain_since is not None
        while True:
            if look_first:
                found = await self._look_up(work, kind)
                if found is not None:
                    log.info(
                        "operation %s: found applied by an earlier attempt, not sent again",
                        work.operation.request_id,
                        extra={"request_id": work.operation.request_id, "ticket_id": work.ticket.id},
                    )
                    return found
            try:
                work.sent = True
                return await kind.send(work)
            except PlatformError as exc:
                work.attempts += exc.attempts
                if not exc.ambiguous:
                    raise
                noted = await self._shielded(self._note_uncertain(work, str(exc), release=False))
                if noted is None:
                    raise _FencedOut from None
                work.refresh(noted)
                look_first = True

    async def _look_up(self, work: Work, kind: OperationKind) -> Applied | None:
        """Waits until the platform can no longer be applying the uncertain attempt (by the
        database's clock), then looks. Not enough time left for that: _Undecided."""
        due_in = self._due_in(work, kind)
        remaining = work.deadline - time.monotonic()
        if due_in + MIN_LOOK_UP_SECONDS > remaining:
            raise _Undecided(
                f"an earlier attempt may still be applied; its marker can be looked up in {due_in:.1f} s",
                retry_after=max(due_in, 1.0),
            )
        if due_in > 0:
            await asyncio.sleep(due_in)
        try:
            return await kind.look_up(work)
        except PlatformError as exc:
            work.attempts += exc.attempts
            raise _Undecided(f"looking up an earlier attempt failed: {exc}", retry_after=1.0) from None

    def _due_in(self, work: Work, kind: OperationKind) -> float:
        operation = work.operation
        if operation.uncertain_since is None or operation.observed_at is None:
            return 0.0
        delays = self._settings.delays.get(work.ticket.platform, ConfirmationDelays(0.0, 0.0))
        delay = delays.search if kind.searches else delays.direct
        since = (operation.observed_at - operation.uncertain_since).total_seconds()
        return delay - since - (time.monotonic() - work.observed)

    # -- recording ------------------------------------------------------------------------------

    async def _record_failure(self, work: Work, kind: OperationKind, error_kind: str, error: str) -> None:
        await self._shielded(
            self._ledger.fail(
                work.operation.request_id,
                token=work.operation.lease_token,
                attempts=work.total_attempts,
                error=error,
                error_kind=error_kind,
                ticket_changes=kind.failed(work, error),
            )
        )

    async def _release_uncertain(self, work: Work, error: str) -> None:
        await self._note_uncertain(work, error, release=True)

    async def _note_uncertain(self, work: Work, error: str, *, release: bool) -> OperationRecord | None:
        """Marks the operation uncertain: as of now when an attempt went out since it was last marked
        (the platform may apply it from now on), else as before, so a holder that only waited
        (and gave up) does not push the look-up further away for the next one."""
        noted = await self._ledger.note_uncertain(
            work.operation.request_id,
            token=work.operation.lease_token,
            attempts=work.total_attempts,
            error=error,
            release=release,
            sent=work.sent,
        )
        work.sent = False
        return noted

    def _pending(self, work: Work, why: str, retry_after: float) -> errors.OutcomePending:
        operation = work.operation
        return errors.OutcomePending(
            f"the outcome of request_id {operation.request_id!r} is not known yet ({why}); ticket "
            f"{operation.ticket_id} stays PENDING until it is settled through its marker: repeat the "
            "request_id later (it never sends blind), or find the ticket with ListTickets{request_id}",
            ticket_id=operation.ticket_id,
            request_id=operation.request_id,
            retry_after_seconds=retry_after,
        )

    async def _ticket(self, operation: OperationRecord) -> TicketRecord:
        ticket = await self._ledger.ticket(operation.ticket_id)
        if ticket is None:
            raise errors.Unavailable(f"ticket {operation.ticket_id} vanished from the ledger")
        return ticket

    # -- time -----------------------------------------------------------------------------------

    def _call_end(self, deadline: float | None) -> float:
        own = time.monotonic() + self._settings.call_seconds
        return own if deadline is None else min(own, deadline - ANSWER_MARGIN_SECONDS)

    def _wait_end(self, deadline: float | None) -> float:
        own = time.monotonic() + self._settings.in_flight_wait_seconds
        return own if deadline is None else min(own, deadline - ANSWER_MARGIN_SECONDS)

    # -- background writes ----------------------------------------------------------------------

    async def _shielded(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Runs a final write to completion even if the caller cancels while it runs."""
        return await asyncio.shield(self._spawn(coro))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def drain(self) -> None:
        """Waits for shielded final writes still running (used at shutdown)."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def background(self) -> int:
        """Shielded final writes still running (the itsm_background_tasks gauge, kind final_write)."""
        return len(self._background)

    def in_flight(self) -> int:
        return len(self._in_flight)


def _token() -> str:
    return str(uuid.uuid4())


def _same_request(stored: OperationRecord, wanted: OperationRecord) -> None:
    if stored.kind != wanted.kind or stored.payload_hash != wanted.payload_hash:
        what = "another kind of operation" if stored.kind != wanted.kind else "a different payload"
        raise errors.RequestIdReused(
            f"request_id {_quote(stored.request_id)} was already used for {what} "
            f"({stored.kind} on ticket {stored.ticket_id}); use a new request_id for a new operation"
        )


def _stored_error(operation: OperationRecord, platform: str) -> PlatformError:
    """The failure a permanent outcome first answered with, rebuilt from the ledger."""
    kind = ErrorKind._value2member_map_.get(operation.error_kind, ErrorKind.BAD_RESPONSE)
    assert isinstance(kind, ErrorKind)
    return PlatformError(
        platform=platform,
        operation=operation.kind,
        kind=kind,
        message=f"{operation.last_error} (stored outcome of request_id {_quote(operation.request_id)})",
        attempts=operation.attempts,
    )


def _quote(value: str, limit: int = 80) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")


__all__ = [
    "PENDING",
    "Applied",
    "ConfirmationDelays",
    "DecideAfresh",
    "Done",
    "Engine",
    "EngineSettings",
    "OperationKind",
    "Request",
    "Work",
]
