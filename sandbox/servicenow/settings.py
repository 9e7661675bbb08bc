"""The ServiceNow sandbox's credentials. Public on purpose: it is a local development target, and
`itsm-gateway dev` injects these same values into the gateway's platform settings."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_PORT = 8081
DEFAULT_USER = "admin"
DEFAULT_PASSWORD = "admin"
DEFAULT_CLIENT_ID = "sandbox-client"
DEFAULT_CLIENT_SECRET = "sandbox-secret"


@dataclass(frozen=True)
class ServiceNowSandboxAuth:
    user: str = DEFAULT_USER
    password: str = field(default=DEFAULT_PASSWORD, repr=False)
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = field(default=DEFAULT_CLIENT_SECRET, repr=False)
    token_ttl_seconds: int = 1799  # what real instances answer in expires_in
