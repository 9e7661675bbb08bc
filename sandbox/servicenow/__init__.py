"""ServiceNow Table API emulation (incident table, journal, OAuth password grant)."""

from __future__ import annotations

import argparse
from typing import Any

from sandbox.config import SandboxLimits
from sandbox.faults import FaultState
from sandbox.servicenow.app import ServiceNowSandbox
from sandbox.servicenow.settings import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_PASSWORD,
    DEFAULT_PORT,
    DEFAULT_USER,
    ServiceNowSandboxAuth,
)
from sandbox.spec import SandboxPlatform


def _build(auth: Any, faults: FaultState, limits: SandboxLimits) -> ServiceNowSandbox:
    return ServiceNowSandbox(auth or ServiceNowSandboxAuth(), faults, limits)


def _add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--servicenow-user", default=DEFAULT_USER)
    group.add_argument("--servicenow-password", default=DEFAULT_PASSWORD)
    group.add_argument("--servicenow-client-id", default=DEFAULT_CLIENT_ID)
    group.add_argument("--servicenow-client-secret", default=DEFAULT_CLIENT_SECRET)


def _auth_from_args(args: argparse.Namespace) -> ServiceNowSandboxAuth:
    return ServiceNowSandboxAuth(
        user=args.servicenow_user,
        password=args.servicenow_password,
        client_id=args.servicenow_client_id,
        client_secret=args.servicenow_client_secret,
    )


SANDBOX = SandboxPlatform(
    name="servicenow",
    default_port=DEFAULT_PORT,
    credentials=(DEFAULT_USER, DEFAULT_PASSWORD),
    build=_build,
    records_path="/api/now/table/incident?sysparm_limit=5&sysparm_query=ORDERBYDESCsys_created_on",
    title="ServiceNow",
    add_arguments=_add_arguments,
    auth_from_args=_auth_from_args,
)

__all__ = ["SANDBOX", "ServiceNowSandbox", "ServiceNowSandboxAuth"]
