import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Platform(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PLATFORM_UNSPECIFIED: _ClassVar[Platform]
    PLATFORM_SERVICENOW: _ClassVar[Platform]
    PLATFORM_JIRA: _ClassVar[Platform]

class TicketState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TICKET_STATE_UNSPECIFIED: _ClassVar[TicketState]
    TICKET_STATE_PENDING: _ClassVar[TicketState]
    TICKET_STATE_CREATED: _ClassVar[TicketState]
    TICKET_STATE_FAILED: _ClassVar[TicketState]

class SlaState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SLA_STATE_UNSPECIFIED: _ClassVar[SlaState]
    SLA_STATE_ON_TRACK: _ClassVar[SlaState]
    SLA_STATE_AT_RISK: _ClassVar[SlaState]
    SLA_STATE_BREACHED: _ClassVar[SlaState]
    SLA_STATE_MET: _ClassVar[SlaState]
PLATFORM_UNSPECIFIED: Platform
PLATFORM_SERVICENOW: Platform
PLATFORM_JIRA: Platform
TICKET_STATE_UNSPECIFIED: TicketState
TICKET_STATE_PENDING: TicketState
TICKET_STATE_CREATED: TicketState
TICKET_STATE_FAILED: TicketState
SLA_STATE_UNSPECIFIED: SlaState
SLA_STATE_ON_TRACK: SlaState
SLA_STATE_AT_RISK: SlaState
SLA_STATE_BREACHED: SlaState
SLA_STATE_MET: SlaState

class FieldViolation(_message.Message):
    __slots__ = ("field", "description", "reason")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    field: str
    description: str
    reason: str
    def __init__(self, field: _Optional[str] = ..., description: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Sla(_message.Message):
    __slots__ = ("state", "priority", "response_due_time", "resolution_due_time", "acknowledged_time", "resolved_time")
    STATE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_DUE_TIME_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_DUE_TIME_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGED_TIME_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_TIME_FIELD_NUMBER: _ClassVar[int]
    state: SlaState
    priority: str
    response_due_time: _timestamp_pb2.Timestamp
    resolution_due_time: _timestamp_pb2.Timestamp
    acknowledged_time: _timestamp_pb2.Timestamp
    resolved_time: _timestamp_pb2.Timestamp
    def __init__(self, state: _Optional[_Union[SlaState, str]] = ..., priority: _Optional[str] = ..., response_due_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resolution_due_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., acknowledged_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resolved_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
