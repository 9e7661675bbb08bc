"""In-memory ServiceNow and Jira emulators for development, tests, benchmarks and fault drills.

Start both with `await start_sandbox(SandboxConfig(...))`; each platform also serves /_sandbox/
control endpoints (faults, stats, reset) that need no credentials and are never faulted.
"""

from clients.sandbox.config import (
    DEFAULT_JIRA_TOKEN,
    DEFAULT_JIRA_USER,
    DEFAULT_SERVICENOW_CLIENT_ID,
    DEFAULT_SERVICENOW_CLIENT_SECRET,
    DEFAULT_SERVICENOW_PASSWORD,
    DEFAULT_SERVICENOW_USER,
    SANDBOX_CREDENTIALS,
    JiraSandboxAuth,
    SandboxConfig,
    SandboxLimits,
    ServiceNowSandboxAuth,
    TlsFiles,
)
from clients.sandbox.faults import FaultSettings, FaultSettingsError
from clients.sandbox.runner import RunningSandbox, start_sandbox

__all__ = [
    "DEFAULT_JIRA_TOKEN",
    "DEFAULT_JIRA_USER",
    "DEFAULT_SERVICENOW_CLIENT_ID",
    "DEFAULT_SERVICENOW_CLIENT_SECRET",
    "DEFAULT_SERVICENOW_PASSWORD",
    "DEFAULT_SERVICENOW_USER",
    "SANDBOX_CREDENTIALS",
    "FaultSettings",
    "FaultSettingsError",
    "JiraSandboxAuth",
    "RunningSandbox",
    "SandboxConfig",
    "SandboxLimits",
    "ServiceNowSandboxAuth",
    "TlsFiles",
    "start_sandbox",
]
