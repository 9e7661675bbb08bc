"""What the service knows of each enabled platform: its field rules, its module's spec and its
dedup policy, and the gateway status a platform status comes to."""

from __future__ import annotations

from collections.abc import Mapping

from clients.platform import PlatformSpec, TicketStatus
from server.domain import errors
from server.domain.records import CANCELLED, RESOLVED
from server.domain.rules import FieldRule
from server.domain.validation import Violation
from server.service.settings import DedupPolicy, GatewayConfig


class Catalog:
    def __init__(self, config: GatewayConfig, specs: Mapping[str, PlatformSpec]) -> None:
        self.config = config
        self.specs = specs

    def enabled(self, platform: str) -> PlatformSpec:
        spec = self.specs.get(platform)
        if spec is None:
            raise errors.FailedPrecondition(f"platform {platform} is not enabled in this gateway")
        return spec

    def rules(self, platform: str) -> Mapping[str, FieldRule]:
        if platform not in self.config.field_mapping:
            known = ", ".join(self.config.field_mapping)
            raise errors.InvalidArgument(
                "platform is required",
                [Violation("platform", f"must name a platform: {known}", "REQUIRED")],
            )
        return self.config.field_mapping[platform]

    def policy(self, platform: str) -> DedupPolicy:
        return self.config.platforms[platform].dedup

    def status(self, platform: str, found: TicketStatus) -> str:
        """The gateway's status: the platform module's mapping, and a won't-fix resolution (as this
        platform's policy lists them) counts as cancelled, never to be reopened."""
        status = found.category or ("RESOLVED" if found.resolved else "IN_PROGRESS")
        if status == RESOLVED and found.resolution in self.policy(platform).wont_fix_resolutions:
            return CANCELLED
        return status
