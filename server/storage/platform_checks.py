"""Per-platform facts every replica must share: whether the platform keeps the correlation marker."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from server.storage.clock import db_time
from server.storage.database import run
from server.storage.schema import platform_checks


class PlatformCheckStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    async def record_marker(self, platform: str, *, kept: bool, detail: str) -> None:
        detail = detail[:2000]
        values = {"platform": platform, "marker_kept": kept, "detail": detail, "checked_at": db_time()}
        statement = self._insert(platform_checks).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=["platform"],
            set_={"marker_kept": kept, "detail": detail, "checked_at": db_time()},
        )
        await run(self.engine, lambda connection: connection.execute(statement))

    async def markers(self) -> dict[str, tuple[bool, str]]:
        """platform -> (kept, detail) for every platform checked so far."""
        columns = platform_checks.c
        statement = select(columns.platform, columns.marker_kept, columns.detail)
        rows = await run(self.engine, lambda connection: connection.execute(statement).all())
        return {platform: (kept, detail) for platform, kept, detail in rows}
