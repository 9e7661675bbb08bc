"""One database URL -> an async engine: embedded SQLite (aiosqlite) or PostgreSQL (asyncpg).

Only these two drivers are accepted, so every SQL statement the store emits is tested on both.
URLs are rendered with the password hidden in every message.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event, exc, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.util import greenlet_spawn

from server.domain.errors import StoreUnavailable

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///var/itsm.db"
SQLITE_DRIVER = "sqlite+aiosqlite"
POSTGRES_DRIVER = "postgresql+asyncpg"
ACCEPTED = "sqlite+aiosqlite:///path/to/file.db or postgresql+asyncpg://user@host:5432/dbname"
T = TypeVar("T")

# Sized for the 2,000-RPC concurrency cap: no connection is held across a platform call, so a
# request holds one for a single statement (~1 ms); 20 connections serve far more than the
# platforms' rate limits let through, and stay well under PostgreSQL's default 100 per server with
# a few workers or replicas. No overflow: an overflow connection is opened for a burst and closed
# when it is returned, so a steady load past the pool paid a connect (and PostgreSQL a backend
# start) again and again; waiting a moment for a pooled connection is cheaper.
DEFAULT_POOL_SIZE = 20
DEFAULT_MAX_OVERFLOW = 0
DEFAULT_POOL_TIMEOUT_SECONDS = 10.0
DEFAULT_CONNECT_TIMEOUT_SECONDS = 5.0
DEFAULT_BUSY_TIMEOUT_SECONDS = 5.0
_POOL_RECYCLE_SECONDS = 1800
_BUSY_RETRIES = 5
_BUSY_PAUSE_SECONDS = 0.05
# Execution option: on SQLite, start the transaction with BEGIN IMMEDIATE. Ignored by PostgreSQL.
SQLITE_BEGIN_IMMEDIATE = "itsm_sqlite_begin_immediate"
# Execution option of run()'s SQLite connections: emit no BEGIN.
_SQLITE_AUTOCOMMIT = "itsm_sqlite_autocommit"
# run()'s connections run each statement in its own implicit transaction: no BEGIN/COMMIT round
# trips. PostgreSQL: SQLAlchemy's AUTOCOMMIT, a flag on the asyncpg connection. SQLite: the driver's
# own implicit transactions are off on every connection (see _sqlite_engine), so leaving out our
# BEGIN is enough; SQLAlchemy's AUTOCOMMIT would switch the driver's isolation level on every
# checkout and back (with a PRAGMA) on every checkin, each a hop to aiosqlite's thread. Set on each
# connection: an engine.execution_options() engine would do it through an event hook, and an
# engine with a hook dispatches events around every statement, which costs more than the flag.
_AUTOCOMMIT: dict[str, dict[str, Any]] = {
    "postgresql": {"isolation_level": "AUTOCOMMIT"},
    "sqlite": {_SQLITE_AUTOCOMMIT: True},
}


class DatabaseError(Exception):
    """A database problem, in one line that is safe to log (never a password)."""


class UnsupportedDatabaseUrl(DatabaseError):
    pass


class DatabaseUnavailable(DatabaseError, StoreUnavailable):
    pass


class DatabaseBusy(DatabaseUnavailable):
    """SQLite's "database is locked": another writer held the file past the busy timeout, or a
    snapshot went stale under a write. Nothing was written; run() tries again."""


def parse_url(url: str | URL) -> URL:
    """The URL, checked to name one of the two supported drivers. Raises UnsupportedDatabaseUrl."""
    if isinstance(url, URL):
        parsed = url
    else:
        try:
            parsed = make_url(url)
        except (exc.ArgumentError, ValueError):
            # The text itself is not echoed: it may hold a password we cannot locate.
            raise UnsupportedDatabaseUrl(f"invalid database URL; use {ACCEPTED}") from None
    if parsed.drivername not in (SQLITE_DRIVER, POSTGRES_DRIVER):
        raise UnsupportedDatabaseUrl(
            f"unsupported database URL scheme {parsed.drivername!r} in {safe_url(parsed)}; use {ACCEPTED}"
        )
    if parsed.drivername == POSTGRES_DRIVER and not parsed.database:
        raise UnsupportedDatabaseUrl(f"database URL {safe_url(parsed)} names no database; use {ACCEPTED}")
    return parsed


def safe_url(url: str | URL) -> str:
    """The URL for a message or a log line, password masked."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except (exc.ArgumentError, ValueError):
        return "<invalid URL>"
    return parsed.render_as_string(hide_password=True)


def sqlite_path(url: URL) -> Path | None:
    """The database file of a SQLite URL (relative to the working directory), None for in-memory."""
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def create_engine(
    url: str | URL,
    *,
    pool_size: int = DEFAULT_POOL_SIZE,
    max_overflow: int = DEFAULT_MAX_OVERFLOW,
    pool_timeout: float = DEFAULT_POOL_TIMEOUT_SECONDS,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT_SECONDS,
) -> AsyncEngine:
    """An engine for url. Connects lazily: use check_connection() for a clear start-up error."""
    parsed = parse_url(url)
    pool: dict[str, Any] = {
        "pool_size": pool_size,
        "max_overflow": max_overflow,
        "pool_timeout": pool_timeout,
        "pool_recycle": _POOL_RECYCLE_SECONDS,
    }
    if parsed.drivername == SQLITE_DRIVER:
        return _sqlite_engine(parsed, pool, busy_timeout)
    # No pool_pre_ping: it would double the round trips of every hot-path statement. A connection
    # broken by a server restart fails one statement and SQLAlchemy then refreshes the whole pool.
    return create_async_engine(parsed, connect_args={"timeout": connect_timeout}, **pool)


def _sqlite_engine(url: URL, pool: dict[str, Any], busy_timeout: float) -> AsyncEngine:
    path = sqlite_path(url)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DatabaseUnavailable(
                f"cannot create the directory of {safe_url(url)}: {error.strerror}"
            ) from None
    engine = create_async_engine(url, **pool)
    busy_ms = int(busy_timeout * 1000)
    locked = engine.dialect.loaded_dbapi.OperationalError

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver's own implicit transactions are switched off; "begin" below emits BEGIN, so
        # DDL (batch migrations) is transactional too.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # Busy timeout first: concurrent writers (and the switch to WAL) wait instead of failing.
        cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
        cursor.execute("PRAGMA journal_mode")
        if cursor.fetchone()[0] != "wal":
            try:
                cursor.execute("PRAGMA journal_mode = WAL")
            except locked:
                # Connections racing on a brand-new file: SQLite refuses the switch at once rather
                # than wait (deadlock avoidance). The winner's switch is persistent, so carry on.
                pass
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        options = connection.get_execution_options()
        if options.get("isolation_level") != "AUTOCOMMIT" and not options.get(_SQLITE_AUTOCOMMIT):
            # IMMEDIATE takes the write lock up front (waiting on busy_timeout): for a transaction
            # that reads before it writes, such as a migration, which would otherwise fail.
            connection.exec_driver_sql("BEGIN IMMEDIATE" if options.get(SQLITE_BEGIN_IMMEDIATE) else "BEGIN")

    return engine


@asynccontextmanager
async def connect(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection from engine's pool; failing to get one, or losing it, raises DatabaseUnavailable.

    Other errors (a constraint, a bad statement) pass through untouched: they are bugs, not outages.
    """
    connection = engine.connect()
    try:
        await connection.start()
    except Exception as error:  # whatever stops a connection (refused, auth, pool timeout...)
        raise unavailable(engine.url, error) from error
    try:
        yield connection
    except Exception as error:
        if _lost(error):
            raise unavailable(engine.url, error) from error
        raise
    finally:
        await connection.close()


async def run(engine: AsyncEngine, work: Callable[[Connection], T], *, autocommit: bool = True) -> T:
    """work(connection) on a connection from engine's pool; errors as in connect().

    Each statement commits on its own (no BEGIN/COMMIT round trips); autocommit=False gives a
    plain connection, for work that opens its own transaction. Checkout, statements and checkin run
    in one switch into SQLAlchemy's synchronous core, where an AsyncConnection switches once per
    step (about 100 us of CPU per statement). work is synchronous code that runs statements and
    reads their results (no Result outlives it); SQLAlchemy awaits the driver underneath.

    SQLite's busy errors (nothing written: a single statement, or a transaction rolled back) are
    tried again a few times, with a short pause that lets the other writer finish.
    """
    for attempt in range(_BUSY_RETRIES):
        try:
            return await greenlet_spawn(_run, engine.sync_engine, work, autocommit)
        except DatabaseBusy:
            if attempt == _BUSY_RETRIES - 1:
                raise
            await asyncio.sleep(_BUSY_PAUSE_SECONDS * (attempt + 1))
    raise AssertionError("unreachable")


def _run(engine: Engine, work: Callable[[Connection], T], autocommit: bool) -> T:
    try:
        connection = engine.connect()
    except Exception as error:  # as in connect()
        raise unavailable(engine.url, error) from error
    try:
        if autocommit:
            connection.execution_options(**_AUTOCOMMIT[engine.dialect.name])
        return work(connection)
    except Exception as error:
        if _lost(error):
            raise unavailable(engine.url, error) from error
        raise
    finally:
        connection.close()


def _lost(error: Exception) -> bool:
    """Whether error means the database went away (an outage), not that a statement is wrong."""
    if isinstance(error, exc.OperationalError | exc.InterfaceError | exc.TimeoutError | OSError):
        return True
    return isinstance(error, exc.DBAPIError) and error.connection_invalidated


async def check_connection(engine: AsyncEngine) -> None:
    """One round trip; raises DatabaseUnavailable with a one-line reason when it fails."""
    async with connect(engine) as connection:
        await connection.execute(text("SELECT 1"))


def unavailable(url: URL, error: BaseException) -> DatabaseUnavailable:
    """A one-line DatabaseUnavailable for an error raised while talking to the database at url."""
    reason = describe(error)
    kind = DatabaseBusy if reason == "database is locked" else DatabaseUnavailable
    return kind(f"cannot use database {safe_url(url)}: {reason}")


def describe(error: BaseException) -> str:
    """The driver's own message, first line only, without SQLAlchemy's decoration."""
    original = getattr(error, "orig", None) or error
    if isinstance(original, asyncio.TimeoutError | TimeoutError):
        return "timed out"
    message = str(original).strip().splitlines()[0] if str(original).strip() else ""
    return message or type(original).__name__


async def in_transaction(engine: AsyncEngine, work: Callable[[Connection], T]) -> T:
    """work(connection) inside one transaction (BEGIN ... COMMIT, rolled back if work raises).

    For statements that must land together, such as an operation's outcome and its ticket's change.
    Statements that only write, in a fixed table order, so concurrent transactions cannot deadlock.
    """

    def transaction(connection: Connection) -> T:
        # SQLite: take the write lock up front (waiting the busy timeout for it), rather than read
        # first and find the snapshot stale when the first write tries to upgrade.
        connection.execution_options(**{SQLITE_BEGIN_IMMEDIATE: True})
        with connection.begin():
            return work(connection)

    return await run(engine, transaction, autocommit=False)
