import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from itsm.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Ticket(_message.Message):
    __slots__ = ("id", "platform", "state", "request_id", "job_id", "template_name", "external_id", "external_key", "url", "fields", "attempts", "last_error", "create_time", "update_time", "sla", "created_by", "status", "dedup_key", "resolution")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_NAME_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_KEY_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    SLA_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DEDUP_KEY_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    id: str
    platform: _common_pb2.Platform
    state: _common_pb2.TicketState
    request_id: str
    job_id: str
    template_name: str
    external_id: str
    external_key: str
    url: str
    fields: _containers.ScalarMap[str, str]
    attempts: int
    last_error: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    sla: _common_pb2.Sla
    created_by: str
    status: _common_pb2.TicketStatus
    dedup_key: str
    resolution: str
    def __init__(self, id: _Optional[str] = ..., platform: _Optional[_Union[_common_pb2.Platform, str]] = ..., state: _Optional[_Union[_common_pb2.TicketState, str]] = ..., request_id: _Optional[str] = ..., job_id: _Optional[str] = ..., template_name: _Optional[str] = ..., external_id: _Optional[str] = ..., external_key: _Optional[str] = ..., url: _Optional[str] = ..., fields: _Optional[_Mapping[str, str]] = ..., attempts: _Optional[int] = ..., last_error: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sla: _Optional[_Union[_common_pb2.Sla, _Mapping]] = ..., created_by: _Optional[str] = ..., status: _Optional[_Union[_common_pb2.TicketStatus, str]] = ..., dedup_key: _Optional[str] = ..., resolution: _Optional[str] = ...) -> None: ...
