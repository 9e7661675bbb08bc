"""What the operation kinds that act on an existing ticket (update, comment, resolve, reopen) share.

Their look-ups read the record or its comments, never a search index; a failure changes nothing on
the ticket (it exists, whatever happened to this operation), and a platform's refusal reaches the
caller in the gateway's terms, as for a create.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from clients.errors import PlatformError
from server.domain import errors
from server.domain.records import OperationRecord
from server.service.catalog import Catalog
from server.service.engine import Work
from server.service.platform_errors import to_caller


class FollowUpKind:
    searches = False  # look-ups read the record (or its comments), which the platforms keep consistent

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def failed(self, work: Work, error: str) -> Mapping[str, Any]:
        return {}

    def retried(self, operation: OperationRecord) -> Mapping[str, Any]:
        return {}

    def decides_afresh(self, operation: OperationRecord) -> bool:
        return False

    def to_error(self, work: Work, error: PlatformError) -> errors.GatewayError:
        return to_caller(self._catalog, work, error)
