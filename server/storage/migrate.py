"""Schema migrations (Alembic, shipped inside the package) driven from async code.

Alembic is synchronous; it runs here on the engine's own connection through run_sync, so it works
inside a running event loop (the gateway's, a test's) and no second loop is ever started.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

import server.storage.migrations
from server.storage.database import SQLITE_BEGIN_IMMEDIATE, DatabaseError, connect, create_engine
from server.storage.schema import schema_compat

MIGRATIONS_DIR = Path(server.storage.migrations.__file__).resolve().parent
# Several gateways starting together against one PostgreSQL migrate one at a time.
_ADVISORY_LOCK_KEY = 0x6974736D  # "itsm"


@dataclass(frozen=True)
class SchemaStatus:
    current: str | None  # None: never migrated
    head: str
    up_to_date: bool
    known: bool = True  # False: a revision this version has no migration for (a newer version's)
    # For an unknown (newer) revision: its schema_compat row names a revision this version knows, so
    # this version runs on it (an expand migration's schema, during a rolling upgrade).
    compatible: bool = False
    compatible_since: str | None = None

    def newer_message(self) -> str:
        return (
            f"database schema is at revision {self.current}, which this version does not know "
            f"(its newest is {self.head}): it was migrated by a newer version that this one cannot "
            f"run beside (compatible since {self.compatible_since or 'unknown'}); run that version, "
            "or restore a backup taken before the upgrade"
        )


class SchemaOutOfDate(DatabaseError):
    pass


def alembic_config() -> Config:
    """The packaged alembic.ini, located by the package, never by the working directory."""
    config = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("version_locations", str(MIGRATIONS_DIR / "versions"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise DatabaseError("no migrations found")
    return head


async def migrate(engine_or_url: AsyncEngine | str, revision: str = "head") -> None:
    """Upgrade the schema to revision (default: the newest). Idempotent. A schema a newer version
    migrated is refused in one line (Alembic would fail with "Can't locate revision")."""
    status = await schema_status(engine_or_url)
    if not status.known:
        raise DatabaseError(status.newer_message())
    await _run(engine_or_url, lambda config: command.upgrade(config, revision))


async def downgrade(engine_or_url: AsyncEngine | str, revision: str = "base") -> None:
    """Downgrade the schema to revision (default: nothing left). Development and tests only."""
    await _run(engine_or_url, lambda config: command.downgrade(config, revision))


async def schema_status(engine_or_url: AsyncEngine | str) -> SchemaStatus:
    head = head_revision()
    async with _connection(engine_or_url) as connection:
        current = await connection.run_sync(_current_revision)
        known = current is None or _known(current)
        since = None if known else await connection.run_sync(_compatible_since)
    return SchemaStatus(
        current=current,
        head=head,
        up_to_date=current == head,
        known=known,
        compatible=since is not None and _known(since),
        compatible_since=since,
    )


def _compatible_since(connection: Connection) -> str | None:
    if not inspect(connection).has_table("schema_compat"):
        return None
    row = connection.execute(select(schema_compat.c.compatible_since).where(schema_compat.c.id == 1)).first()
    return None if row is None else str(row[0])


def _known(revision: str) -> bool:
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


async def check_schema(engine_or_url: AsyncEngine | str) -> None:
    """Raises SchemaOutOfDate unless the database is at the newest revision."""
    status = await schema_status(engine_or_url)
    if not status.up_to_date:
        raise SchemaOutOfDate(
            f"database schema is at revision {status.current or 'none'}, this gateway needs "
            f"{status.head}: run the migrations first"
        )


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def _run(engine_or_url: AsyncEngine | str, action: Callable[[Config], None]) -> None:
    async with _connection(engine_or_url, transaction=True) as connection:
        if connection.dialect.name == "postgresql":
            # Held to the end of the transaction, which (DDL being transactional) is the migration.
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
        await connection.run_sync(_with_connection, action)


def _with_connection(connection: Connection, action: Callable[[Config], None]) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    action(config)


@asynccontextmanager
async def _connection(
    engine_or_url: AsyncEngine | str, *, transaction: bool = False
) -> AsyncIterator[AsyncConnection]:
    owned = isinstance(engine_or_url, str)
    engine = create_engine(engine_or_url, pool_size=1, max_overflow=0) if owned else engine_or_url
    try:
        async with connect(engine) as connection:
            if transaction:
                # Two processes migrating one SQLite file at once: the second waits, then finds
                # nothing to do.
                await connection.execution_options(**{SQLITE_BEGIN_IMMEDIATE: True})
                async with connection.begin():
                    yield connection
            else:
                yield connection
    finally:
        if owned:
            await engine.dispose()
