"""Alembic migrations on SQLite and PostgreSQL: from empty, status, concurrency, down to base."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from server.domain.records import TicketRecord
from server.storage.database import create_engine
from server.storage.migrate import (
    SchemaOutOfDate,
    SchemaStatus,
    check_schema,
    downgrade,
    head_revision,
    migrate,
    schema_status,
)
from server.storage.schema import metadata
from server.storage.tickets import TicketStore

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 1, 1, tzinfo=UTC)


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def _store_works(url: str) -> None:
    store = TicketStore(create_engine(url))
    try:
        record = TicketRecord.new(platform="jira", request_id="r", now=NOW, lease_until=NOW + timedelta(1))
        assert await store.reserve(record) == (record, True)
    finally:
        await store.close()


async def test_upgrade_from_empty(database_url: str) -> None:
    head = head_revision()
    assert await schema_status(database_url) == SchemaStatus(current=None, head=head, up_to_date=False)
    with pytest.raises(SchemaOutOfDate, match="run the migrations"):
        await check_schema(database_url)

    await migrate(database_url)

    assert await schema_status(database_url) == SchemaStatus(current=head, head=head, up_to_date=True)
    await check_schema(database_url)
    assert {"tickets", "alembic_version"} <= await _tables(database_url)
    await _store_works(database_url)


async def test_migrate_again_changes_nothing(migrated_database_url: str) -> None:
    engine = create_engine(migrated_database_url)
    try:
        await migrate(engine)
        await migrate(engine)
        assert (await schema_status(engine)).up_to_date
    finally:
        await engine.dispose()
    await _store_works(migrated_database_url)


async def test_concurrent_migrations_apply_once(database_url: str) -> None:
    await asyncio.gather(*(migrate(database_url) for _ in range(3)))
    assert (await schema_status(database_url)).up_to_date


async def test_downgrade_to_base_and_back(migrated_database_url: str) -> None:
    await downgrade(migrated_database_url, "base")

    assert "tickets" not in await _tables(migrated_database_url)
    assert (await schema_status(migrated_database_url)).current is None

    await migrate(migrated_database_url)
    assert (await schema_status(migrated_database_url)).up_to_date
    await _store_works(migrated_database_url)


async def test_store_table_matches_the_migrations(migrated_database_url: str) -> None:
    def diff(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, metadata)

    engine = create_engine(migrated_database_url)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(diff) == []
    finally:
        await engine.dispose()


async def test_migrations_do_not_depend_on_the_working_directory(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    await migrate(database_url)
    assert (await schema_status(database_url)).up_to_date


async def test_alembic_command_line(database_url: str, tmp_path: Path) -> None:
    alembic = Path(sys.executable).with_name("alembic")
    env = {**os.environ, "ITSM_DATABASE_URL": database_url}
    ini = REPO / "server" / "storage" / "migrations" / "alembic.ini"

    done = await asyncio.to_thread(
        subprocess.run,
        [str(alembic), "-c", str(ini), "upgrade", "head"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )

    assert done.returncode == 0, done.stderr
    assert (await schema_status(database_url)).up_to_date
