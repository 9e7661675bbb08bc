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

class TicketStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TICKET_STATUS_UNSPECIFIED: _ClassVar[TicketStatus]
    TICKET_STATUS_OPEN: _ClassVar[TicketStatus]
    TICKET_STATUS_IN_PROGRESS: _ClassVar[TicketStatus]
    TICKET_STATUS_RESOLVED: _ClassVar[TicketStatus]
    TICKET_STATUS_CLOSED: _ClassVar[TicketStatus]
    TICKET_STATUS_CANCELLED: _ClassVar[TicketStatus]

class CommentVisibility(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMMENT_VISIBILITY_UNSPECIFIED: _ClassVar[CommentVisibility]
    COMMENT_VISIBILITY_PUBLIC: _ClassVar[CommentVisibility]
    COMMENT_VISIBILITY_INTERNAL: _ClassVar[CommentVisibility]

class CreateOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CREATE_OUTCOME_UNSPECIFIED: _ClassVar[CreateOutcome]
    CREATE_OUTCOME_CREATED: _ClassVar[CreateOutcome]
    CREATE_OUTCOME_REPLAYED: _ClassVar[CreateOutcome]
    CREATE_OUTCOME_ATTACHED: _ClassVar[CreateOutcome]
    CREATE_OUTCOME_REOPENED: _ClassVar[CreateOutcome]

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
TICKET_STATUS_UNSPECIFIED: TicketStatus
TICKET_STATUS_OPEN: TicketStatus
TICKET_STATUS_IN_PROGRESS: TicketStatus
TICKET_STATUS_RESOLVED: TicketStatus
TICKET_STATUS_CLOSED: TicketStatus
TICKET_STATUS_CANCELLED: TicketStatus
COMMENT_VISIBILITY_UNSPECIFIED: CommentVisibility
COMMENT_VISIBILITY_PUBLIC: CommentVisibility
COMMENT_VISIBILITY_INTERNAL: CommentVisibility
CREATE_OUTCOME_UNSPECIFIED: CreateOutcome
CREATE_OUTCOME_CREATED: CreateOutcome
CREATE_OUTCOME_REPLAYED: CreateOutcome
CREATE_OUTCOME_ATTACHED: CreateOutcome
CREATE_OUTCOME_REOPENED: CreateOutcome
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
