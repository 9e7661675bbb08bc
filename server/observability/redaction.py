"""Redaction at the logging boundary: whatever any module logs, no secret leaves the process.

The process's one Redactor (clients/redaction.py) is applied to the formatted message, every `extra`
field (nested lists and dicts included), the exception text and the stack text of every record that
reaches the handlers the filter is installed on. Registering is global and additive because the values
arrive at different moments (config load, token file, OAuth refresh), and one log handler serves the
whole process.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable
from typing import Final

from clients.redaction import MASK, Redactor

__all__ = ["MASK", "REDACTOR", "RedactingFilter", "extra_keys", "redact", "register_basic_auth",
           "register_secrets"]

# The process's redactor: start-up code registers into it, the logging filter reads it.
REDACTOR: Final = Redactor()


def register_secrets(values: Iterable[str]) -> None:
    REDACTOR.register(values)


def register_basic_auth(username: str, password: str) -> None:
    REDACTOR.register_basic_auth(username, password)


def redact(text: str) -> str:
    return REDACTOR(text)


_SCALARS: Final = frozenset({int, float, bool})
# Attributes every LogRecord has; anything else on a record came in through `extra`.
STANDARD_RECORD_ATTRIBUTES: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__
) | {"message", "asctime", "taskName"}


class RedactingFilter(logging.Filter):
    """Install on a handler: it rewrites each record in place before any formatter sees it."""

    def __init__(self, redactor: Redactor = REDACTOR) -> None:
        super().__init__()
        self._redact = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.__dict__
        if fields.get("_redacted"):  # already done by another handler's filter
            return True
        # The formatted message, not msg and args apart: an argument's str() can hold a secret
        # that neither the template nor the raw argument shows.
        message = _message(record)
        extras = extra_keys(record)
        texts = [message]
        plain = True
        for key in extras:
            value = fields[key]
            if type(value) is str:
                texts.append(value)
            elif value is not None and type(value) not in _SCALARS:
                plain = False
        # The usual record (a message, a few short strings and numbers) is checked in one pass of
        # substring tests; only a record that might hold something is redacted field by field.
        if plain and not self._redact.needs("\n".join(texts)):
            record.msg = message
        else:
            record.msg = self._redact(message)
            for key in extras:
                fields[key] = self._redact.value(fields[key])
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        # Formatters print exc_text when it is set; dropping the live exception means no handler
        # can format it again, unredacted, from its arguments.
        record.exc_info = None
        if record.stack_info:
            record.stack_info = self._redact(record.stack_info)
        fields["_redacted"] = True
        fields["_extra_keys"] = extras  # the formatter needs the same list: found once
        return True


def extra_keys(record: logging.LogRecord) -> list[str]:
    """Names of the fields a record got through `extra` (underscored ones are internal)."""
    known = record.__dict__.get("_extra_keys")
    if known is not None:
        return known
    return [k for k in record.__dict__ if k not in STANDARD_RECORD_ATTRIBUTES and k[0] != "_"]


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a bad format string must not lose the line, nor leak its arguments raw
        return f"{record.msg} {record.args!r}"
