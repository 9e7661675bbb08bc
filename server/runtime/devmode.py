"""Zero-setup development: point the configuration at the sandbox and tell the person what to type."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Protocol

from sandbox import RunningSandbox, registered


class _Served(Protocol):
    grpc_port: int
    metrics_port: int
    web_port: int


def sandbox_config_overrides(
    raw: dict[str, Any], urls: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The configuration with every sandboxed platform enabled and pointed at the sandbox, and the
    environment holding its (well-known, public) credentials.

    Applied before validation, so the shipped config (which names production secret variables that a
    developer does not have) validates as is. Every platform block accepts basic auth.
    """
    raw = copy.deepcopy(raw)
    env: dict[str, str] = {}
    platforms = raw.setdefault("platforms", {})
    emulated = registered()
    for name, url in urls.items():
        block = platforms.setdefault(name, {})
        user, secret = emulated[name].credentials
        prefix = f"ITSM_SANDBOX_{name.upper()}"
        block.update(
            enabled=True,
            base_url=url,
            verify_tls=True,
            ca_bundle=None,
            proxy=None,
            auth={"type": "basic", "username_env": f"{prefix}_USER", "password_env": f"{prefix}_PASSWORD"},
        )
        env[f"{prefix}_USER"], env[f"{prefix}_PASSWORD"] = user, secret
    return raw, env


def dev_banner(gateway: _Served, sandbox: RunningSandbox, database_url: str, tokens: bool) -> str:
    port = gateway.grpc_port
    target = f"localhost:{port}"
    auth = " -H 'authorization: Bearer <your token>'" if tokens else ""
    g = f"grpcurl -plaintext{auth}"
    c = f"curl -s{auth} -H 'Content-Type: application/json'"
    web = f"localhost:{gateway.web_port}"
    sign_in = "with a token from the tokens file" if tokens else "with the token left empty: no tokens file"
    emulated = registered()
    sandboxes = "\n".join(
        f"  sandbox       {emulated[name].title or name:<11} {url}  ({':'.join(emulated[name].credentials)})"
        for name, url in sandbox.urls.items()
    )
    looks = "\n".join(
        f"  curl -s -u {':'.join(emulated[name].credentials)} -H 'Accept: application/json' "
        f"'{url}{emulated[name].records_path}'"
        for name, url in sandbox.urls.items()
    )
    return f"""
itsm-gateway dev mode
  page          http://127.0.0.1:{gateway.web_port}/  (open it in a browser; sign in {sign_in})
  gRPC          127.0.0.1:{port}
  web           http://127.0.0.1:{gateway.web_port}  (Connect JSON/binary, gRPC-web; /healthz, /readyz)
  metrics       http://127.0.0.1:{gateway.metrics_port}/metrics
  database      {database_url}
{sandboxes}

Try:
  {g} {target} list
  {g} {target} grpc.health.v1.Health/Check
  {g} -d '{{"platform":"PLATFORM_SERVICENOW","request_id":"demo-1","fields":{{"summary":"Disk full on db-01","urgency":"1","impact":"2"}}}}' {target} itsm.v1.TicketService/CreateTicket
  {g} -d '{{"platform":"PLATFORM_JIRA","request_id":"demo-2","fields":{{"summary":"Rotate TLS certs","labels":"ops,certs"}}}}' {target} itsm.v1.TicketService/CreateTicket
  {g} -d '{{"template_name":"jira_job_failure_bug","request_id":"demo-3","job_id":"nightly-42","variables":{{"pipeline":"etl","error":{{"message":"exit 1"}}}}}}' {target} itsm.v1.TicketService/CreateTicketFromTemplate
  {g} -d '{{"page_size":10}}' {target} itsm.v1.TicketService/ListTickets
  {c} -d '{{"platform":"PLATFORM_JIRA","request_id":"demo-4","fields":{{"summary":"Over plain HTTP"}}}}' {web}/itsm.v1.TicketService/CreateTicket
{looks}
Ctrl-C stops (in-flight calls finish first).
"""
