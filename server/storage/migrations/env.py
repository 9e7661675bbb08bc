"""Alembic environment.

The gateway runs migrations through server/migrate.py, which hands over a live (sync-facing)
connection in config.attributes["connection"]: no event loop is started here then. The `alembic`
command line has no connection, so this file opens one itself from ITSM_DATABASE_URL.
"""

from __future__ import annotations

import asyncio
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from server.storage.database import DEFAULT_DATABASE_URL, create_engine, parse_url
from server.storage.schema import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,  # SQLite alters tables by copy-and-move
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _command_line_url() -> str:
    return os.environ.get("ITSM_DATABASE_URL") or DEFAULT_DATABASE_URL


async def _run_from_command_line() -> None:
    engine = create_engine(_command_line_url(), pool_size=1, max_overflow=0)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


def _run_offline() -> None:
    context.configure(
        url=parse_url(_command_line_url()),
        target_metadata=metadata,
        render_as_batch=True,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


_connection = config.attributes.get("connection")
if _connection is not None:
    _run(_connection)
else:
    if config.config_file_name is not None:
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    if context.is_offline_mode():
        _run_offline()
    else:
        asyncio.run(_run_from_command_line())
