"""The use cases the servicers call, handed in by the composition root."""

from __future__ import annotations

from dataclasses import dataclass

from server.service.lifecycle import Lifecycle
from server.service.queries import TicketQueries
from server.service.templates import Templates
from server.service.tickets import TicketCreation


@dataclass(frozen=True)
class Services:
    creation: TicketCreation
    lifecycle: Lifecycle
    queries: TicketQueries
    templates: Templates
