"""Typed settings the outbound clients are built from.

The gateway's configuration loader hands each platform module its JSON block and the environment;
read_http() reads the keys every platform shares. Clients never read files or the environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from clients.config_reader import (
    ConfigError,
    ConfigObject,
    boolean,
    http_url,
    optional_string,
    positive_int,
)

AuthKind = Literal["basic", "bearer", "oauth"]


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to retry one outbound call.

    The total budget (TimeoutConfig.total, or the caller's deadline when sooner) is what normally ends
    retrying; max_attempts is a backstop, high enough that a platform failing 30% of calls
    transiently still gets every ticket through.
    """

    max_attempts: int = 12
    initial_delay: float = 0.2  # seconds before the second attempt
    multiplier: float = 2.0
    max_delay: float = 10.0  # cap on one wait, Retry-After included
    jitter: bool = True  # full jitter: wait uniformly in [0, computed delay]
    retryable_statuses: frozenset[int] = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class TimeoutConfig:
    """Seconds. connect and read bound one attempt; total bounds all attempts and waits together."""

    connect: float = 10.0
    read: float = 30.0
    total: float = 60.0


@dataclass(frozen=True)
class Credentials:
    """Secret values, already resolved from the environment. Never printed: repr hides them."""

    kind: AuthKind
    username: str = field(default="", repr=False)  # basic / oauth user; Jira Cloud: the e-mail
    password: str = field(default="", repr=False)  # basic / oauth password; Jira Cloud: API token
    token: str = field(default="", repr=False)  # bearer: personal access token
    client_id: str = field(default="", repr=False)  # oauth
    client_secret: str = field(default="", repr=False)  # oauth

    def secrets(self) -> tuple[str, ...]:
        """Every non-empty secret value, for redaction."""
        return tuple(v for v in (self.password, self.token, self.client_secret) if v)


@dataclass(frozen=True)
class HttpSettings:
    """How to reach one platform over HTTP."""

    base_url: str  # e.g. https://acme.service-now.com (no trailing slash, no user info)
    verify_tls: bool = True
    ca_bundle: str | None = None  # path to a PEM bundle for private CAs
    proxy: str | None = None  # http://proxy:3128
    max_connections: int = 100  # aiohttp TCPConnector limit for this platform


def read_http(obj: ConfigObject) -> HttpSettings:
    """The keys every platform block shares: base_url, verify_tls, ca_bundle, proxy, max_connections."""
    http = HttpSettings(
        base_url=obj.need("base_url", http_url),
        verify_tls=obj.get("verify_tls", boolean, True),
        ca_bundle=obj.get("ca_bundle", optional_string, None),
        proxy=obj.get("proxy", optional_string, None),
        max_connections=obj.get("max_connections", positive_int, 100),
    )
    if http.ca_bundle and not Path(http.ca_bundle).is_file():
        raise ConfigError(obj.at("ca_bundle"), "file not found")
    if http.proxy is not None:
        http_url(http.proxy, obj.at("proxy"))
    return http
