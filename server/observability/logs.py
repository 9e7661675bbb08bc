"""Logging set-up: one JSON object a line on stderr (ITSM_LOG_FORMAT=text for humans).

Every line has time (UTC, ISO 8601, milliseconds), level, logger and message, then whatever the call
passed as `extra` (rpc, code, duration_ms, job_id, platform, operation, outcome, attempts, ticket_id,
request_id, caller, ...), then exception / stack text when present. Records are redacted
(server/redaction.py) by a filter on the handler before they are formatted, whichever module logged
them; register secrets with server.observability.redaction.register_secrets at start-up.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
import threading
import time
from typing import Any, Final, TextIO

from server.observability.redaction import RedactingFilter, extra_keys

FORMATS: Final = ("json", "text")
_MARK: Final = "_itsm_handler"  # tells our handler apart from pytest's or a library's
_BASE_KEYS: Final = frozenset({"time", "level", "logger", "message", "pid", "exception", "stack"})


# Built once: json.dumps with options builds a new encoder on every call. ASCII output: a line is
# valid on any stderr encoding, and json escapes newlines, so one event is always one line.
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), default=str)
_second: tuple[int, str] = (-1, "")  # the last second formatted; lines come many per second
# This process's id, for every line: read once (and again in a forked child), not by each LogRecord,
# for which it is a getpid() system call per line (glibc caches no pid).
_pid = os.getpid()


def _refresh_pid() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_refresh_pid)


def _utc(created: float) -> str:
    global _second
    seconds = int(created)
    cached_second, prefix = _second
    if seconds != cached_second:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _second = (seconds, prefix)
    return f"{prefix}.{int((created - seconds) * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": _pid,  # which worker of `serve --workers N` wrote it
        }
        fields = record.__dict__
        for key in extra_keys(record):
            # An extra may not pass itself off as one of the base keys.
            entry[f"extra_{key}" if key in _BASE_KEYS else key] = fields[key]
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return _ENCODER.encode(entry)


class TextFormatter(logging.Formatter):
    """For a terminal: the usual line, then the extras as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = " ".join(f"{key}={record.__dict__[key]}" for key in extra_keys(record))
        if not extras:
            return line
        head, newline, rest = line.partition("\n")  # keep extras on the first line, before a traceback
        return f"{head} {extras}{newline}{rest}"


class BufferedStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to a private, block-buffered copy of stderr, flushed every FLUSH_SECONDS by a
    background thread, at once for WARNING and above, and at exit.

    Why: stderr is line-buffered, so every line is a write() system call, and on virtual machines a
    system call can cost as much as a whole RPC; with a line per RPC and per outbound attempt the
    event loop would pay it several times a call. The price is that INFO lines may appear up to
    FLUSH_SECONDS late (and be lost if the process is killed with SIGKILL).
    """

    FLUSH_SECONDS = 0.2
    BUFFER_BYTES = 1 << 16

    def __init__(self) -> None:
        descriptor = os.dup(sys.stderr.fileno())
        super().__init__(open(descriptor, "w", buffering=self.BUFFER_BYTES, encoding="utf-8"))
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_periodically, name="log-flush", daemon=True)
        self._flusher.start()
        atexit.register(self.close)

    def _flush_periodically(self) -> None:
        while not self._stop.wait(self.FLUSH_SECONDS):
            self.flush()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + self.terminator)
            if record.levelno >= logging.WARNING:
                self.stream.flush()
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self._stop.set()
        try:
            self.flush()
            self.stream.close()
        except (OSError, ValueError):
            pass
        super().close()


def _stderr_handler() -> logging.Handler:
    try:
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # captured by a test runner: no real descriptor
        return logging.StreamHandler(sys.stderr)
    return BufferedStderrHandler()


def build_handler(fmt: str = "json", stream: TextIO | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream) if stream is not None else _stderr_handler()
    handler.setFormatter(TextFormatter() if fmt == "text" else JsonFormatter())
    handler.addFilter(RedactingFilter())
    setattr(handler, _MARK, True)
    return handler


def configure_logging(
    *, level: str | None = None, fmt: str | None = None, stream: TextIO | None = None
) -> logging.Handler:
    """Installs the one root handler; arguments override ITSM_LOG_LEVEL / ITSM_LOG_FORMAT.

    Safe to call again (tests, reloads): the previous handler it installed is replaced. Handlers
    someone else put on the root logger are kept but get the redacting filter too, so nothing that
    reaches the root logger is written unredacted.
    """
    level_name = (level or os.environ.get("ITSM_LOG_LEVEL") or "INFO").upper()
    format_name = (fmt or os.environ.get("ITSM_LOG_FORMAT") or "json").lower()
    numeric = logging.getLevelName(level_name)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
        old.close()
    for other in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in other.filters):
            other.addFilter(RedactingFilter())
    handler = build_handler(format_name if format_name in FORMATS else "json", stream)
    # What no line of ours prints, LogRecord need not look up: the thread (two calls), the
    # multiprocessing process name, and the pid (a system call; the formatter has its own).
    logging.logThreads = False
    logging.logMultiprocessing = False
    logging.logProcesses = False
    root.addHandler(handler)
    root.setLevel(numeric if isinstance(numeric, int) else logging.INFO)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # Migration progress is routine at every start; failures still surface as errors.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    log = logging.getLogger("itsm.logs")
    if not isinstance(numeric, int):
        log.warning("ITSM_LOG_LEVEL=%r is not a level; using INFO", level_name)
    if format_name not in FORMATS:
        log.warning("ITSM_LOG_FORMAT=%r is not json or text; using json", format_name)
    return handler
