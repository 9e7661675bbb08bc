"""Settles operations nobody is finishing: their holder crashed, or gave up when its caller's time ran
out with the outcome unknown. Run at start-up and then every interval; several gateways on one
database share the work through the operations' leases (one take-over wins)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from server.domain import errors
from server.service.engine import Engine, OperationKind
from server.service.ports import OperationLedger

log = logging.getLogger("itsm.reconciler")

BATCH = 100


class Reconciler:
    def __init__(self, ledger: OperationLedger, engine: Engine, kinds: Mapping[str, OperationKind]) -> None:
        self._ledger = ledger
        self._engine = engine
        self._kinds = kinds

    async def run_once(self, limit: int = BATCH) -> int:
        """One round; returns how many operations it tried. One that fails is logged and left for a
        later round: it never stops the round (nor stalls the ones behind it)."""
        tried = 0
        for operation in await self._ledger.expired(limit):
            kind = self._kinds.get(operation.kind)
            if kind is None or self._engine.holds(operation.request_id):
                continue
            tried += 1
            try:
                done = await self._engine.settle(operation, kind)
            except errors.GatewayError as exc:
                log.warning(
                    "reconciling %s %s: %s", operation.kind, operation.request_id, exc,
                    extra={"request_id": operation.request_id, "ticket_id": operation.ticket_id},
                )
            except Exception:
                log.exception(
                    "reconciling %s %s failed", operation.kind, operation.request_id,
                    extra={"request_id": operation.request_id, "ticket_id": operation.ticket_id},
                )
            else:
                if done is not None:
                    log.info(
                        "reconciled %s %s", operation.kind, operation.request_id,
                        extra={"request_id": operation.request_id, "ticket_id": operation.ticket_id},
                    )
        return tried
