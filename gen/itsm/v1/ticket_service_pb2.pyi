from google.protobuf import struct_pb2 as _struct_pb2
from itsm.v1 import common_pb2 as _common_pb2
from itsm.v1 import ticket_pb2 as _ticket_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateTicketRequest(_message.Message):
    __slots__ = ("platform", "request_id", "job_id", "fields", "dedup_key")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    DEDUP_KEY_FIELD_NUMBER: _ClassVar[int]
    platform: _common_pb2.Platform
    request_id: str
    job_id: str
    fields: _containers.ScalarMap[str, str]
    dedup_key: str
    def __init__(self, platform: _Optional[_Union[_common_pb2.Platform, str]] = ..., request_id: _Optional[str] = ..., job_id: _Optional[str] = ..., fields: _Optional[_Mapping[str, str]] = ..., dedup_key: _Optional[str] = ...) -> None: ...

class CreateTicketResponse(_message.Message):
    __slots__ = ("ticket", "outcome")
    TICKET_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ticket: _ticket_pb2.Ticket
    outcome: _common_pb2.CreateOutcome
    def __init__(self, ticket: _Optional[_Union[_ticket_pb2.Ticket, _Mapping]] = ..., outcome: _Optional[_Union[_common_pb2.CreateOutcome, str]] = ...) -> None: ...

class CreateTicketFromTemplateRequest(_message.Message):
    __slots__ = ("template_name", "request_id", "job_id", "variables", "dedup_key")
    TEMPLATE_NAME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    VARIABLES_FIELD_NUMBER: _ClassVar[int]
    DEDUP_KEY_FIELD_NUMBER: _ClassVar[int]
    template_name: str
    request_id: str
    job_id: str
    variables: _struct_pb2.Struct
    dedup_key: str
    def __init__(self, template_name: _Optional[str] = ..., request_id: _Optional[str] = ..., job_id: _Optional[str] = ..., variables: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., dedup_key: _Optional[str] = ...) -> None: ...

class CreateTicketFromTemplateResponse(_message.Message):
    __slots__ = ("ticket", "outcome")
    TICKET_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ticket: _ticket_pb2.Ticket
    outcome: _common_pb2.CreateOutcome
    def __init__(self, ticket: _Optional[_Union[_ticket_pb2.Ticket, _Mapping]] = ..., outcome: _Optional[_Union[_common_pb2.CreateOutcome, str]] = ...) -> None: ...

class ValidateTicketRequest(_message.Message):
    __slots__ = ("platform", "fields")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    platform: _common_pb2.Platform
    fields: _containers.ScalarMap[str, str]
    def __init__(self, platform: _Optional[_Union[_common_pb2.Platform, str]] = ..., fields: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ValidateTicketResponse(_message.Message):
    __slots__ = ("valid", "violations")
    VALID_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    valid: bool
    violations: _containers.RepeatedCompositeFieldContainer[_common_pb2.FieldViolation]
    def __init__(self, valid: _Optional[bool] = ..., violations: _Optional[_Iterable[_Union[_common_pb2.FieldViolation, _Mapping]]] = ...) -> None: ...

class GetTicketRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetTicketResponse(_message.Message):
    __slots__ = ("ticket",)
    TICKET_FIELD_NUMBER: _ClassVar[int]
    ticket: _ticket_pb2.Ticket
    def __init__(self, ticket: _Optional[_Union[_ticket_pb2.Ticket, _Mapping]] = ...) -> None: ...

class ListTicketsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "platform", "state", "job_id", "request_id", "external_key", "sla_state", "dedup_key", "status", "open_only")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_KEY_FIELD_NUMBER: _ClassVar[int]
    SLA_STATE_FIELD_NUMBER: _ClassVar[int]
    DEDUP_KEY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    OPEN_ONLY_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    platform: _common_pb2.Platform
    state: _common_pb2.TicketState
    job_id: str
    request_id: str
    external_key: str
    sla_state: _common_pb2.SlaState
    dedup_key: str
    status: _common_pb2.TicketStatus
    open_only: bool
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., platform: _Optional[_Union[_common_pb2.Platform, str]] = ..., state: _Optional[_Union[_common_pb2.TicketState, str]] = ..., job_id: _Optional[str] = ..., request_id: _Optional[str] = ..., external_key: _Optional[str] = ..., sla_state: _Optional[_Union[_common_pb2.SlaState, str]] = ..., dedup_key: _Optional[str] = ..., status: _Optional[_Union[_common_pb2.TicketStatus, str]] = ..., open_only: _Optional[bool] = ...) -> None: ...

class ListTicketsResponse(_message.Message):
    __slots__ = ("tickets", "next_page_token")
    TICKETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tickets: _containers.RepeatedCompositeFieldContainer[_ticket_pb2.Ticket]
    next_page_token: str
    def __init__(self, tickets: _Optional[_Iterable[_Union[_ticket_pb2.Ticket, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateTicketRequest(_message.Message):
    __slots__ = ("id", "request_id", "fields")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    id: str
    request_id: str
    fields: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., request_id: _Optional[str] = ..., fields: _Optional[_Mapping[str, str]] = ...) -> None: ...

class UpdateTicketResponse(_message.Message):
    __slots__ = ("ticket",)
    TICKET_FIELD_NUMBER: _ClassVar[int]
    ticket: _ticket_pb2.Ticket
    def __init__(self, ticket: _Optional[_Union[_ticket_pb2.Ticket, _Mapping]] = ...) -> None: ...

class AddCommentRequest(_message.Message):
    __slots__ = ("id", "request_id", "body", "visibility")
    ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    id: str
    request_id: str
    body: str
    visibility: _common_pb2.CommentVisibility
    def __init__(self, id: _Optional[str] = ..., request_id: _Optional[str] = ..., body: _Optional[str] = ..., visibility: _Optional[_Union[_common_pb2.CommentVisibility, str]] = ...) -> None: ...

class AddCommentResponse(_message.Message):
    __slots__ = ("ticket", "comment_id")
    TICKET_FIELD_NUMBER: _ClassVar[int]
    COMMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ticket: _ticket_pb2.Ticket
    comment_id: str
    def __init__(self, ticket: _Optional[_Union[_ticket_pb2.Ticket, _Mapping]] = ..., comment_id: _Optional[str] = ...) -> None: ...

class ResolveTicketRequest(_message.Message):
    __slots__ = ("id", "request_id", "resolution", "notes")
    ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    id: str
    request_id: str
    resolution: str
    notes: str
    def __init__(self, id: _Optional[str] = ..., request_id: _Optional[str] = ..., resolution: _Optional[str] = ..., notes: _Optional[str] = ...) -> None: ...

class ResolveTicketResponse(_message.Message):
    __slots__ = ("ticket",)
    TICKET_FIELD_NUMBER: _ClassVar[int]
    ticket: _ticket_pb2.Ticket
    def __init__(self, ticket: _Optional[_Union[_ticket_pb2.Ticket, _Mapping]] = ...) -> None: ...

class ReopenTicketRequest(_message.Message):
    __slots__ = ("id", "request_id", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    request_id: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., request_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ReopenTicketResponse(_message.Message):
    __slots__ = ("ticket",)
    TICKET_FIELD_NUMBER: _ClassVar[int]
    ticket: _ticket_pb2.Ticket
    def __init__(self, ticket: _Optional[_Union[_ticket_pb2.Ticket, _Mapping]] = ...) -> None: ...
