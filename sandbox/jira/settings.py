"""The Jira sandbox's credentials. Public on purpose: it is a local development target, and
`itsm-gateway dev` injects these same values into the gateway's platform settings."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_PORT = 8082
DEFAULT_USER = "dev@example.com"  # Cloud style: e-mail + API token over basic auth
DEFAULT_TOKEN = "dev-token"  # also accepted alone as a Data Center bearer PAT


@dataclass(frozen=True)
class JiraSandboxAuth:
    user: str = DEFAULT_USER
    token: str = field(default=DEFAULT_TOKEN, repr=False)
