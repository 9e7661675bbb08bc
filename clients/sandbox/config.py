"""What a sandbox run is built from, and the well-known sandbox credentials.

The credentials are public on purpose: the sandbox is a local development and test target, and
`itsm-gateway dev` injects these same values into the gateway's platform settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from clients.sandbox.faults import FaultSettings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_SERVICENOW_PORT = 8081
DEFAULT_JIRA_PORT = 8082

DEFAULT_SERVICENOW_USER = "admin"
DEFAULT_SERVICENOW_PASSWORD = "admin"
DEFAULT_SERVICENOW_CLIENT_ID = "sandbox-client"
DEFAULT_SERVICENOW_CLIENT_SECRET = "sandbox-secret"
DEFAULT_JIRA_USER = "dev@example.com"  # Cloud style: e-mail + API token over basic auth
DEFAULT_JIRA_TOKEN = "dev-token"  # also accepted alone as a Data Center bearer PAT

# Platform config key -> (user, secret) the gateway should send: what `dev` injects.
SANDBOX_CREDENTIALS: dict[str, tuple[str, str]] = {
    "servicenow": (DEFAULT_SERVICENOW_USER, DEFAULT_SERVICENOW_PASSWORD),
    "jira": (DEFAULT_JIRA_USER, DEFAULT_JIRA_TOKEN),
}

MIB = 1024 * 1024


@dataclass(frozen=True)
class ServiceNowSandboxAuth:
    user: str = DEFAULT_SERVICENOW_USER
    password: str = field(default=DEFAULT_SERVICENOW_PASSWORD, repr=False)
    client_id: str = DEFAULT_SERVICENOW_CLIENT_ID
    client_secret: str = field(default=DEFAULT_SERVICENOW_CLIENT_SECRET, repr=False)
    token_ttl_seconds: int = 1799  # what real instances answer in expires_in


@dataclass(frozen=True)
class JiraSandboxAuth:
    user: str = DEFAULT_JIRA_USER
    token: str = field(default=DEFAULT_JIRA_TOKEN, repr=False)


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
class SandboxConfig:
    host: str = DEFAULT_HOST
    servicenow_port: int = DEFAULT_SERVICENOW_PORT  # 0 picks a free port
    jira_port: int = DEFAULT_JIRA_PORT
    servicenow_auth: ServiceNowSandboxAuth = field(default_factory=ServiceNowSandboxAuth)
    jira_auth: JiraSandboxAuth = field(default_factory=JiraSandboxAuth)
    servicenow_faults: FaultSettings = field(default_factory=FaultSettings)
    jira_faults: FaultSettings = field(default_factory=FaultSettings)
    seed: int | None = None  # None: fresh randomness each run
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    tls: TlsFiles | None = None
