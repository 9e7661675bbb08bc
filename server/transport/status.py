"""The one place where errors become gRPC statuses.

Domain errors carry their own safe message, and rich details in the status (grpc-status-details-bin,
which grpcurl and every grpcio-status client decode): INVALID_ARGUMENT carries google.rpc.BadRequest
field violations; UNAVAILABLE carries google.rpc.RetryInfo when the service says when to try again,
and a write whose outcome is not known yet adds google.rpc.ErrorInfo{reason: OUTCOME_PENDING,
domain: itsm.v1, metadata: {ticket_id, request_id}}. Anything else is a bug: INTERNAL with a
reference to the log line.
"""

from __future__ import annotations

import logging
import math
import uuid

import grpc
from google.protobuf import any_pb2, duration_pb2, message
from google.rpc import code_pb2, error_details_pb2, status_pb2

from server.domain import errors

log = logging.getLogger("itsm.server")

DOMAIN = "itsm.v1"
OUTCOME_PENDING = "OUTCOME_PENDING"

_CODES: dict[type[errors.GatewayError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.RequestIdReused: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.OutcomePending: grpc.StatusCode.UNAVAILABLE,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
}

Trailers = tuple[tuple[str, bytes], ...]


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str, Trailers]:
    if isinstance(exc, errors.StoreUnavailable):
        log.error("database unavailable: %s", exc)
        text = "the gateway's database is unavailable; retry later"
        code = grpc.StatusCode.UNAVAILABLE
        return code, text, _trailers(code, text, [_retry(1.0)])
    if isinstance(exc, errors.GatewayError):
        code = _CODES.get(type(exc), grpc.StatusCode.INTERNAL)
        return code, str(exc), _trailers(code, str(exc), _details(exc))
    ref = uuid.uuid4().hex[:12]
    log.error("unhandled error ref=%s", ref, exc_info=exc)
    return grpc.StatusCode.INTERNAL, f"internal error (ref {ref})", ()


def _details(exc: errors.GatewayError) -> list[message.Message]:
    if isinstance(exc, errors.InvalidArgument) and exc.violations:
        return [
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description, reason=v.reason
                    )
                    for v in exc.violations
                ]
            )
        ]
    details: list[message.Message] = []
    if isinstance(exc, errors.OutcomePending):
        details.append(
            error_details_pb2.ErrorInfo(
                reason=OUTCOME_PENDING,
                domain=DOMAIN,
                metadata={"ticket_id": exc.ticket_id, "request_id": exc.request_id},
            )
        )
    if isinstance(exc, errors.Unavailable) and exc.retry_after_seconds is not None:
        details.append(_retry(exc.retry_after_seconds))
    return details


def _retry(seconds: float) -> error_details_pb2.RetryInfo:
    whole = math.floor(max(seconds, 0.0))
    delay = duration_pb2.Duration(seconds=whole, nanos=int((max(seconds, 0.0) - whole) * 1e9))
    return error_details_pb2.RetryInfo(retry_delay=delay)


def _trailers(code: grpc.StatusCode, text: str, details: list[message.Message]) -> Trailers:
    if not details:
        return ()
    packed = []
    for detail in details:
        wrapped = any_pb2.Any()
        wrapped.Pack(detail)
        packed.append(wrapped)
    status = status_pb2.Status(code=_CODE_NUMBERS[code], message=text, details=packed)
    return (("grpc-status-details-bin", status.SerializeToString()),)


_CODE_NUMBERS = {code: code.value[0] for code in grpc.StatusCode}
assert _CODE_NUMBERS[grpc.StatusCode.INVALID_ARGUMENT] == code_pb2.INVALID_ARGUMENT
