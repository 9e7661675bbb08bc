"""Field rules and request limits: what a canonical field may hold, and how big a request may be.

Plain values built from the configuration (server/runtime/config.py); validation, templates and
payload building read them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

FieldType = Literal["string", "int", "list"]


@dataclass(frozen=True)
class FieldRule:
    """One canonical field of one platform, and the rules its value must meet."""

    name: str  # canonical name, e.g. "summary"
    path: tuple[str, ...]  # where it goes in the platform payload, e.g. ("fields", "project", "key")
    type: FieldType = "string"
    required: bool = False
    max_length: int | None = None  # characters; for a list, per element
    enum: tuple[str, ...] | None = None  # allowed values; for a list, per element
    pattern: re.Pattern[str] | None = None  # full match; for a list, per element
    max_items: int | None = None  # list only
    item_key: str | None = None  # list only: send [{item_key: value}] (Jira components) not [value]
    minimum: int | None = None  # int only
    maximum: int | None = None  # int only
    default: str | None = None  # applied when the caller leaves the field out
    description: str = ""
    immutable: bool = False  # the platform does not let it change after creation (Jira project)
    journal: bool = False  # appends to the journal (ServiceNow work_notes): creation only, then comments


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may carry and on the server that takes it."""

    max_concurrent_rpcs: int = 2000
    max_message_bytes: int = 1024 * 1024
    max_field_value_chars: int = 32 * 1024
    max_fields: int = 64
    max_variables_bytes: int = 64 * 1024
    shutdown_drain_seconds: float = 1.0
    shutdown_grace_seconds: float = 10.0
    max_connection_age_seconds: float = 300.0  # callers reconnect, so new replicas get their share
