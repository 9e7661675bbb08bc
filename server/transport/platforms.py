"""The proto's Platform enum <-> the platform names the service uses, by name: PLATFORM_JIRA is "jira".

A new platform is one enum value in common.proto plus its platform module; nothing here changes.
"""

from __future__ import annotations

from itsm.v1 import common_pb2

_PREFIX = "PLATFORM_"
_UNSPECIFIED = common_pb2.PLATFORM_UNSPECIFIED


def platform_name(value: int) -> str:
    """"" for PLATFORM_UNSPECIFIED or a number the enum does not define: the service decides what
    an absent platform means (no filter, or INVALID_ARGUMENT)."""
    if value == _UNSPECIFIED:
        return ""
    try:
        return common_pb2.Platform.Name(value).removeprefix(_PREFIX).lower()
    except ValueError:
        return ""


def platform_value(name: str) -> int:
    """The enum value of a platform name; PLATFORM_UNSPECIFIED for a name the proto does not know."""
    try:
        return common_pb2.Platform.Value(_PREFIX + name.upper())
    except ValueError:
        return _UNSPECIFIED
