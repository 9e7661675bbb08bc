"""The Connect protocol's unary calls (connectrpc.com/docs/protocol): codecs, timeouts, errors.

A request is POST /<package>.<Service>/<Method> with Content-Type application/json (the canonical
proto3 JSON mapping) or application/proto (binary), the bare message as the body, an optional
Connect-Timeout-Ms. A success is HTTP 200 with the response in the same codec. An error is the HTTP
status of its code and a JSON body:

    {"code": "invalid_argument", "message": "...",
     "details": [{"type": "google.rpc.BadRequest", "value": "<unpadded base64>", "debug": {...}}]}

whose details are the google.rpc details the gRPC status carries in grpc-status-details-bin; "debug" is
the detail as JSON, for people reading curl output (clients decode "value").
"""

from __future__ import annotations

import base64
import json
from typing import Any, Final

import grpc
from google.protobuf import any_pb2, descriptor_pool, json_format, message, message_factory
from google.rpc import status_pb2

from server.transport.request_checks import Malformed
from server.transport.web_context import Metadata

JSON: Final = "application/json"
PROTO: Final = "application/proto"
CONTENT_TYPES: Final = frozenset({JSON, PROTO})
DETAILS_TRAILER: Final = "grpc-status-details-bin"
MAX_TIMEOUT_DIGITS: Final = 10
_MAX_REASON: Final = 400
_WELL_KNOWN: Final = "google.protobuf."  # Struct, Value, wrappers...: their JSON need not be an object

# gRPC status -> (Connect code, HTTP status), from the protocol's error code table.
CODES: Final[dict[grpc.StatusCode, tuple[str, int]]] = {
    grpc.StatusCode.OK: ("ok", 200),
    grpc.StatusCode.CANCELLED: ("canceled", 499),
    grpc.StatusCode.UNKNOWN: ("unknown", 500),
    grpc.StatusCode.INVALID_ARGUMENT: ("invalid_argument", 400),
    grpc.StatusCode.DEADLINE_EXCEEDED: ("deadline_exceeded", 504),
    grpc.StatusCode.NOT_FOUND: ("not_found", 404),
    grpc.StatusCode.ALREADY_EXISTS: ("already_exists", 409),
    grpc.StatusCode.PERMISSION_DENIED: ("permission_denied", 403),
    grpc.StatusCode.RESOURCE_EXHAUSTED: ("resource_exhausted", 429),
    grpc.StatusCode.FAILED_PRECONDITION: ("failed_precondition", 400),
    grpc.StatusCode.ABORTED: ("aborted", 409),
    grpc.StatusCode.OUT_OF_RANGE: ("out_of_range", 400),
    grpc.StatusCode.UNIMPLEMENTED: ("unimplemented", 501),
    grpc.StatusCode.INTERNAL: ("internal", 500),
    grpc.StatusCode.UNAVAILABLE: ("unavailable", 503),
    grpc.StatusCode.DATA_LOSS: ("data_loss", 500),
    grpc.StatusCode.UNAUTHENTICATED: ("unauthenticated", 401),
}


class ProtocolError(Exception):
    """A request the protocol itself refuses (a malformed timeout header): INVALID_ARGUMENT."""


def timeout_seconds(value: str | None) -> float | None:
    """Connect-Timeout-Ms: a positive integer of at most 10 digits, in milliseconds."""
    if value is None:
        return None
    if not value.isdigit() or not value.isascii() or len(value) > MAX_TIMEOUT_DIGITS:
        raise ProtocolError(
            f"Connect-Timeout-Ms must be a number of at most {MAX_TIMEOUT_DIGITS} digits, got {value[:20]!r}"
        )
    return int(value) / 1000


def parse_json(body: bytes, request_class: type[message.Message]) -> message.Message | Malformed:
    """The canonical JSON mapping, strictly: an unknown field is refused, not ignored; so are a
    duplicate key and a top-level value that is not an object (json_format.Parse reads [] as {})."""
    request = request_class()
    name = request_class.DESCRIPTOR.full_name
    try:
        value = json.loads(body.decode("utf-8"), object_pairs_hook=_refuse_duplicates)
        if not isinstance(value, dict) and not name.startswith(_WELL_KNOWN):
            raise ValueError(f"expected a JSON object, got {type(value).__name__}")
        json_format.ParseDict(value, request)  # ignore_unknown_fields stays False on purpose
    except Exception as exc:  # ParseError, UnicodeDecodeError, RecursionError: the caller's bytes
        # The reason may quote the caller's text, lone surrogates included (JSON can escape one):
        # they are shown escaped, as the answer must be UTF-8.
        reason = _printable(" ".join(str(exc).split()) or type(exc).__name__)
        if len(reason) > _MAX_REASON:
            reason = reason[:_MAX_REASON] + "..."
        return Malformed(name, f"invalid JSON: {reason}")
    return request


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise ValueError(f"duplicate key {key[:64]!r}")
        found[key] = value
    return found


def to_json(response: message.Message) -> bytes:
    return json.dumps(json_format.MessageToDict(response), separators=(",", ":"), ensure_ascii=False).encode()


def error_body(code: grpc.StatusCode, text: str, trailers: Metadata) -> bytes:
    error: dict[str, Any] = {"code": CODES[code][0]}
    if text:
        error["message"] = text
    details = error_details(trailers)
    if details:
        error["details"] = details
    return json.dumps(error, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "backslashreplace")


def http_status(code: grpc.StatusCode) -> int:
    return CODES[code][1]


def error_details(trailers: Metadata) -> list[dict[str, Any]]:
    """The google.rpc.Status details of grpc-status-details-bin, as Connect error details."""
    for key, value in trailers:
        if key == DETAILS_TRAILER and isinstance(value, bytes):
            try:
                status = status_pb2.Status.FromString(value)
            except Exception:
                return []
            return [_detail(packed) for packed in status.details]
    return []


def _detail(packed: any_pb2.Any) -> dict[str, Any]:
    name = packed.type_url.rsplit("/", 1)[-1]
    detail: dict[str, Any] = {"type": name, "value": unpadded_base64(packed.value)}
    try:
        unpacked = message_factory.GetMessageClass(descriptor_pool.Default().FindMessageTypeByName(name))()
        unpacked.ParseFromString(packed.value)
        detail["debug"] = json_format.MessageToDict(unpacked)
    except Exception:  # a detail type this process does not know still travels, undecoded
        pass
    return detail


def trailer_headers(trailers: Metadata) -> dict[str, str]:
    """Trailing metadata other than the details, as Connect's "trailer-" prefixed headers."""
    headers = {}
    for key, value in trailers:
        if key == DETAILS_TRAILER:
            continue
        text = unpadded_base64(value) if isinstance(value, bytes) else value
        headers[f"trailer-{key}"] = text
    return headers


def unpadded_base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")
