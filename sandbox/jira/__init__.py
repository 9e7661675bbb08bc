"""Jira REST API v2 (Data Center) and v3 (Cloud) emulation: issues, comments, workflow, search."""

from __future__ import annotations

import argparse
from typing import Any

from sandbox.config import SandboxLimits
from sandbox.faults import FaultState
from sandbox.jira.app import JiraSandbox
from sandbox.jira.settings import DEFAULT_PORT, DEFAULT_TOKEN, DEFAULT_USER, JiraSandboxAuth
from sandbox.spec import SandboxPlatform


def _build(auth: Any, faults: FaultState, limits: SandboxLimits) -> JiraSandbox:
    return JiraSandbox(auth or JiraSandboxAuth(), faults, limits)


def _add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--jira-user", default=DEFAULT_USER)
    group.add_argument("--jira-token", default=DEFAULT_TOKEN)


def _auth_from_args(args: argparse.Namespace) -> JiraSandboxAuth:
    return JiraSandboxAuth(user=args.jira_user, token=args.jira_token)


SANDBOX = SandboxPlatform(
    name="jira",
    default_port=DEFAULT_PORT,
    credentials=(DEFAULT_USER, DEFAULT_TOKEN),
    build=_build,
    records_path="/rest/api/2/search?jql=order%20by%20created%20DESC&maxResults=5",
    title="Jira",
    add_arguments=_add_arguments,
    auth_from_args=_auth_from_args,
)

__all__ = ["SANDBOX", "JiraSandbox", "JiraSandboxAuth"]
