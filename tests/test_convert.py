"""Record -> protobuf conversion: timestamps as protobuf's own FromDatetime makes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf import timestamp_pb2

from server.domain.records import TicketRecord
from server.transport.convert import ticket_to_proto


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 12, 1, 11, 30, 5, 123456, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),  # before the epoch: nanos stay >= 0
        datetime(2026, 1, 1, 1, 0, 0, 999999, tzinfo=timezone(timedelta(hours=5))),
        datetime(2026, 6, 1, 0, 0, 0, 1),  # naive: UTC
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
def test_ticket_times_match_protobufs_conversion(value: datetime) -> None:
    expected = timestamp_pb2.Timestamp()
    expected.FromDatetime(value)
    record = TicketRecord(
        id="t", platform="jira", request_id="r", create_time=value, update_time=value, response_due=value
    )
    ticket = ticket_to_proto(record)
    assert ticket.create_time == expected and ticket.update_time == expected
    assert ticket.sla.response_due_time == expected
    assert not ticket.sla.HasField("resolved_time")
