"""Alembic migrations on SQLite and PostgreSQL: from empty, status, concurrency, down to base."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from server.domain.records import CREATE, PENDING, OperationRecord, TicketRecord
from server.service.ports import NewTicket
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
from server.storage.operations import OperationStore
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
    engine = create_engine(url)
    try:
        ledger = OperationStore(engine)
        ticket = TicketRecord(id=str(uuid.uuid4()), platform="jira", request_id="r")
        operation = OperationRecord(request_id="r", kind=CREATE, ticket_id=ticket.id, payload_hash="h")
        stored, reserved = await ledger.reserve(operation, NewTicket(ticket), lease_seconds=60)
        assert reserved and stored.state == PENDING
        assert (await TicketStore(engine).get(ticket.id)).request_id == "r"
    finally:
        await engine.dispose()


async def test_the_ledger_migration_carries_existing_tickets_over(database_url: str) -> None:
    """0003 turns each ticket's creation into its create operation; a PENDING one becomes uncertain
    (it may have been sent), so whoever settles it looks its marker up first."""
    await migrate(database_url, "0002")
    engine = create_engine(database_url)
    columns = (
        "id, platform, state, request_id, job_id, template_name, external_id, external_key, url, "
        "fields, payload_hash, marker, attempts, last_error, error_kind, created_by, create_time, "
        "update_time, lease_until"
    )
    rows = [
        ("11111111-1111-4111-8111-111111111111", "CREATED", "done", "", None),
        ("22222222-2222-4222-8222-222222222222", "PENDING", "flying", "", NOW + timedelta(minutes=5)),
        ("33333333-3333-4333-8333-333333333333", "FAILED", "refused", "payload_rejected", None),
    ]
    try:
        async with engine.begin() as connection:
            for id_, state, request_id, error_kind, lease in rows:
                await connection.execute(
                    text(
                        f"INSERT INTO tickets ({columns}) VALUES (:id, 'jira', :state, :rid, '', '', '', '', "
                        "'', '{}', 'hash', :marker, 2, 'why', :kind, 'me', :now, :now, :lease)"
                    ),
                    {"id": id_, "state": state, "rid": request_id, "marker": f"itsmgw-{id_}",
                     "kind": error_kind, "now": NOW, "lease": lease},
                )
        await migrate(engine)
        ledger = OperationStore(engine)
        done, flying, refused = [await ledger.get(r) for r in ("done", "flying", "refused")]
    finally:
        await engine.dispose()
    assert (done.state, done.kind, done.ticket_id, done.payload_hash) == ("SUCCEEDED", CREATE, rows[0][0], "hash")
    assert (flying.state, flying.uncertain_since, flying.marker) == ("PENDING", NOW, f"itsmgw-{rows[1][0]}")
    assert flying.lease_until == NOW + timedelta(minutes=5)
    assert (refused.state, refused.error_kind, refused.permanent) == ("FAILED", "payload_rejected", True)
    assert refused.attempts == 2 and refused.last_error == "why"


async def test_upgrade_from_empty(database_url: str) -> None:
    head = head_revision()
    assert await schema_status(database_url) == SchemaStatus(current=None, head=head, up_to_date=False)
    with pytest.raises(SchemaOutOfDate, match="run the migrations"):
        await check_schema(database_url)

    await migrate(database_url)

    assert await schema_status(database_url) == SchemaStatus(current=head, head=head, up_to_date=True)
    await check_schema(database_url)
    assert {"tickets", "operations", "platform_checks", "alembic_version"} <= await _tables(database_url)
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
