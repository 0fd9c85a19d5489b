"""Statements compiled once and run as driver SQL, for the few that run for every object.

SQLAlchemy builds a statement object, computes its cache key and looks up its compiled
form on every call: about a tenth of a millisecond, more than SQLite takes to run a
one-row INSERT. Ingest runs a handful of statements per object, so they are compiled here
once per dialect (types, quoting and parameter style stay SQLAlchemy's) and executed with
``exec_driver_sql``. Everything that runs rarely stays ordinary SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection, CursorResult
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Executable


class PreparedStatement:
    """One statement, compiled for one dialect, with its parameter defaults and converters."""

    def __init__(self, statement: Executable, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
        self.sql = str(compiled)
        # Defaults the statement carries itself: column defaults, literals such as ``+ 1``.
        self._defaults: dict[str, Any] = {
            name: bind.value for name, bind in compiled.binds.items() if not bind.required
        }
        self._order: list[str] | None = (
            list(compiled.positiontup) if compiled.positiontup is not None else None
        )
        converters: dict[str, Callable[[Any], Any]] = {}
        for name, bind in compiled.binds.items():
            convert = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if convert is not None:
                converters[name] = convert
        self._converters = converters

    def parameters(self, values: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        """Driver parameters for ``values`` (by bind name), in the dialect's style."""
        merged = {**self._defaults, **values}
        for name, convert in self._converters.items():
            merged[name] = convert(merged[name])
        if self._order is None:
            return merged
        return tuple(merged[name] for name in self._order)

    def execute(self, connection: Connection, values: Mapping[str, Any]) -> CursorResult[Any]:
        """Run on ``connection`` (inside its current transaction)."""
        return connection.exec_driver_sql(self.sql, self.parameters(values))
