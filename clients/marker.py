"""The correlation marker stamped on every ticket, and the identifiers that end up in URL paths."""

from __future__ import annotations

import re

from clients.errors import ErrorKind, PlatformError

# Safe verbatim in a ServiceNow encoded query (no ^, =, comma) and in a quoted JQL string, and a
# valid Jira label (no spaces, at most 255 characters).
_MARKER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")


def check_marker(marker: str) -> str:
    """The pipeline generates markers; one that does not fit is a programming error."""
    if not isinstance(marker, str) or not _MARKER.fullmatch(marker):
        raise ValueError(
            "marker must be 1-100 characters of letters, digits, '.', '_', ':' or '-', "
            "starting with a letter or digit"
        )
    return marker


def check_identifier(platform: str, operation: str, value: str, pattern: re.Pattern[str]) -> str:
    """An external id from a caller or the store; it becomes part of a URL path, so it must be
    exactly what the platform issues."""
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise PlatformError(
            platform=platform,
            operation=operation,
            kind=ErrorKind.PAYLOAD_REJECTED,
            message=f"not a valid {platform} ticket identifier: {str(value)[:80]!r}",
        )
    return value
