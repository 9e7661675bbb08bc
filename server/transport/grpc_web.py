"""gRPC-web (grpc/grpc doc/PROTOCOL-WEB.md): gRPC's framing over HTTP/1.1, trailers in the body.

Request and response bodies are length-prefixed messages (1 flag byte, 4 bytes big-endian length, the
message); the response ends with a trailer frame (flag 0x80) holding grpc-status, grpc-message and
grpc-status-details-bin as HTTP/1 header lines. Every answer is HTTP 200: the status is in the
trailers. The -text content types carry the same bytes base64-encoded, for clients that cannot read
binary bodies.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from typing import Final

import grpc

from server.transport.web_context import Metadata

BINARY: Final = frozenset({"application/grpc-web", "application/grpc-web+proto"})
TEXT: Final = frozenset({"application/grpc-web-text", "application/grpc-web-text+proto"})
CONTENT_TYPES: Final = BINARY | TEXT
_HEADER: Final = struct.Struct(">BI")
_COMPRESSED: Final = 0x01
_TRAILERS: Final = 0x80
_TIMEOUT: Final = re.compile(r"([0-9]{1,8})([HMSmun])")
_UNITS: Final = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
# grpc-message is percent-encoded outside printable ASCII, and '%' itself (PROTOCOL-HTTP2.md).
_UNSAFE: Final = re.compile(rb"[^\x20-\x24\x26-\x7e]")


class FrameError(Exception):
    """A request body that is not one well-formed message frame."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def timeout_seconds(value: str | None) -> float | None:
    """grpc-timeout: up to 8 digits and a unit (H, M, S, m, u, n)."""
    if value is None:
        return None
    match = _TIMEOUT.fullmatch(value)
    if match is None:
        raise FrameError(grpc.StatusCode.INVALID_ARGUMENT, f"malformed grpc-timeout {value[:20]!r}")
    return int(match.group(1)) * _UNITS[match.group(2)]


def decode_body(body: bytes, text: bool) -> bytes:
    if not text:
        return body
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise FrameError(grpc.StatusCode.INVALID_ARGUMENT, "the grpc-web-text body is not base64") from None


def unframe(body: bytes) -> bytes:
    """The one message of a unary request."""
    if len(body) < _HEADER.size:
        raise FrameError(grpc.StatusCode.INVALID_ARGUMENT, "the body is not a gRPC message frame")
    flags, length = _HEADER.unpack_from(body)
    if flags & _COMPRESSED:
        # No compression was negotiated (the server takes identity frames only): a compressed frame
        # is the caller's mistake, not a method this server lacks.
        raise FrameError(
            grpc.StatusCode.INVALID_ARGUMENT, "compressed messages are not accepted: send identity frames"
        )
    if flags != 0 or len(body) != _HEADER.size + length:
        raise FrameError(grpc.StatusCode.INVALID_ARGUMENT, "the body is not exactly one gRPC message frame")
    return body[_HEADER.size :]


def response_body(
    code: grpc.StatusCode, text_message: str, trailers: Metadata, payload: bytes | None
) -> bytes:
    """The data frame (when the call succeeded) and the trailer frame."""
    lines = [f"grpc-status:{code.value[0]}"]
    if text_message:
        lines.append(f"grpc-message:{percent_encode(text_message)}")
    for key, value in trailers:
        lines.append(f"{key}:{unpadded_base64(value) if isinstance(value, bytes) else value}")
    block = ("\r\n".join(lines) + "\r\n").encode("ascii", "replace")
    frames = b"" if payload is None else _HEADER.pack(0, len(payload)) + payload
    return frames + _HEADER.pack(_TRAILERS, len(block)) + block


def encode_body(body: bytes, text: bool) -> bytes:
    return base64.b64encode(body) if text else body


def percent_encode(text: str) -> str:
    raw = text.encode("utf-8", "backslashreplace")  # a lone surrogate is shown escaped, never raises
    return _UNSAFE.sub(lambda m: b"%%%02X" % m.group(0)[0], raw).decode("ascii")


def unpadded_base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")
