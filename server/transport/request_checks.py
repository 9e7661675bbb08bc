"""What every request is checked for before a servicer sees it: that its bytes parse, and that no
string in it (map keys and Struct values included) carries NUL or another C0 control character other
than tab, newline and carriage return. Either is the caller's doing: INVALID_ARGUMENT, never UNKNOWN
or INTERNAL, and nothing is stored or sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from server.domain.validation import Violation, shown

# protobuf refuses Structs nested deeper than its own recursion limit while parsing; this bounds the
# walk below for messages built in-process (and names the problem when parsing did not).
MAX_DEPTH = 64
MAX_REPORTED = 20
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_STRING = FieldDescriptor.TYPE_STRING
_MESSAGE = FieldDescriptor.TYPE_MESSAGE


@dataclass(frozen=True)
class Malformed:
    """A request whose bytes did not parse, handed to the servicer's guard in its place."""

    message_type: str
    reason: str


def safe_parser(parse: Callable[[bytes], Any] | None, message_type: str) -> Callable[[bytes], Any]:
    """A request deserializer that never raises: a bad request becomes Malformed."""

    def parse_safely(data: bytes) -> Any:
        if parse is None:
            return data
        try:
            return parse(data)
        except Exception as exc:  # DecodeError, RecursionError...: whatever the bytes did to it
            return Malformed(message_type, _reason(exc))

    return parse_safely


def _reason(exc: Exception) -> str:
    text = str(exc)
    if "MaxDepth" in text or isinstance(exc, RecursionError):
        return "it is nested too deeply"
    if "utf-8" in text.lower() or "utf8" in text.lower():
        return "a string field is not valid UTF-8"
    return "its bytes are not a valid protobuf message (truncated, or a wrong length or type)"


def control_characters(message: Message) -> list[Violation]:
    """Every string (by field path) that holds a control character other than \\t, \\n, \\r."""
    found: list[Violation] = []
    _walk(message, "", found, 0)
    return found[:MAX_REPORTED]


def _walk(message: Message, path: str, found: list[Violation], depth: int) -> None:
    if depth > MAX_DEPTH:
        found.append(Violation(path or "request", f"nested more than {MAX_DEPTH} levels", "MAX_DEPTH"))
        return
    for field, value in message.ListFields():
        name = f"{path}.{field.name}" if path else field.name
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            _walk_map(field, value, name, found, depth)
        elif field.is_repeated:
            for index, item in enumerate(value):
                _check(field, item, f"{name}[{index}]", found, depth)
        else:
            _check(field, value, name, found, depth)
        if len(found) >= MAX_REPORTED:
            return


def _walk_map(field: FieldDescriptor, value: Any, name: str, found: list[Violation], depth: int) -> None:
    value_field = field.message_type.fields_by_name["value"]
    for key, item in value.items():
        key_name = f"{name}.{shown(str(key))}"
        if isinstance(key, str) and _CONTROL.search(key):
            found.append(_violation(key_name, "key"))
        _check(value_field, item, key_name, found, depth)


def _check(field: FieldDescriptor, value: Any, name: str, found: list[Violation], depth: int) -> None:
    if field.type == _STRING:
        if _CONTROL.search(value):
            found.append(_violation(name, "value"))
    elif field.type == _MESSAGE:
        _walk(value, name, found, depth + 1)


def _violation(name: str, what: str) -> Violation:
    return Violation(
        name, f"the {what} holds a control character (only tab, newline and carriage return may)", "PATTERN"
    )
