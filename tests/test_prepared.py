"""The ledger's hot statements on asyncpg directly (server/storage/prepared.py), on PostgreSQL: the
same values SQLAlchemy gives, a statement's error leaves its connection in the pool, and a lost
connection is DatabaseUnavailable and is not reused."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import Integer, column, text
from sqlalchemy.ext.asyncio import AsyncEngine

from server.storage.database import DatabaseUnavailable, create_engine, run
from server.storage.operations import _BY_REQUEST_ID, OperationStore
from server.storage.prepared import Prepared, fetch_row
from tests.test_ledger import new


@pytest.fixture
async def engine(postgres_databases: object) -> AsyncIterator[AsyncEngine]:
    url = await postgres_databases.reset(migrated=True)  # type: ignore[attr-defined]
    engine = create_engine(url, pool_size=2)
    yield engine
    await engine.dispose()


async def test_rows_match_what_sqlalchemy_reads(engine: AsyncEngine) -> None:
    ledger = OperationStore(engine)
    operation, ticket = new("r-1")
    await ledger.reserve(operation, ticket, lease_seconds=30)
    through_sqlalchemy = await run(
        engine, lambda c: dict(c.execute(_BY_REQUEST_ID, {"rid": "r-1"}).one()._mapping)
    )
    direct = await fetch_row(engine, Prepared(_BY_REQUEST_ID, engine.dialect), {"rid": "r-1"})
    assert direct is not None
    # observed_at is each statement's own "now"; every other value, types included, is the same.
    assert direct.pop("observed_at") >= through_sqlalchemy.pop("observed_at")
    assert direct == through_sqlalchemy
    assert direct["payload"] == {"fields": {"summary": "disk full"}}  # JSON decoded
    assert direct["lease_until"].tzinfo is not None  # aware UTC, as the records expect
    assert await fetch_row(engine, Prepared(_BY_REQUEST_ID, engine.dialect), {"rid": "none"}) is None


async def test_a_statement_error_passes_through_and_keeps_its_connection(engine: AsyncEngine) -> None:
    broken = Prepared(
        text("SELECT 1 / CAST(:n AS INTEGER) AS x").columns(column("x", Integer)), engine.dialect
    )
    with pytest.raises(asyncpg.DivisionByZeroError):
        await fetch_row(engine, broken, {"n": 0})
    assert engine.sync_engine.pool.checkedout() == 0
    assert await fetch_row(engine, broken, {"n": 1}) == {"x": 1}
    assert engine.sync_engine.pool.checkedin() == 1  # the same connection, back in the pool


async def test_a_lost_connection_is_unavailable_and_not_reused(engine: AsyncEngine) -> None:
    backend = Prepared(text("SELECT pg_backend_pid() AS pid").columns(column("pid", Integer)), engine.dialect)
    first = await fetch_row(engine, backend, {})
    assert first is not None
    killer = await asyncpg.connect(engine.url.set(drivername="postgresql").render_as_string(False))
    try:
        await killer.execute("SELECT pg_terminate_backend($1)", first["pid"])
    finally:
        await killer.close()
    with pytest.raises(DatabaseUnavailable) as raised:
        await fetch_row(engine, backend, {})
    assert "cannot use database" in str(raised.value)
    assert engine.sync_engine.pool.checkedout() == 0
    again = await fetch_row(engine, backend, {})
    assert again is not None and again["pid"] != first["pid"]


async def test_no_connection_is_unavailable() -> None:
    engine = create_engine("postgresql+asyncpg://postgres@127.0.0.1:1/none", connect_timeout=1)
    try:
        with pytest.raises(DatabaseUnavailable, match="cannot use database"):
            await fetch_row(
                engine, Prepared(text("SELECT 1 AS x").columns(column("x", Integer)), engine.dialect), {}
            )
    finally:
        await engine.dispose()


def test_a_statement_without_result_columns_is_refused() -> None:
    engine = create_engine("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    with pytest.raises(ValueError, match="returns no columns"):
        Prepared(text("SELECT 1"), engine.dialect)
