"""What a sandbox run is built from: which platforms, on which ports, with which faults.

Platform-specific settings (credentials) belong to each platform's package; this module only knows
the shape every platform shares.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sandbox.faults import FaultSettings

DEFAULT_HOST = "127.0.0.1"
MIB = 1024 * 1024


@dataclass(frozen=True)
class SandboxLimits:
    """Caps that keep a long-running sandbox's memory bounded."""

    max_body_bytes: int = MIB
    max_records: int = 100_000  # per platform; creates beyond it get 507
    max_journal_entries: int = 1_000  # per incident / comments per issue
    max_issue_properties: int = 100  # per issue (Jira Cloud's documented limit)
    max_oauth_tokens: int = 10_000  # live ServiceNow tokens; the oldest are forgotten first


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for serving https (pysnc, for one, refuses plain http instances)."""

    cert_file: str
    key_file: str


@dataclass(frozen=True)
class PlatformSandbox:
    """One platform's emulation in a run."""

    port: int | None = None  # None: the platform's default port (any free port under free_ports)
    faults: FaultSettings = field(default_factory=FaultSettings)
    auth: Any = None  # the platform's own credential settings; None: its well-known defaults


@dataclass(frozen=True)
class SandboxConfig:
    host: str = DEFAULT_HOST
    # Platform name -> its settings. Every registered platform runs (sandbox.platforms); one left
    # out here runs with PlatformSandbox() defaults.
    platforms: Mapping[str, PlatformSandbox] = field(default_factory=dict)
    free_ports: bool = False  # a platform without a port of its own gets any free port, not its default
    seed: int | None = None  # None: fresh randomness each run
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    tls: TlsFiles | None = None

    @classmethod
    def on_free_ports(
        cls,
        *,
        faults: Mapping[str, FaultSettings] | None = None,
        auth: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> SandboxConfig:
        """Every platform on a free port (tests, drills, benchmarks), with faults and credentials by
        platform name."""
        faults, auth = faults or {}, auth or {}
        platforms = {
            name: PlatformSandbox(None, faults.get(name, FaultSettings()), auth.get(name))
            for name in {*faults, *auth}
        }
        return cls(platforms=platforms, free_ports=True, **options)

    def with_faults(self, name: str, faults: FaultSettings) -> SandboxConfig:
        platforms = dict(self.platforms)
        platforms[name] = replace(platforms.get(name, PlatformSandbox()), faults=faults)
        return replace(self, platforms=platforms)
