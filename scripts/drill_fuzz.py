"""The fuzz drill: seeded, hostile calls to every RPC of itsm.v1 against `itsm-gateway serve` as a real
process (on the sandbox, so creates really go somewhere), on the gRPC port and on the web port
(Connect JSON, Connect binary and gRPC-web).

The requests come from the itsm.v1 descriptors (the generated *_pb2 modules), so a new field or RPC is
fuzzed without touching this file:

  message   well-formed but extreme messages: empty, strings near and over the size limits, unicode
            edge cases, control characters and NUL, out-of-range enums and page sizes, deep and wide
            google.protobuf.Struct values, random and mutated page tokens; a share start from a
            plausible request (a known platform, template, ticket id) so that calls get past
            validation and reach the platform and the store
  wire      raw bytes: bit flips, truncation, invalid UTF-8 in strings, Structs nested past what
            protobuf parses, huge length prefixes, bad varints, wrong wire types (sent through a
            generic method with identity serializers; on the web port as the body)
  json      (Connect JSON only) lone surrogates, wrong types, duplicate and unknown keys, deep
            nesting, non-UTF-8 and non-JSON bodies
  metadata  hostile credentials: none, the wrong scheme, an empty or oversized or unknown token, a
            read-only token on a write

The drill passes when no call came back UNKNOWN, INTERNAL, DATA_LOSS or UNIMPLEMENTED (Connect:
unknown, internal, data_loss, unimplemented; nor any HTTP 5xx from the web port), the server still
answers SERVING, its resident memory stayed under 1 GiB, its log holds no unhandled-error line
(level ERROR or CRITICAL, a traceback) and a normal create still succeeds afterwards.

    .venv/bin/python scripts/drill_fuzz.py                        # 100,000 calls, both ports
    .venv/bin/python scripts/drill_fuzz.py --calls 5000 --seed 7 --port-kind grpc

The database is --database-url (a PostgreSQL server URL: the drill makes its own database on it,
"<name>_fuzz", dropped first), or a fresh SQLite file when none is given. tests/test_drill_fuzz.py
runs a few thousand calls.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
import grpc
from google.protobuf import descriptor, json_format, message, message_factory, struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "gen")]

from itsm.v1 import common_pb2, template_service_pb2, ticket_service_pb2  # noqa: E402
from sandbox import RunningSandbox, SandboxConfig, start_sandbox  # noqa: E402
from server.runtime.devmode import sandbox_config_overrides  # noqa: E402

CONFIG = ROOT / "config" / "itsm_config.json"
SERVICES: Final = (
    ticket_service_pb2.DESCRIPTOR.services_by_name["TicketService"],
    template_service_pb2.DESCRIPTOR.services_by_name["TemplateService"],
)
WRITER_TOKEN: Final = "fuzz-writer-" + "w" * 20
READER_TOKEN: Final = "fuzz-reader-" + "r" * 20
TOKENS_FILE: Final = f"writer {WRITER_TOKEN} read,write\nreader {READER_TOKEN} read\n"
# Codes that mean the server failed, not the caller.
BAD_GRPC: Final = frozenset({"UNKNOWN", "INTERNAL", "DATA_LOSS", "UNIMPLEMENTED"})
BAD_CONNECT: Final = frozenset({"unknown", "internal", "data_loss", "unimplemented"})
RSS_LIMIT_KIB: Final = 1024 * 1024
KINDS: Final = ("message", "wire", "metadata", "json")
TRANSPORTS: Final = {
    "grpc": ("grpc",),
    "web": ("connect-json", "connect-proto", "grpc-web"),
    "both": ("grpc", "connect-json", "connect-proto", "grpc-web"),
}
MAX_STRING_CHARS: Final = 32768  # limits.max_field_value_chars of the shipped config
MAX_MESSAGE_BYTES: Final = 1048576  # limits.max_message_bytes
UNICODE_EDGES: Final = (
    "\u0000", "a\x00b", "\x01", "\x1b[31mred", "\x7f", "a\x0bb", "\t\n\r", "\u0085", "\u00a0", "\u200b",
    "\u200d", "\u202e", "\u2028", "\u2029", "\ufeff", "\ufffd", "\uffff", "\ufffe", "\U0010ffff",
    "\U000e0001", "e\u0301\u0301\u0301", "\U0001f469\u200d\U0001f469\u200d\U0001f467", "\ud7ff",
    "\ue000", "\u0130", "\u00df", "\u212a", "\u0131", "%s%n%x", "{job.id}", "{", "}", "{{}}",
    "' OR 1=1 --", "../../etc/passwd", "<script>alert(1)</script>", "${jndi:ldap://x}", "\\", '"',
    "NaN", "-0", "1e309", " ", "\u3000", "\U0001d54f\U0001d55a",
)  # fmt: skip
INT32_EDGES: Final = (0, 1, -1, 2, 10, 99, 100, 101, 500, 1000, 1001, 2**31 - 1, -(2**31), 2**15, 65536)


# ------------------------------------------------------------------------------------------------ wire


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def length_delimited(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def nested_struct(depth: int) -> bytes:
    """A google.protobuf.Struct nested `depth` levels, as bytes (protobuf refuses to build it)."""
    inner = b""
    for _ in range(depth):
        value = length_delimited(5, inner)  # Value.struct_value
        inner = length_delimited(1, length_delimited(1, b"a") + length_delimited(2, value))
    return inner


def grpc_web_frame(body: bytes, flag: int = 0) -> bytes:
    return struct.pack(">BI", flag, len(body)) + body


# ------------------------------------------------------------------------------------------------ pools


@dataclass
class Pools:
    """What earlier answers and the configuration offer: plausible values for later requests."""

    templates: dict[str, tuple[str, list[str]]]  # name -> (platform, required variables)
    fields: dict[str, list[str]]  # platform -> its mapped field names
    ticket_ids: list[str] = field(default_factory=list)
    page_tokens: list[str] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)

    def keep(self, pool: list[str], value: str, limit: int = 500) -> None:
        if value and value not in pool:
            pool.append(value)
            if len(pool) > limit:
                del pool[: len(pool) - limit]


PLATFORMS: Final = {"jira": common_pb2.PLATFORM_JIRA, "servicenow": common_pb2.PLATFORM_SERVICENOW}
PLAUSIBLE_FIELDS: Final = {
    "jira": {"summary": "fuzz: disk full", "labels": "fuzz,drill", "priority": "High"},
    "servicenow": {"summary": "fuzz: disk full", "urgency": "2", "impact": "3"},
}


# ------------------------------------------------------------------------------------------------ generator


class Generator:
    """Seeded requests, from the descriptors."""

    def __init__(self, seed: int, pools: Pools) -> None:
        self.rng = random.Random(seed)
        self.pools = pools

    # ---- scalars

    def string(self, name: str = "") -> str:
        r, pools = self.rng, self.pools
        roll = r.random()
        if roll < 0.12:
            return ""
        if roll < 0.30:
            return r.choice(UNICODE_EDGES) + self.ascii(r.randint(0, 8))
        if roll < 0.40:
            return "".join(r.choice(UNICODE_EDGES) for _ in range(r.randint(1, 6)))
        if roll < 0.47:  # near and over the per-value limit
            size = r.choice((MAX_STRING_CHARS - 1, MAX_STRING_CHARS, MAX_STRING_CHARS + 1, 4096, 65537))
            return r.choice(("x", "\u00e9", "\U0001f600", "\u0000", "\ud7ff")) * size
        if roll < 0.475:  # near and over the message size limit
            return "y" * r.choice((MAX_MESSAGE_BYTES - 64, MAX_MESSAGE_BYTES + 1, 2 * MAX_MESSAGE_BYTES))
        if roll < 0.55:
            return self.random_unicode(r.randint(1, 40))
        if roll < 0.75:
            if name.endswith("token") and pools.page_tokens:
                return self.mutated_token()
            if name == "id" and pools.ticket_ids:
                return r.choice(pools.ticket_ids)
            if name in ("name", "template_name") and pools.templates:
                return r.choice(list(pools.templates))
            if name == "request_id" and pools.request_ids and r.random() < 0.3:
                return r.choice(pools.request_ids)
            return self.ascii(r.randint(1, 24))
        return self.ascii(r.randint(1, 64))

    def ascii(self, n: int) -> str:
        return "".join(self.rng.choice("abcdefghijklmnopqrstuvwxyz0123456789-_.:/ ") for _ in range(n))

    def random_unicode(self, n: int) -> str:
        out = []
        for _ in range(n):
            point = self.rng.choice(
                (
                    self.rng.randint(0, 0x7F),
                    self.rng.randint(0x80, 0xD7FF),
                    self.rng.randint(0xE000, 0x10FFFF),
                )
            )
            out.append(chr(point))
        return "".join(out)

    def mutated_token(self) -> str:
        r = self.rng
        token = r.choice(self.pools.page_tokens)
        how = r.randrange(7)
        if how == 0:
            return token
        if how == 1 and token:
            i = r.randrange(len(token))
            return token[:i] + r.choice("AZaz09+/=_-.!") + token[i + 1 :]
        if how == 2:
            return token[: r.randrange(len(token) + 1)]
        if how == 3:
            return token + r.choice(("A", "==", "x" * 5000, "\u00e9"))
        if how == 4:
            return base64.urlsafe_b64encode(r.randbytes(r.randint(0, 200))).decode()
        if how == 5:
            raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)) if token else b"")
            if raw:
                raw[r.randrange(len(raw))] ^= 1 << r.randrange(8)
            return base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
        return token[::-1]

    def integer(self, bits: int = 32, signed: bool = True) -> int:
        r = self.rng
        if r.random() < 0.7:
            value = r.choice(INT32_EDGES)
        else:
            value = r.randint(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        if not signed:
            value = abs(value) % (2**bits)
        return value

    def enum_value(self, enum: descriptor.EnumDescriptor) -> int:
        r = self.rng
        if r.random() < 0.7:
            return r.choice(enum.values).number
        return r.choice((-1, len(enum.values), 99, 2**31 - 1, -(2**31), r.randint(-1000, 1000)))

    # ---- Struct values

    def struct_value(self, depth: int) -> Any:
        r = self.rng
        roll = r.random()
        if depth <= 0 or roll < 0.45:
            return r.choice(
                (None, True, False, 0, -1, 1.5, 1e308, -1e308, 2**53 + 1, self.string(), self.string())
            )
        if roll < 0.75:
            return {self.string() or "k": self.struct_value(depth - 1) for _ in range(r.randint(0, 4))}
        return [self.struct_value(depth - 1) for _ in range(r.randint(0, 4))]

    def struct(self, target: struct_pb2.Struct, plausible: dict[str, Any] | None = None) -> None:
        r = self.rng
        roll = r.random()
        value: dict[str, Any] = dict(plausible or {})
        if roll < 0.35:
            value.update({self.string() or f"k{i}": self.struct_value(3) for i in range(r.randint(0, 6))})
        elif roll < 0.55:  # deep
            depth = r.randint(10, 60)
            inner: Any = self.string()
            for _ in range(depth):
                inner = {"a": inner} if r.random() < 0.7 else [inner]
            value["deep"] = inner
        elif roll < 0.75:  # wide
            value.update(
                {
                    f"k{i}": (self.string() if r.random() < 0.1 else i)
                    for i in range(r.choice((100, 1000, 5000)))
                }
            )
        else:
            for key in list(value)[: r.randint(0, 2)]:
                value[key] = self.struct_value(2)
        try:
            target.update(value)
        except (ValueError, TypeError, RecursionError):
            target.update(plausible or {})

    # ---- messages

    def message(self, desc: descriptor.Descriptor, depth: int = 0) -> message.Message:
        cls = message_factory.GetMessageClass(desc)
        msg = cls()
        if desc.full_name == "google.protobuf.Struct":
            self.struct(msg)  # type: ignore[arg-type]
            return msg
        for fd in desc.fields:
            if self.rng.random() < 0.35:
                continue
            try:
                self.fill(msg, fd, depth)
            except (ValueError, TypeError):  # a value the Python runtime will not hold: skip it
                msg.ClearField(fd.name)
        return msg

    def fill(self, msg: message.Message, fd: descriptor.FieldDescriptor, depth: int) -> None:
        r = self.rng
        target = getattr(msg, fd.name)
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            key_fd, value_fd = fd.message_type.fields_by_name["key"], fd.message_type.fields_by_name["value"]
            count = r.choice((0, 1, 2, 3, 5, 64, 65, 200))
            for i in range(count):
                key = self.scalar(key_fd) if r.random() < 0.5 else self.field_name(i)
                if value_fd.message_type is None:
                    target[key] = self.scalar(value_fd)
                else:
                    target[key].CopyFrom(self.message(value_fd.message_type, depth + 1))
            return
        if fd.is_repeated:
            for _ in range(r.choice((0, 1, 2, 10))):
                if fd.message_type is not None:
                    target.add().CopyFrom(self.message(fd.message_type, depth + 1))
                else:
                    target.append(self.scalar(fd))
            return
        if fd.message_type is not None:
            if depth < 4:
                target.CopyFrom(self.message(fd.message_type, depth + 1))
            return
        setattr(msg, fd.name, self.scalar(fd))

    def field_name(self, i: int) -> str:
        names = [n for fields in self.pools.fields.values() for n in fields]
        return self.rng.choice(names) if names and self.rng.random() < 0.8 else f"field_{i}"

    def scalar(self, fd: descriptor.FieldDescriptor) -> Any:
        t = descriptor.FieldDescriptor
        if fd.type == t.TYPE_STRING:
            return self.string(fd.name)
        if fd.type == t.TYPE_BYTES:
            return self.rng.randbytes(self.rng.randint(0, 64))
        if fd.type == t.TYPE_BOOL:
            return self.rng.random() < 0.5
        if fd.type == t.TYPE_ENUM:
            return self.enum_value(fd.enum_type)
        if fd.type in (t.TYPE_DOUBLE, t.TYPE_FLOAT):
            return self.rng.choice((0.0, -0.0, 1e308, float("inf"), float("nan"), 3.5))
        if fd.type in (t.TYPE_UINT32, t.TYPE_FIXED32):
            return self.integer(32, signed=False)
        if fd.type in (t.TYPE_UINT64, t.TYPE_FIXED64):
            return self.integer(64, signed=False)
        if fd.type in (t.TYPE_INT64, t.TYPE_SINT64, t.TYPE_SFIXED64):
            return self.integer(64)
        return self.integer(32)

    def plausible(self, method: descriptor.MethodDescriptor) -> message.Message:
        """A request that would pass validation, as a caller would send it; then one field is made
        extreme, so that extreme values reach the platform calls and the store."""
        r, pools = self.rng, self.pools
        msg = message_factory.GetMessageClass(method.input_type)()
        platform = r.choice(list(PLATFORMS))
        values: dict[str, Any] = {
            "platform": PLATFORMS[platform],
            "request_id": f"fuzz-{uuid.UUID(int=r.getrandbits(128))}",
            "id": r.choice(pools.ticket_ids) if pools.ticket_ids else "",
            "page_size": r.choice((0, 1, 10, 100)),
            "page_token": r.choice(pools.page_tokens) if pools.page_tokens and r.random() < 0.5 else "",
            "body": "a comment from the fuzz drill",
            "resolution": "fixed",
            "reason": "it came back",
            "job_id": f"job-{r.randint(0, 50)}",
            "dedup_key": f"dedup-{r.randint(0, 20)}" if r.random() < 0.3 else "",
        }
        template = r.choice(list(pools.templates)) if pools.templates else ""
        values["name"] = values["template_name"] = template
        for fd in method.input_type.fields:
            if fd.name in values and fd.message_type is None:
                try:
                    setattr(msg, fd.name, values[fd.name])
                except (TypeError, ValueError):
                    pass
            elif fd.name == "fields" and fd.message_type is not None:
                getattr(msg, fd.name).update(
                    PLAUSIBLE_FIELDS[platform]
                    if method.name != "UpdateTicket"
                    else {"description": "updated by the fuzz drill"}
                )
            elif fd.name == "variables":
                variables: dict[str, Any] = {}
                for path in pools.templates.get(template, ("", []))[1]:
                    node = variables
                    *parents, leaf = path.split(".")
                    for part in parents:
                        node = node.setdefault(part, {})
                    node[leaf] = "value"
                self.struct(getattr(msg, fd.name), variables) if r.random() < 0.5 else getattr(
                    msg, fd.name
                ).update(variables)
        if msg.DESCRIPTOR.fields and r.random() < 0.8:
            fd = r.choice(msg.DESCRIPTOR.fields)
            try:
                msg.ClearField(fd.name)
                self.fill(msg, fd, 0)
            except (ValueError, TypeError):
                pass
        if "request_id" in msg.DESCRIPTOR.fields_by_name:
            pools.keep(pools.request_ids, msg.request_id)  # type: ignore[attr-defined]
        return msg

    def request(self, method: descriptor.MethodDescriptor) -> message.Message:
        if self.rng.random() < 0.4:
            return self.plausible(method)
        return self.message(method.input_type)

    # ---- raw bytes

    def wire(self, method: descriptor.MethodDescriptor) -> bytes:
        r = self.rng
        base = bytearray(self.plausible(method).SerializeToString())
        numbers = [fd.number for fd in method.input_type.fields] or [1]
        how = r.randrange(12)
        if how == 0 and base:  # bit flips
            for _ in range(r.randint(1, 4)):
                base[r.randrange(len(base))] ^= 1 << r.randrange(8)
            return bytes(base)
        if how == 1 and base:
            return bytes(base[: r.randrange(len(base))])
        if how == 2:  # invalid UTF-8 in a string field
            return bytes(base) + length_delimited(
                r.choice(numbers),
                r.choice((b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"a\x80b", b"\xf4\x90\x80\x80")),
            )
        if how == 3:  # a Struct nested past what protobuf parses, wherever a message field is
            structs = [fd.number for fd in method.input_type.fields if fd.message_type is not None]
            return bytes(base) + length_delimited(
                r.choice(structs or numbers), nested_struct(r.choice((50, 99, 100, 101, 128, 500)))
            )
        if how == 4:  # a huge length prefix
            return (
                bytes(base)
                + varint(r.choice(numbers) << 3 | 2)
                + varint(r.choice((2**31 - 1, 2**32, 2**63, 10**9)))
                + b"abc"
            )
        if how == 5:  # an overlong varint
            return varint(r.choice(numbers) << 3) + b"\xff" * r.randint(10, 20) + b"\x01"
        if how == 6:  # wrong wire type
            return (
                bytes(base)
                + bytes([r.choice(numbers) << 3 | r.choice((0, 1, 3, 4, 5, 6, 7))])
                + r.randbytes(r.randint(0, 9))
            )
        if how == 7:
            return r.randbytes(r.randint(0, 64))
        if how == 8:  # field number 0, and numbers past the maximum
            return bytes(base) + r.choice((b"\x02\x01a", varint((2**29) << 3 | 2) + b"\x01a", b"\x00"))
        if how == 9:  # unknown fields, which proto3 keeps: must be ignored
            return bytes(base) + length_delimited(r.randint(100, 10000), r.randbytes(r.randint(0, 32)))
        if how == 10:  # the same field many times
            return bytes(base) + length_delimited(r.choice(numbers), b"x") * r.randint(2, 2000)
        return b""

    # ---- JSON

    def json_body(self, method: descriptor.MethodDescriptor) -> bytes:
        r = self.rng
        msg = self.request(method)
        try:
            value: Any = json_format.MessageToDict(msg)
        except Exception:
            value = {}
        how = r.randrange(14)
        if how <= 3:
            return json.dumps(value).encode()
        if how == 4:  # a lone surrogate, where JSON (and only JSON) allows one
            text = json.dumps(value)
            surrogate = r.choice(("\\ud800", "\\udfff", "\\udbff\\u0041", "\\ud83d"))
            key = r.choice([fd.json_name for fd in method.input_type.fields] or ["x"])
            if r.random() < 0.5:
                return (f'{{"{key}":"a{surrogate}b"}}').encode()
            return text.replace('"', '"' + surrogate, 2).encode() if '"' in text else b'"\\ud800"'
        if how == 5:  # a wrong type
            fd = r.choice(method.input_type.fields) if method.input_type.fields else None
            if fd is not None:
                value[fd.json_name] = r.choice(
                    (None, 1, -1, 1.5, "x", [], {}, True, 2**70, [1, 2], {"a": None})
                )
            return json.dumps(value).encode()
        if how == 6:
            value[r.choice(("unknown", "Platform", "platform_", "__proto__", ""))] = 1
            return json.dumps(value).encode()
        if how == 7:  # duplicate keys
            key = r.choice([fd.json_name for fd in method.input_type.fields] or ["x"])
            return (f'{{"{key}":"a","{key}":"b"}}').encode()
        if how == 8:  # deep nesting
            depth = r.choice((100, 1000, 10000, 100000))
            opener, closer = r.choice((("[", "]"), ('{"a":', "}")))
            key = r.choice([fd.json_name for fd in method.input_type.fields] or ["x"])
            return (f'{{"{key}":' + opener * depth + "1" + closer * depth + "}").encode()
        if how == 9:  # numbers out of every range
            fd = r.choice(method.input_type.fields) if method.input_type.fields else None
            literal = r.choice(
                (
                    "1e400",
                    "-1e400",
                    "99999999999999999999999",
                    "-0",
                    "1.5",
                    "NaN",
                    "Infinity",
                    '"12"',
                    '"PLATFORM_NONE"',
                )
            )
            return ('{{"{}":{}}}'.format(fd.json_name if fd else "x", literal)).encode()
        if how == 10:
            return r.choice(
                (
                    b"",
                    b"null",
                    b"[]",
                    b'"s"',
                    b"1",
                    b"{",
                    b"{}}",
                    b"\xef\xbb\xbf{}",
                    b"\xff\xfe{}",
                    b'{"a\x00":1}',
                )
            )
        if how == 11:
            return r.randbytes(r.randint(0, 64))
        if how == 12:  # an enum by an unknown name
            fd = next((f for f in method.input_type.fields if f.enum_type is not None), None)
            if fd is not None:
                value[fd.json_name] = r.choice(("PLATFORM_BOGUS", "platform_jira", "", "1", 1, 99))
            return json.dumps(value).encode()
        return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")

    # ---- metadata

    def hostile_authorization(self, write: bool) -> tuple[str | None, str]:
        """(the Authorization value or None, what it is)."""
        r = self.rng
        choices: list[tuple[str | None, str]] = [
            (None, "none"),
            (f"Basic {base64.b64encode(b'user:pass').decode()}", "wrong-scheme"),
            ("Bearer", "empty"),
            ("Bearer ", "empty"),
            (f"Bearer {'t' * r.choice((17, 4096, 7000))}", "unknown"),
            (f"Bearer {'t' * r.choice((9000, 20000, 70000))}", "oversized"),
            (f"Bearer {WRITER_TOKEN}x", "unknown"),
            (f"bearer {WRITER_TOKEN[:-1]}", "unknown"),
            (f"Token {WRITER_TOKEN}", "wrong-scheme"),
            (f"Bearer  {WRITER_TOKEN} ", "writer"),
            (f"Bearer {READER_TOKEN}", "reader"),
        ]
        if write:
            choices += [(f"Bearer {READER_TOKEN}", "reader")] * 3
        return r.choice(choices)


# ------------------------------------------------------------------------------------------------ results


@dataclass
class FuzzResult:
    calls: int = 0
    elapsed: float = 0.0
    by_rpc: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    by_status: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)  # the first few bad answers, described
    bad_calls: int = 0
    max_rss_kib: int = 0
    final_rss_kib: int = 0
    serving: bool = False
    final_create: str = ""
    log_errors: list[str] = field(default_factory=list)
    log_lines: int = 0

    @property
    def passed(self) -> bool:
        return (
            self.bad_calls == 0
            and self.serving
            and self.max_rss_kib < RSS_LIMIT_KIB
            and not self.log_errors
            and self.final_create == "OK"
        )

    def note(self, rpc: str, status: str, bad: bool, what: str) -> None:
        self.calls += 1
        self.by_rpc[rpc][status] += 1
        self.by_status[status] += 1
        if bad:
            self.bad_calls += 1
            if len(self.failures) < 30:
                self.failures.append(f"{rpc} {status}: {what}")

    def summary(self) -> str:
        statuses = sorted(self.by_status)
        lines = [f"{self.calls} calls in {self.elapsed:.1f} s ({self.calls / max(self.elapsed, 1e-9):.0f}/s)"]
        width = max((len(r) for r in self.by_rpc), default=10)
        lines.append("per status: " + ", ".join(f"{s} {self.by_status[s]}" for s in statuses))
        lines.append("per RPC:")
        for rpc in sorted(self.by_rpc):
            counts = self.by_rpc[rpc]
            lines.append(
                f"  {rpc:<{width}} {sum(counts.values()):>7}  "
                + ", ".join(f"{s} {n}" for s, n in sorted(counts.items()))
            )
        lines.append(
            f"server RSS: max {self.max_rss_kib / 1024:.0f} MiB, "
            f"at the end {self.final_rss_kib / 1024:.0f} MiB (limit 1024 MiB)"
        )
        lines.append(
            f"health afterwards: {'SERVING' if self.serving else 'NOT SERVING'}; "
            f"a normal create afterwards: {self.final_create}"
        )
        lines.append(f"server log: {self.log_lines} lines, {len(self.log_errors)} unhandled-error lines")
        # The first in full (its traceback is what a failed CI run needs), the rest cut short.
        lines.extend(f"  LOG {line if i == 0 else line[:400]}" for i, line in enumerate(self.log_errors[:10]))
        lines.append(f"server faults (UNKNOWN/INTERNAL/DATA_LOSS/UNIMPLEMENTED, HTTP 5xx): {self.bad_calls}")
        lines.extend(f"  BAD {f[:400]}" for f in self.failures)
        lines.append("PASS" if self.passed else "FAIL")
        return "\n".join(lines)


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def unhandled_lines(text: str) -> list[str]:
    """Log lines that mean an exception escaped: level ERROR/CRITICAL, a traceback, "unhandled"."""
    found = []
    for line in text.splitlines():
        lowered = line.lower()
        if (
            '"level":"error"' in lowered
            or '"level":"critical"' in lowered
            or "traceback" in lowered
            or "unhandled" in lowered
        ):
            found.append(line)
    return found


# ------------------------------------------------------------------------------------------------ the gateway


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    grpc_port: int
    web_port: int
    metrics_port: int
    log_path: Path


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gateway_config(
    urls: dict[str, str], directory: Path, mutate: Callable[[dict[str, Any]], None] | None = None
) -> tuple[Path, dict[str, str]]:
    raw = json.loads(CONFIG.read_text())
    raw, env = sandbox_config_overrides(raw, urls)
    raw["limits"]["shutdown_drain_seconds"] = 0
    if mutate is not None:
        mutate(raw)
    path = directory / "itsm_config.json"
    path.write_text(json.dumps(raw))
    return path, env


async def prepare_database(url: str | None, directory: Path, suffix: str) -> str:
    """A fresh database: "<name>_<suffix>" on the PostgreSQL server of `url`, or a SQLite file."""
    if not url:
        return f"sqlite+aiosqlite:///{directory / 'itsm.db'}"
    import asyncpg
    from sqlalchemy.engine import make_url

    from server.storage.migrate import migrate

    server = make_url(url)
    name = f"{(server.database or 'itsm')[:40]}_{suffix}"
    admin = await asyncpg.connect(
        host=server.host,
        port=server.port,
        user=server.username,
        password=server.password,
        database="postgres",
    )
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    fresh = server.set(database=name).render_as_string(hide_password=False)
    await migrate(fresh)
    return fresh


def start_serve(
    config: Path,
    env: dict[str, str],
    database_url: str,
    directory: Path,
    extra: tuple[str, ...] = (),
    tokens: str = TOKENS_FILE,
) -> Served:
    tokens_path = directory / "tokens"
    tokens_path.write_text(tokens)
    grpc_port, web_port, metrics_port = free_port(), free_port(), free_port()
    log_path = directory / "gateway.log"
    full_env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "gen")])}
    full_env.pop("ITSM_AUTH_TOKENS_FILE", None)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "server.runtime.cli",
                "serve",
                "--config",
                str(config),
                "--auth-tokens-file",
                str(tokens_path),
                "--bind",
                "127.0.0.1",
                "--grpc-port",
                str(grpc_port),
                "--web-port",
                str(web_port),
                "--metrics-port",
                str(metrics_port),
                "--database-url",
                database_url,
                *extra,
            ],
            cwd=directory,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return Served(process, grpc_port, web_port, metrics_port, log_path)


async def wait_serving(served: Served, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    async with grpc.aio.insecure_channel(f"127.0.0.1:{served.grpc_port}") as channel:
        while time.monotonic() < deadline:
            if served.process.poll() is not None:
                raise RuntimeError(f"the gateway exited: {served.log_path.read_text()[-3000:]}")
            if await health(channel):
                return
            await asyncio.sleep(0.2)
    raise RuntimeError("the gateway did not become SERVING")


async def health(channel: grpc.aio.Channel) -> bool:
    try:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    except grpc.RpcError:
        return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def stop_serve(served: Served, timeout: float = 30) -> None:
    if served.process.poll() is None:
        served.process.terminate()
        try:
            served.process.wait(timeout)
        except subprocess.TimeoutExpired:
            served.process.kill()
            served.process.wait()


# ------------------------------------------------------------------------------------------------ the calls


class Caller:
    def __init__(self, served: Served, result: FuzzResult, gen: Generator) -> None:
        self.served = served
        self.result = result
        self.gen = gen
        self.base = f"http://127.0.0.1:{served.web_port}"

    async def one(
        self,
        channel: grpc.aio.Channel,
        session: aiohttp.ClientSession,
        transport: str,
        path: str,
        method: descriptor.MethodDescriptor,
    ) -> None:
        gen, r = self.gen, self.gen.rng
        kinds = [k for k in KINDS if k != "json" or transport == "connect-json"]
        kind = r.choices(kinds, weights=[5, 3, 1, 3][: len(kinds)])[0]
        write = method.name not in (
            "GetTicket",
            "ListTickets",
            "ValidateTicket",
            "ListTemplates",
            "GetTemplate",
            "RenderTemplate",
        )
        authorization: str | None = f"Bearer {WRITER_TOKEN}"
        who = "writer"
        if kind == "metadata":
            authorization, who = gen.hostile_authorization(write)
        msg: message.Message | None = None
        if kind == "json":
            body = gen.json_body(method)
        elif kind == "wire":
            body = gen.wire(method)
        else:
            msg = gen.request(method) if kind == "message" else gen.plausible(method)
            if transport == "connect-json":
                try:
                    body = json.dumps(json_format.MessageToDict(msg), ensure_ascii=r.random() < 0.5).encode()
                except Exception:
                    body = b"{}"
            else:
                body = msg.SerializeToString()
        what = f"{transport} {kind} auth={who} body={body[:160]!r} ({len(body)} bytes)"
        rpc = f"{method.containing_service.name}.{method.name}"
        if transport == "grpc":
            status, answer = await self.grpc_call(channel, path, body, authorization)
            bad = status in BAD_GRPC
        elif transport == "grpc-web":
            status, answer, bad = await self.grpc_web_call(session, path, body, authorization)
        else:
            status, answer, bad = await self.connect_call(session, path, body, authorization, transport)
        if answer is not None:
            self.harvest(method, answer)
        self.result.note(rpc, f"{transport}:{status}", bad, what)

    async def grpc_call(
        self, channel: grpc.aio.Channel, path: str, body: bytes, authorization: str | None
    ) -> tuple[str, bytes | None]:
        metadata = (("authorization", authorization),) if authorization is not None else ()
        call = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
        try:
            answer = await call(body, metadata=metadata, timeout=60)
        except grpc.RpcError as exc:
            return exc.code().name, None  # type: ignore[attr-defined]
        except ValueError:  # metadata the client itself refuses to send
            return "CLIENT_REFUSED", None
        return "OK", answer

    def headers(self, content_type: str, authorization: str | None) -> dict[str, str]:
        headers = {"Content-Type": content_type}
        if authorization is not None:
            headers["Authorization"] = authorization
        roll = self.gen.rng.random()
        if roll < 0.03:
            headers["Connect-Timeout-Ms"] = self.gen.rng.choice(
                ("0", "-1", "abc", "99999999999", "1", "\u0661")
            )
        elif roll < 0.05:
            headers["Connect-Protocol-Version"] = self.gen.rng.choice(("1", "2", ""))
        elif roll < 0.07:
            headers["grpc-timeout"] = self.gen.rng.choice(("1m", "0n", "abc", "999999999H", "5", "1S"))
        return headers

    async def connect_call(
        self,
        session: aiohttp.ClientSession,
        path: str,
        body: bytes,
        authorization: str | None,
        transport: str,
    ) -> tuple[str, bytes | None, bool]:
        content_type = "application/json" if transport == "connect-json" else "application/proto"
        try:
            async with session.post(
                self.base + path, data=body, headers=self.headers(content_type, authorization)
            ) as resp:
                data = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, UnicodeEncodeError, ValueError) as exc:
            return f"CLIENT_{type(exc).__name__}", None, False
        if status == 200:
            answer = None
            if transport == "connect-proto":
                answer = data
            return "ok", answer, False
        try:
            code = json.loads(data).get("code", f"http_{status}")
        except (ValueError, AttributeError):
            code = f"http_{status}"
        # A 503 or 504 carrying unavailable or deadline_exceeded is the protocol's mapping of a typed
        # code (a Connect-Timeout-Ms of 1 ms is answered deadline_exceeded, as on the gRPC port); any
        # other 5xx, or one without a Connect error body, is the server failing.
        typed = code in ("unavailable", "deadline_exceeded")
        return str(code), None, code in BAD_CONNECT or (status >= 500 and not typed)

    async def grpc_web_call(
        self, session: aiohttp.ClientSession, path: str, body: bytes, authorization: str | None
    ) -> tuple[str, bytes | None, bool]:
        r = self.gen.rng
        framed = grpc_web_frame(body)
        roll = r.random()
        if roll < 0.05:  # a frame that lies about its length, or is compressed, or comes twice
            framed = r.choice(
                (
                    struct.pack(">BI", 0, len(body) + r.randint(1, 100)) + body,
                    grpc_web_frame(body, 1),
                    framed + framed,
                    framed[: r.randint(0, 4)],
                    struct.pack(">BI", 0, 2**32 - 1) + body,
                    grpc_web_frame(body, 0x80),
                )
            )
        text = r.random() < 0.2
        content_type = "application/grpc-web-text" if text else "application/grpc-web+proto"
        payload = base64.b64encode(framed) if text else framed
        if text and r.random() < 0.05:
            payload = payload[:-1] + b"!"
        try:
            async with session.post(
                self.base + path, data=payload, headers=self.headers(content_type, authorization)
            ) as resp:
                data = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, UnicodeEncodeError, ValueError) as exc:
            return f"CLIENT_{type(exc).__name__}", None, False
        if status != 200:
            return f"http_{status}", None, status >= 500
        if text:
            try:
                data = base64.b64decode(data)
            except ValueError:
                return "undecodable", None, True
        answer, code = None, None
        offset = 0
        while offset + 5 <= len(data):
            flag, length = struct.unpack(">BI", data[offset : offset + 5])
            chunk = data[offset + 5 : offset + 5 + length]
            offset += 5 + length
            if flag & 0x80:
                for line in chunk.decode("latin-1").split("\r\n"):
                    key, _, value = line.partition(":")
                    if key.strip().lower() == "grpc-status":
                        code = int(value.strip())
            else:
                answer = chunk
        if code is None:
            return "no-trailers", None, True
        name = (
            grpc.StatusCode(_STATUS_BY_NUMBER[code]).name if code in _STATUS_BY_NUMBER else f"status_{code}"
        )
        return name, answer if code == 0 else None, name in BAD_GRPC

    def harvest(self, method: descriptor.MethodDescriptor, answer: bytes) -> None:
        try:
            reply = message_factory.GetMessageClass(method.output_type).FromString(answer)
        except Exception:
            return
        pools = self.gen.pools
        if "ticket" in reply.DESCRIPTOR.fields_by_name and reply.HasField("ticket"):  # type: ignore[attr-defined]
            pools.keep(pools.ticket_ids, reply.ticket.id)  # type: ignore[attr-defined]
        if "tickets" in reply.DESCRIPTOR.fields_by_name:
            for ticket in reply.tickets:  # type: ignore[attr-defined]
                pools.keep(pools.ticket_ids, ticket.id)
        token = getattr(reply, "next_page_token", "")
        if token:
            pools.keep(pools.page_tokens, token)


_STATUS_BY_NUMBER: Final = {code.value[0]: code.value for code in grpc.StatusCode}


async def normal_create(channel: grpc.aio.Channel) -> str:
    stub = channel.unary_unary(
        "/itsm.v1.TicketService/CreateTicket",
        request_serializer=ticket_service_pb2.CreateTicketRequest.SerializeToString,
        response_deserializer=ticket_service_pb2.CreateTicketResponse.FromString,
    )
    request = ticket_service_pb2.CreateTicketRequest(
        platform=common_pb2.PLATFORM_JIRA,
        request_id=f"after-fuzz-{uuid.uuid4()}",
        fields={"summary": "a normal create after the fuzz"},
    )
    try:
        reply = await stub(request, metadata=(("authorization", f"Bearer {WRITER_TOKEN}"),), timeout=60)
    except grpc.RpcError as exc:
        return f"{exc.code().name}: {exc.details()}"  # type: ignore[attr-defined]
    return "OK" if reply.ticket.id else "no ticket id"


def config_pools(config: Path) -> Pools:
    raw = json.loads(config.read_text())
    templates = {
        name: (t["platform"], list(t.get("required_variables", []))) for name, t in raw["templates"].items()
    }
    return Pools(templates=templates, fields={p: list(rules) for p, rules in raw["field_mapping"].items()})


async def fuzz(
    served: Served,
    calls: int,
    seed: int,
    port_kind: str,
    concurrency: int,
    pools: Pools,
    progress: bool = False,
) -> FuzzResult:
    result = FuzzResult()
    gen = Generator(seed, pools)
    caller = Caller(served, result, gen)
    methods = [(f"/{s.full_name}/{m.name}", m) for s in SERVICES for m in s.methods]
    transports = TRANSPORTS[port_kind]
    pid = served.process.pid
    started = time.monotonic()
    done = asyncio.Event()

    async def sample_rss() -> None:
        while not done.is_set():
            result.max_rss_kib = max(result.max_rss_kib, rss_kib(pid))
            try:
                await asyncio.wait_for(done.wait(), 1.0)
            except TimeoutError:
                pass

    options = [("grpc.max_receive_message_length", 16 * MAX_MESSAGE_BYTES)]
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{served.grpc_port}", options=options) as channel,
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency), timeout=aiohttp.ClientTimeout(total=60)
        ) as session,
    ):
        sampler = asyncio.create_task(sample_rss())
        queue = iter(range(calls))

        async def worker() -> None:
            for i in queue:
                path, method = gen.rng.choice(methods)
                transport = gen.rng.choice(transports)
                await caller.one(channel, session, transport, path, method)
                if progress and (i + 1) % 10000 == 0:
                    print(
                        f"  {i + 1} calls, {time.monotonic() - started:.0f} s, "
                        f"RSS {rss_kib(pid) / 1024:.0f} MiB, bad {result.bad_calls}",
                        flush=True,
                    )

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.elapsed = time.monotonic() - started
        done.set()
        await sampler
        result.serving = await health(channel)
        result.final_create = await normal_create(channel)
        result.final_rss_kib = rss_kib(pid)
        result.max_rss_kib = max(result.max_rss_kib, result.final_rss_kib)
    return result


async def run_fuzz(
    calls: int = 100_000,
    seed: int = 1,
    port_kind: str = "both",
    concurrency: int = 16,
    database_url: str | None = None,
    progress: bool = False,
) -> FuzzResult:
    """The whole drill: a sandbox, a fresh database, `serve` as a child process, the calls, the checks."""
    with tempfile.TemporaryDirectory(prefix="itsm-fuzz-") as tmp:
        directory = Path(tmp)
        sandbox: RunningSandbox = await start_sandbox(SandboxConfig.on_free_ports(seed=seed))
        served = None
        try:
            url = await prepare_database(database_url, directory, "fuzz")
            config, env = gateway_config(sandbox.urls, directory)
            served = start_serve(config, env, url, directory)
            await wait_serving(served)
            result = await fuzz(served, calls, seed, port_kind, concurrency, config_pools(config), progress)
        finally:
            if served is not None:
                stop_serve(served)
            await sandbox.stop()
        log = served.log_path.read_text(errors="replace")
        result.log_lines = log.count("\n")
        result.log_errors = unhandled_lines(log)
        return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--port-kind", choices=sorted(TRANSPORTS), default="both")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("ITSM_TEST_DATABASE_URL"),
        help="a PostgreSQL URL (the drill makes its own database beside it); default "
        "ITSM_TEST_DATABASE_URL, else SQLite",
    )
    args = parser.parse_args()
    print(
        f"fuzz: {args.calls} calls, seed {args.seed}, port kind {args.port_kind}, "
        f"concurrency {args.concurrency}",
        flush=True,
    )
    result = asyncio.run(
        run_fuzz(args.calls, args.seed, args.port_kind, args.concurrency, args.database_url, progress=True)
    )
    print(result.summary())
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
