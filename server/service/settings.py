"""The service's settings: what the configuration file says, as typed values the use cases read.

Built by server/runtime/config.py from the JSON file and the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from clients.settings import RetryPolicy, TimeoutConfig
from server.domain.alert_variables import TextBounds
from server.domain.rules import FieldRule, Limits
from server.domain.sla import SlaConfig
from server.domain.templates import TemplateSpec


@dataclass(frozen=True)
class IdempotencyConfig:
    pending_lease_seconds: float = 150.0  # a PENDING ticket older than this is settled by the reconciler
    reconcile_interval_seconds: float = 30.0
    in_flight_wait_seconds: float = 30.0  # how long a repeat waits for the first call, within its deadline


@dataclass(frozen=True)
class DedupPolicy:
    """What a create with a dedup key does on one platform when the key's ticket is not open."""

    reopen_window_seconds: float = 3600.0  # reopen a ticket resolved less than this ago; 0: never
    raise_priority_on_attach: bool = True  # a more urgent repeat raises the open ticket's priority
    # Resolutions that mean "won't fix": such a ticket counts as cancelled and is never reopened.
    wont_fix_resolutions: tuple[str, ...] = ("Won't Do", "Won't Fix", "Duplicate", "Cannot Reproduce")


@dataclass(frozen=True)
class PlatformConfig:
    name: str
    enabled: bool
    settings: Any  # the platform module's own settings (clients.platform.PlatformSettings); None when off
    # How long after an ambiguous attempt the platform may still apply it (direct reads), and until it
    # is searchable too: a marker look-up waits this long. Defaults from the platform module.
    confirmation_delay_seconds: float = 6.0
    search_confirmation_delay_seconds: float = 6.0
    dedup: DedupPolicy = field(default_factory=lambda: DedupPolicy())


# What a resolved notification does to the open ticket of its dedup key.
RESOLVE, COMMENT, NOTHING = "resolve", "comment", "nothing"
ON_RESOLVED = (RESOLVE, COMMENT, NOTHING)


@dataclass(frozen=True)
class AlertReceiver:
    """One Alertmanager receiver the gateway serves at POST /alertmanager/<name>."""

    name: str
    template: str  # a configured template whose variables a notification provides
    dedup_labels: tuple[str, ...] | None = None  # None: the notification's group labels
    on_resolved: str = RESOLVE
    resolution: str = ""  # what a resolve sets (close code, Jira resolution); "": the platform's default
    text: TextBounds = field(default_factory=TextBounds)  # how much {alerts_text} lists


@dataclass(frozen=True)
class AlertmanagerConfig:
    receivers: Mapping[str, AlertReceiver] = field(default_factory=dict)
    # How long one notification may take. Alertmanager gives a notification, retries included,
    # max(group_interval, 10 s): within 8 s the answer (a 503 included, which it retries) is heard
    # whatever the routing tree says.
    timeout_seconds: float = 8.0


@dataclass(frozen=True)
class GatewayConfig:
    platforms: Mapping[str, PlatformConfig]
    retry_policy: RetryPolicy
    timeout: TimeoutConfig
    field_mapping: Mapping[str, Mapping[str, FieldRule]]
    templates: Mapping[str, TemplateSpec]
    sla: SlaConfig
    limits: Limits
    idempotency: IdempotencyConfig
    alertmanager: AlertmanagerConfig = field(default_factory=AlertmanagerConfig)

    def enabled_platforms(self) -> list[str]:
        return [name for name, p in self.platforms.items() if p.enabled]
