"""The shipped configuration, loaded once with dummy secrets, for tests of pure domain code."""

from __future__ import annotations

import functools
from pathlib import Path

from server.runtime.config import GatewayConfig, load_config

CONFIG_PATH = Path(__file__).resolve().parent.parent / "config" / "itsm_config.json"
DUMMY_ENV = {
    "SERVICENOW_USERNAME": "user",
    "SERVICENOW_PASSWORD": "secret",
    "JIRA_EMAIL": "ops@example.com",
    "JIRA_API_TOKEN": "token",
}


@functools.cache
def config() -> GatewayConfig:
    return load_config(CONFIG_PATH, env=DUMMY_ENV)
