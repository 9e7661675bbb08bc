"""The database's clock, as SQL: every stored time and every lease comparison uses it.

Replicas coordinate through PostgreSQL, so its clock is the one all of them share; a replica whose
own clock runs ahead can neither take over a live lease nor record a time from its future. SQLite
serves one host, whose clock it reads with millisecond precision.

db_time() is "now" as the database sees it (constant within one statement); db_time(seconds) is that
plus an offset, given as a number or a bound parameter.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from server.storage.schema import UtcDateTime

# SQLAlchemy's own SQLite text format for datetimes (microseconds), so stored values and the
# database's clock compare correctly as text.
_SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f000', 'now'{offset})"


class DbTime(FunctionElement[Any]):
    """The database's current time, optionally plus an offset in seconds."""

    type = UtcDateTime()
    inherit_cache = True
    name = "itsm_db_time"


def db_time(offset: float | ColumnElement[Any] | None = None) -> DbTime:
    if offset is None:
        return DbTime()
    if not isinstance(offset, ColumnElement):
        offset = bindparam(None, float(offset), unique=True)
    return DbTime(offset)


@compiles(DbTime, "postgresql")
def _postgresql(element: DbTime, compiler: SQLCompiler, **kw: Any) -> str:
    # statement_timestamp(): one value per statement, unlike clock_timestamp(), so the times one
    # statement writes agree with each other; unlike now(), not frozen for a whole transaction.
    arguments = list(element.clauses)
    if not arguments:
        return "statement_timestamp()"
    offset = compiler.process(arguments[0], **kw)
    return f"(statement_timestamp() + CAST({offset} AS DOUBLE PRECISION) * INTERVAL '1 second')"


@compiles(DbTime, "sqlite")
def _sqlite(element: DbTime, compiler: SQLCompiler, **kw: Any) -> str:
    arguments = list(element.clauses)
    if not arguments:
        return _SQLITE_NOW.format(offset="")
    offset = compiler.process(arguments[0], **kw)
    return _SQLITE_NOW.format(offset=f", printf('%+.3f seconds', {offset})")
