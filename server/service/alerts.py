"""Alertmanager notifications to tickets: the receiver's template, its dedup key, its policy.

- firing: CreateTicketFromTemplate with the dedup key: the first notification opens the ticket, a
  later one with more (or other) alerts attaches a comment, one after the ticket was resolved reopens
  it within the platform's reopen window (else opens a new one). The service/dedup.py rules.
- resolved: the open ticket of the key is resolved, commented or left alone (on_resolved). No open
  ticket (never opened, already resolved, closed) is nothing to do, and said so.

Each notification acts under a request_id derived from its content (domain/alert_keys.py): the copy
the other Alertmanager of an HA pair sends, or a retry, is a replay. The same request_id with another
payload (that copy's externalURL differs, say) is not an error here: the notification it repeats has
been handled, so nothing is done and that is the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from server.domain import errors
from server.domain.alert_keys import dedup_key, request_id
from server.domain.alert_payload import FIRING, Notification
from server.domain.alert_variables import alerts_text, template_variables
from server.domain.records import PENDING, TicketRecord
from server.domain.templates import measure_variables
from server.service.comments import INTERNAL
from server.service.engine import Done
from server.service.lifecycle import Lifecycle
from server.service.ports import Telemetry, TicketStore
from server.service.settings import COMMENT, NOTHING, AlertReceiver, GatewayConfig
from server.service.tickets import TicketCreation

# What a notification did: the ticket's fate, or why nothing was done.
CREATED, ATTACHED, REOPENED = "created", "attached", "reopened"
RESOLVED, COMMENTED, REPLAYED, IGNORED = "resolved", "commented", "replayed", "ignored"
ACTIONS: Final = (CREATED, ATTACHED, REOPENED, RESOLVED, COMMENTED, REPLAYED, IGNORED)


@dataclass(frozen=True)
class AlertOutcome:
    action: str  # one of ACTIONS
    request_id: str
    dedup_key: str
    ticket: TicketRecord | None = None
    reason: str = ""  # why nothing was done (IGNORED)


class AlertNotifications:
    def __init__(
        self,
        config: GatewayConfig,
        creation: TicketCreation,
        lifecycle: Lifecycle,
        tickets: TicketStore,
        telemetry: Telemetry,
    ) -> None:
        self._config = config
        self._creation = creation
        self._lifecycle = lifecycle
        self._tickets = tickets
        self._telemetry = telemetry

    def receiver(self, name: str) -> AlertReceiver | None:
        return self._config.alertmanager.receivers.get(name)

    @property
    def timeout_seconds(self) -> float:
        return self._config.alertmanager.timeout_seconds

    async def handle(
        self, receiver: AlertReceiver, notification: Notification, *, caller: str, deadline: float | None
    ) -> AlertOutcome:
        key = dedup_key(receiver.name, notification, receiver.dedup_labels)
        rid = request_id(receiver.name, notification)
        platform = self._config.templates[receiver.template].platform
        self._telemetry.annotate(
            request_id=rid, job_id=job_id(receiver), platform=platform, template_name=receiver.template
        )
        try:
            if notification.status == FIRING:
                return await self._firing(receiver, notification, key, rid, caller, deadline)
            return await self._resolved(receiver, notification, key, rid, caller, deadline)
        except errors.RequestIdReused:
            why = "this notification was handled already (a copy with other content: the HA peer's)"
            return AlertOutcome(IGNORED, rid, key, reason=why)

    async def _firing(
        self,
        receiver: AlertReceiver,
        notification: Notification,
        key: str,
        rid: str,
        caller: str,
        deadline: float | None,
    ) -> AlertOutcome:
        spec = self._config.templates[receiver.template]
        variables = template_variables(notification, spec.required_variables, receiver.text)
        done = await self._creation.create_from_template(
            template_name=receiver.template,
            request_id=rid,
            job_id=job_id(receiver),
            variables=variables,
            variables_size=measure_variables(variables, self._config.limits.max_variables_bytes),
            caller=caller,
            deadline=deadline,
            dedup_key=key,
            fit=True,  # an alert's long annotation is cut to fit, not a refusal that costs the ticket
        )
        return AlertOutcome(_created_action(done), rid, key, done.ticket)

    async def _resolved(
        self,
        receiver: AlertReceiver,
        notification: Notification,
        key: str,
        rid: str,
        caller: str,
        deadline: float | None,
    ) -> AlertOutcome:
        if receiver.on_resolved == NOTHING:
            return AlertOutcome(IGNORED, rid, key, reason="the receiver's on_resolved is nothing")
        platform = self._config.templates[receiver.template].platform
        ticket = await self._tickets.key_holder(platform, key)
        if ticket is None:
            return AlertOutcome(IGNORED, rid, key, reason="no open ticket holds this dedup key")
        if ticket.state == PENDING:
            raise errors.Unavailable(
                f"ticket {ticket.id} of this dedup key is still being created; retry", retry_after_seconds=1.0
            )
        text = _resolved_text(receiver, notification)
        if receiver.on_resolved == COMMENT:
            done = await self._lifecycle.comment(
                ticket_id=ticket.id, request_id=rid, body=text, visibility=INTERNAL, caller=caller,
                deadline=deadline,
            )
            return AlertOutcome(REPLAYED if done.replayed else COMMENTED, rid, key, done.ticket)
        done = await self._lifecycle.resolve(
            ticket_id=ticket.id, request_id=rid, resolution=receiver.resolution, notes=text, caller=caller,
            deadline=deadline,
        )
        return AlertOutcome(REPLAYED if done.replayed else RESOLVED, rid, key, done.ticket)


def job_id(receiver: AlertReceiver) -> str:
    """What the tickets of a receiver carry as job_id: ListTickets{job_id} finds them all."""
    return f"alertmanager/{receiver.name}"


def _created_action(done: Done) -> str:
    if done.replayed:
        return REPLAYED
    outcome = str(done.operation.result.get("outcome", "CREATED")).lower()
    return outcome if outcome in (CREATED, ATTACHED, REOPENED) else CREATED


def _resolved_text(receiver: AlertReceiver, notification: Notification) -> str:
    return f"Alertmanager: the alerts are resolved.\n\n{alerts_text(notification, receiver.text)}"
