"""In-memory incident table with the instance's insert/update rules, and its journal.

Rules applied like a base instance: sys_ fields are system-owned, priority comes from the
impact x urgency lookup, state changes stamp resolved/closed fields, data policies make the
resolution fields mandatory, a Closed incident stays closed, and work notes / comments go to a
journal (the instance's sys_journal_field rows) instead of the record.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sandbox.servicenow import schema

FIRST_NUMBER = 10001
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"


def utc_timestamp() -> str:
    return datetime.now(UTC).strftime(TIMESTAMP_FORMAT)


@dataclass(frozen=True)
class SnUser:
    user_name: str

    @property
    def sys_id(self) -> str:
        # Stable per name, so opened_by survives restarts and matches across both auth methods.
        return hashlib.md5(f"sys_user:{self.user_name}".encode()).hexdigest()


@dataclass(frozen=True)
class JournalEntry:
    """One sys_journal_field row."""

    sys_id: str
    element_id: str  # the incident's sys_id
    element: str  # work_notes or comments
    value: str
    created_on: str
    created_by: str
    name: str = "incident"  # the table of the record the entry belongs to

    def columns(self) -> dict[str, str]:
        """The row as the Table API shows it (and as sysparm_query matches it)."""
        return {
            "element": self.element,
            "element_id": self.element_id,
            "name": self.name,
            "sys_created_by": self.created_by,
            "sys_created_on": self.created_on,
            "sys_id": self.sys_id,
            "value": self.value,
        }


@dataclass
class Incident:
    values: dict[str, str]
    journal: list[JournalEntry] = field(default_factory=list)  # oldest first

    @property
    def sys_id(self) -> str:
        return self.values["sys_id"]


class StoreFull(Exception):
    pass


class JournalFull(Exception):
    pass


class ClosedIncidentError(Exception):
    """A write moving a Closed incident to another state: the instance refuses it."""


class DataPolicyError(Exception):
    def __init__(self, missing_labels: list[str]) -> None:
        super().__init__(", ".join(missing_labels))
        self.missing_labels = missing_labels


def _as_field_string(value: Any) -> str:
    """The instance stores every value as a string; JSON scalars arrive typed from some clients."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict) and "value" in value:
        return _as_field_string(value["value"])
    if isinstance(value, int | float | str):
        return str(value)
    return str(value)


def split_input(body: Mapping[str, Any]) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Settable field values and journal notes from a request body.

    Unknown fields, sys_ fields and calculated fields are dropped silently, as the instance does.
    """
    values: dict[str, str] = {}
    notes: list[tuple[str, str]] = []
    for name, raw in body.items():
        if name.startswith("sys_") or name in schema.READ_ONLY_FIELDS:
            continue
        if not schema.is_known_field(name):
            continue
        text = _as_field_string(raw)
        if name in schema.JOURNAL_FIELDS:
            if text.strip():
                notes.append((name, text))
            continue
        values[name] = text
    return values, notes


class IncidentStore:
    def __init__(
        self,
        max_records: int,
        max_journal_entries: int,
        clock: Callable[[], str] = utc_timestamp,
    ) -> None:
        self._max_records = max_records
        self._max_journal = max_journal_entries
        self._clock = clock
        self._records: dict[str, Incident] = {}  # insertion order is creation order
        # Every incident's journal entries by sys_id, oldest first across incidents, so the
        # sys_journal_field table lists them in creation order without merging per-incident lists.
        self._journal: dict[str, JournalEntry] = {}
        self._next_number = FIRST_NUMBER

    def record_count(self) -> int:
        return len(self._records)

    def clear(self) -> None:
        self._records.clear()
        self._journal.clear()
        self._next_number = FIRST_NUMBER

    def all(self) -> list[Incident]:
        return list(self._records.values())

    def get(self, sys_id: str) -> Incident | None:
        return self._records.get(sys_id)

    def journal(self) -> list[JournalEntry]:
        return list(self._journal.values())

    def journal_entry(self, sys_id: str) -> JournalEntry | None:
        return self._journal.get(sys_id)

    def delete(self, sys_id: str) -> bool:
        incident = self._records.pop(sys_id, None)
        if incident is None:
            return False
        # The entries go with their record, so the journal table stays bounded by the records.
        for entry in incident.journal:
            self._journal.pop(entry.sys_id, None)
        return True

    def create(self, body: Mapping[str, Any], user: SnUser) -> Incident:
        if len(self._records) >= self._max_records:
            raise StoreFull
        values, notes = split_input(body)
        now = self._clock()
        record = dict(schema.INCIDENT_DEFAULTS)
        record.update(
            sys_id=uuid.uuid4().hex,
            number=f"INC{self._next_number:07d}",
            opened_at=now,
            opened_by=user.sys_id,
            sys_created_on=now,
            sys_created_by=user.user_name,
            sys_updated_on=now,
            sys_updated_by=user.user_name,
        )
        record.update(values)
        _apply_business_rules(record, "", values, user, now)
        _check_data_policy(record)
        incident = Incident(record)
        self._add_notes(incident, notes, user, now)
        self._records[incident.sys_id] = incident
        self._next_number += 1
        return incident

    def update(self, sys_id: str, body: Mapping[str, Any], user: SnUser) -> Incident | None:
        incident = self._records.get(sys_id)
        if incident is None:
            return None
        values, notes = split_input(body)
        if len(incident.journal) + len(notes) > self._max_journal:
            raise JournalFull
        previous_state = incident.values["state"]
        if previous_state == schema.CLOSED_STATE and _target_state(values, previous_state) != previous_state:
            raise ClosedIncidentError
        now = self._clock()
        record = dict(incident.values)
        record.update(values)
        _apply_business_rules(record, previous_state, values, user, now)
        _check_data_policy(record)  # before anything is kept: a refused update changes nothing
        record.update(
            sys_updated_on=now,
            sys_updated_by=user.user_name,
            sys_mod_count=_increment(record["sys_mod_count"]),
        )
        incident.values = record
        self._add_notes(incident, notes, user, now)
        return incident

    def _add_notes(self, incident: Incident, notes: list[tuple[str, str]], user: SnUser, now: str) -> None:
        for element, text in notes:
            entry = JournalEntry(uuid.uuid4().hex, incident.sys_id, element, text, now, user.user_name)
            incident.journal.append(entry)
            self._journal[entry.sys_id] = entry


def _target_state(sent: Mapping[str, str], current: str) -> str:
    """The state a write leads to, with legacy incident_state standing in for state."""
    if "state" in sent:
        return sent["state"]
    return sent.get("incident_state", current)


def _increment(counter: str) -> str:
    # Counters are client-settable strings; a garbage value restarts the count like the instance.
    return str(int(counter) + 1) if counter.isdigit() else "1"


def _apply_business_rules(
    record: dict[str, str], previous_state: str, sent: Mapping[str, str], user: SnUser, now: str
) -> None:
    # Legacy integrations set incident_state; the instance syncs it into state.
    state = record["state"] = _target_state(sent, record["state"])
    record["incident_state"] = state
    record["priority"] = schema.PRIORITY_MATRIX.get((record["impact"], record["urgency"]), "5")
    if state in schema.RESOLVED_STATES and previous_state not in schema.RESOLVED_STATES:
        record["resolved_at"] = record["resolved_at"] or now
        record["resolved_by"] = record["resolved_by"] or user.sys_id
    if state == schema.CLOSED_STATE and previous_state != schema.CLOSED_STATE:
        record["closed_at"] = now
        record["closed_by"] = user.sys_id
    if previous_state in schema.RESOLVED_STATES and state not in schema.RESOLVED_STATES:
        record["reopen_count"] = _increment(record["reopen_count"])
        record["reopened_time"] = now
        record["reopened_by"] = user.sys_id
        record["resolved_at"] = record["resolved_by"] = ""
    record["active"] = "false" if state in schema.INACTIVE_STATES else "true"


def _check_data_policy(record: Mapping[str, str]) -> None:
    mandatory = schema.MANDATORY_BY_STATE.get(record["state"], ())
    missing = [label for name, label in mandatory if not record.get(name, "").strip()]
    if missing:
        raise DataPolicyError(missing)
