"""Zero-setup development: point the configuration at the sandbox and tell the person what to type."""

from __future__ import annotations

import copy
from typing import Any, Protocol

from clients.sandbox.config import SANDBOX_CREDENTIALS
from server.config import PLATFORMS


class _Running(Protocol):
    servicenow_url: str
    jira_url: str


class _Served(Protocol):
    grpc_port: int
    metrics_port: int


def sandbox_config_overrides(
    raw: dict[str, Any], servicenow_url: str, jira_url: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """The configuration with both platforms on the sandbox, and the environment holding its secrets.

    Applied before validation, so the shipped config (which names production secret variables that a
    developer does not have) validates as is.
    """
    raw = copy.deepcopy(raw)
    urls = {"servicenow": servicenow_url, "jira": jira_url}
    env: dict[str, str] = {}
    platforms = raw.setdefault("platforms", {})
    for name in PLATFORMS:
        block = platforms.setdefault(name, {})
        user, secret = SANDBOX_CREDENTIALS[name]
        prefix = f"ITSM_SANDBOX_{name.upper()}"
        block.update(
            enabled=True,
            base_url=urls[name],
            verify_tls=True,
            ca_bundle=None,
            proxy=None,
            auth={"type": "basic", "username_env": f"{prefix}_USER", "password_env": f"{prefix}_PASSWORD"},
        )
        env[f"{prefix}_USER"], env[f"{prefix}_PASSWORD"] = user, secret
    return raw, env


def dev_banner(gateway: _Served, sandbox: _Running, database_url: str) -> str:
    port = gateway.grpc_port
    target = f"localhost:{port}"
    auth = ""
    if getattr(gateway, "options", None) is not None and gateway.options.tokens is not None:  # type: ignore[attr-defined]
        auth = " -H 'authorization: Bearer <your token>'"
    g = f"grpcurl -plaintext{auth}"
    sn_user, sn_secret = SANDBOX_CREDENTIALS["servicenow"]
    jira_user, jira_secret = SANDBOX_CREDENTIALS["jira"]
    return f"""
itsm-gateway dev mode
  gRPC          127.0.0.1:{port}
  metrics       http://127.0.0.1:{gateway.metrics_port}/metrics
  database      {database_url}
  sandbox       ServiceNow {sandbox.servicenow_url}  ({sn_user}:{sn_secret})
                Jira       {sandbox.jira_url}  ({jira_user}:{jira_secret})

Try:
  {g} {target} list
  {g} {target} grpc.health.v1.Health/Check
  {g} -d '{{"platform":"PLATFORM_SERVICENOW","request_id":"demo-1","fields":{{"summary":"Disk full on db-01","urgency":"1","impact":"2"}}}}' {target} itsm.v1.TicketService/CreateTicket
  {g} -d '{{"platform":"PLATFORM_JIRA","request_id":"demo-2","fields":{{"summary":"Rotate TLS certs","labels":"ops,certs"}}}}' {target} itsm.v1.TicketService/CreateTicket
  {g} -d '{{"template_name":"jira_job_failure_bug","request_id":"demo-3","job_id":"nightly-42","variables":{{"pipeline":"etl","error":{{"message":"exit 1"}}}}}}' {target} itsm.v1.TicketService/CreateTicketFromTemplate
  {g} -d '{{"page_size":10}}' {target} itsm.v1.TicketService/ListTickets
  curl -s -u {sn_user}:{sn_secret} -H 'Accept: application/json' '{sandbox.servicenow_url}/api/now/table/incident?sysparm_limit=5'
Ctrl-C stops (in-flight calls finish first).
"""
