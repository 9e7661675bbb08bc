"""The one place where errors become gRPC statuses.

Domain errors carry their own safe message; INVALID_ARGUMENT adds google.rpc.BadRequest field
violations in the rich status details (grpc-status-details-bin), which grpcurl and every
grpcio-status client decode. Anything else is a bug: INTERNAL with a reference to the log line.
"""

from __future__ import annotations

import logging
import uuid

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from server.domain import errors

log = logging.getLogger("itsm.server")

_CODES: dict[type[errors.GatewayError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
}

Trailers = tuple[tuple[str, bytes], ...]


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str, Trailers]:
    if isinstance(exc, errors.StoreUnavailable):
        log.error("database unavailable: %s", exc)
        return grpc.StatusCode.UNAVAILABLE, "the gateway's database is unavailable; retry later", ()
    if isinstance(exc, errors.GatewayError):
        code = _CODES.get(type(exc), grpc.StatusCode.INTERNAL)
        return code, str(exc), _details(code, str(exc), exc)
    ref = uuid.uuid4().hex[:12]
    log.error("unhandled error ref=%s", ref, exc_info=exc)
    return grpc.StatusCode.INTERNAL, f"internal error (ref {ref})", ()


def _details(code: grpc.StatusCode, message: str, exc: errors.GatewayError) -> Trailers:
    if not isinstance(exc, errors.InvalidArgument) or not exc.violations:
        return ()
    bad_request = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(
                field=v.field, description=v.description, reason=v.reason
            )
            for v in exc.violations
        ]
    )
    detail = any_pb2.Any()
    detail.Pack(bad_request)
    status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=message, details=[detail])
    return (("grpc-status-details-bin", status.SerializeToString()),)
