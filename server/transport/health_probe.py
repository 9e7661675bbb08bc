"""`itsm-gateway health`: one gRPC health check against a running gateway, for container probes.

Exit 0 when the service answers SERVING, 1 otherwise (NOT_SERVING, unreachable, timed out), with one
line on stderr saying why. Needs no binary besides the gateway's own: the Dockerfile's HEALTHCHECK
and the Kubernetes exec probe (native gRPC probes cannot speak TLS) both run it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

DEFAULT_ADDRESS = "127.0.0.1:50051"


@dataclass(frozen=True)
class HealthProbe:
    address: str = DEFAULT_ADDRESS
    service: str = ""  # "" is the whole server
    timeout_seconds: float = 3.0
    tls: bool = False
    ca_file: Path | None = None  # trust this CA (or self-signed certificate) instead of the system's
    server_name: str | None = None  # the name the certificate must carry, when it is not the host


def check(probe: HealthProbe) -> tuple[bool, str]:
    """(serving, one line saying what was seen)."""
    try:
        with _channel(probe) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=probe.service), timeout=probe.timeout_seconds
            )
    except OSError as exc:
        return False, f"cannot read {probe.ca_file}: {exc.strerror}"
    except grpc.RpcError as exc:
        code = exc.code() if isinstance(exc, grpc.Call) else None
        detail = exc.details() if isinstance(exc, grpc.Call) else str(exc)
        return False, f"{probe.address}: {code.name if code else 'error'}: {detail}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return reply.status == health_pb2.HealthCheckResponse.SERVING, f"{probe.address}: {status}"


def _channel(probe: HealthProbe) -> grpc.Channel:
    if not probe.tls:
        return grpc.insecure_channel(probe.address)
    roots = probe.ca_file.read_bytes() if probe.ca_file else None
    options = [("grpc.ssl_target_name_override", probe.server_name)] if probe.server_name else []
    return grpc.secure_channel(probe.address, grpc.ssl_channel_credentials(roots), options=options)
