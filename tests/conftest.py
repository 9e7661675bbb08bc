"""Shared fixtures.

Databases: every test that asks for `database_url`, `migrated_database_url` or `store` runs twice,
on SQLite (a file in tmp_path) and on PostgreSQL (the server of ITSM_TEST_DATABASE_URL; skipped
when unset, a failure when ITSM_REQUIRE_POSTGRES=1).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from sqlalchemy.engine import URL, make_url

from server.runtime.event_loop import loop_factory
from server.storage.database import create_engine
from server.storage.migrate import head_revision, migrate
from server.storage.tickets import TicketStore

# ---------------------------------------------------------------------------------------------
# Event loop: the one the gateway runs on (server/runtime/event_loop.py), uvloop when installed
# unless ITSM_EVENT_LOOP=asyncio, so the tests run grpc.aio, aiohttp and the drivers on it too.


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    factory = loop_factory()
    return {"asyncio": asyncio.new_event_loop} if factory is None else {"uvloop": factory}


# ---------------------------------------------------------------------------------------------
# Databases

T = TypeVar("T")
POSTGRES_URL_VARIABLE = "ITSM_TEST_DATABASE_URL"
REQUIRE_POSTGRES_VARIABLE = "ITSM_REQUIRE_POSTGRES"


def run_in_thread(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on its own loop in its own thread, from sync code: session
    fixtures use it so that they never touch the loop pytest-asyncio gives each test."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(coroutine)
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=target, name="fixture-loop")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def postgres_server_url() -> str:
    """ITSM_TEST_DATABASE_URL, or skip (fail under ITSM_REQUIRE_POSTGRES=1) when it is unset."""
    url = os.environ.get(POSTGRES_URL_VARIABLE, "")
    if not url:
        reason = (
            f"{POSTGRES_URL_VARIABLE} is not set "
            "(e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/itsm_test)"
        )
        if os.environ.get(REQUIRE_POSTGRES_VARIABLE) == "1":
            pytest.fail(f"{reason} but {REQUIRE_POSTGRES_VARIABLE}=1", pytrace=False)
        pytest.skip(reason)
    return url


class PostgresTestDatabases:
    """Two databases per test process, named after the server URL's database and the process id
    (so concurrent pytest runs never share one): "<base>_p<pid>_empty" and "<base>_p<pid>_migrated".
    They live on the same server and need the CREATEDB privilege.

    Before each test the one it asks for is reset: other sessions on it are terminated (a leaked
    engine from an earlier test cannot hold a lock), then the migrated one has its tables
    truncated (milliseconds) while it is still at the head revision, else its schema is dropped
    and migrated again; the empty one has its schema dropped. Databases left by dead processes
    are dropped on first use; this process drops its own at the end of the session.
    """

    def __init__(self, server_url: str) -> None:
        self.server = make_url(server_url)
        if not self.server.database:
            pytest.fail(f"{POSTGRES_URL_VARIABLE} names no database", pytrace=False)
        self.base = self.server.database
        self.stem = self.base[:40]  # PostgreSQL truncates names past 63 bytes
        self.prefix = f"{self.stem}_p{os.getpid()}_"
        self.created: set[str] = set()
        self.cleaned = False

    def url(self, database: str) -> str:
        return self.server.set(database=database).render_as_string(hide_password=False)

    async def connect(self, database: str) -> asyncpg.Connection:
        u: URL = self.server
        return await asyncpg.connect(
            host=u.host, port=u.port, user=u.username, password=u.password, database=database
        )

    async def reset(self, *, migrated: bool) -> str:
        name = self.prefix + ("migrated" if migrated else "empty")
        if name not in self.created:
            await self._create(name)
        connection = await self.connect(name)
        try:
            await connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            if migrated and await self._at_head(connection):
                await self._truncate(connection)
                return self.url(name)
            await connection.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")
        finally:
            await connection.close()
        if migrated:
            await migrate(self.url(name))
        return self.url(name)

    async def _create(self, name: str) -> None:
        admin = await self.connect(self.base)
        try:
            if not self.cleaned:
                await self._drop_abandoned(admin)
                self.cleaned = True
            # One left by an earlier process that had this pid may hold an older schema: start over.
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        self.created.add(name)

    async def _drop_abandoned(self, admin: asyncpg.Connection) -> None:
        rows = await admin.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE $1",
            self.stem.replace("_", "\\_") + "\\_p%\\_%",
        )
        for row in rows:
            pid_text = row["datname"][len(self.stem) + 2 :].split("_", 1)[0]
            if pid_text.isdigit() and not _process_alive(int(pid_text)):
                await admin.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')

    async def _at_head(self, connection: asyncpg.Connection) -> bool:
        if await connection.fetchval("SELECT to_regclass('public.alembic_version')") is None:
            return False
        return await connection.fetchval("SELECT max(version_num) FROM alembic_version") == head_revision()

    async def _truncate(self, connection: asyncpg.Connection) -> None:
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        )
        if tables:
            names = ", ".join(f'public."{row["tablename"]}"' for row in tables)
            await connection.execute(f"TRUNCATE {names}")

    async def drop_all(self) -> None:
        if not self.created:
            return
        admin = await self.connect(self.base)
        try:
            for name in sorted(self.created):
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[PostgresTestDatabases]:
    databases = PostgresTestDatabases(postgres_server_url())
    yield databases
    run_in_thread(databases.drop_all())


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, made once per session; tests get a copy (a copy is ~1 ms, a
    migration ~70 ms)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "itsm.db"
    run_in_thread(_migrate_and_dispose(f"sqlite+aiosqlite:///{path}"))
    return path


async def _migrate_and_dispose(url: str) -> None:
    engine = create_engine(url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()  # the last connection closing folds the WAL into the file


@pytest.fixture(params=["sqlite", "postgres"])
def database_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def database_url(database_backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database (no tables), private to this test."""
    if database_backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'itsm.db'}"
    databases: PostgresTestDatabases = request.getfixturevalue("postgres_databases")
    return await databases.reset(migrated=False)


@pytest.fixture
async def migrated_database_url(
    database_backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> str:
    """A database at the newest migration with no rows, private to this test. It is not the
    database of `database_url`: ask for one or the other."""
    if database_backend == "sqlite":
        path = tmp_path / "itsm-migrated.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    databases: PostgresTestDatabases = request.getfixturevalue("postgres_databases")
    return await databases.reset(migrated=True)


@pytest.fixture
async def store(migrated_database_url: str) -> AsyncIterator[TicketStore]:
    """A TicketStore on a migrated, empty database; closed (engine disposed) after the test."""
    ticket_store = TicketStore(create_engine(migrated_database_url))
    yield ticket_store
    await ticket_store.close()


# ---------------------------------------------------------------------------------------------


@pytest.fixture
async def harness(migrated_database_url: str) -> AsyncIterator[Any]:
    """The real gateway + sandbox on free ports, on each database backend."""
    from tests.gateway import running_gateway

    async with running_gateway(migrated_database_url) as running:
        yield running
