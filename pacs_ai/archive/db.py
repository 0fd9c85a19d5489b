"""Engine and sessions: SQLite (WAL) by default, PostgreSQL by URL.

One engine and one sessionmaker per process, made here and handed to every part by the
composition root; no handler creates its own.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
KEPT_IDLE_S = 5.0
"""A write connection idle this long is not reused unchecked (see _KeptConnection)."""


class Base(DeclarativeBase):
    """Declarative base shared by the tables of every part of pacs-ai."""


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers run beside the writer; FULL sync makes each commit durable.

    ``synchronous=FULL`` fsyncs the WAL at every commit: an acknowledged C-STORE must survive
    a power cut, not only a process crash. ``busy_timeout`` lets concurrent associations wait
    for the write lock instead of failing.
    """
    dbapi_connection.isolation_level = None  # BEGIN is ours, see _begin_sqlite
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA case_sensitive_like=ON")  # DICOM matching is case-sensitive
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; for SQLite the parent folder is created and pragmas are set."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=20
        )
        event.listen(engine, "connect", _configure_sqlite)
        event.listen(engine, "begin", _begin_sqlite)
        return engine
    return create_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True)


def _begin_sqlite(conn: Any) -> None:
    """Open SQLite transactions ourselves, IMMEDIATE where the connection will write.

    A deferred transaction that reads and then writes fails at once with SQLITE_BUSY when
    another writer committed in between; taking the write lock at BEGIN makes concurrent
    ingests wait their turn (``busy_timeout``) instead.
    """
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


class _WriteTurns:
    """Write transactions that take turns, across threads and across processes.

    SQLite has one writer at a time; a writer that meets its lock waits in SQLite's busy
    handler, which sleeps in growing steps up to 100 ms. A thread lock, then an exclusive
    ``flock`` on a file beside the database (several DIMSE processes write to one index),
    hand the turn over the moment it is free instead. Writers that do not take part (a
    command-line tool, say) still fall back on the busy handler.
    """

    def __init__(self, lock_path: Path | None) -> None:
        self._turn = threading.Lock()
        self._lock_fd = (
            os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o640) if lock_path is not None else None
        )

    @contextmanager
    def take(self) -> Iterator[None]:
        """Hold the turn for the duration of one write transaction."""
        with self._turn:
            if self._lock_fd is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                if self._lock_fd is not None:
                    fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Release the lock file's descriptor."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


class _KeptConnection:
    """One connection kept open between write transactions, for whoever writes next.

    Checking a connection out of the pool and back in (with the pool's reset and, on
    PostgreSQL, its liveness ping) cost as much interpreter time as the index's statements
    for one object. A connection idle for longer than KEPT_IDLE_S goes back to the pool
    instead, so that one left behind by a database restart is never used unchecked; one that
    broke is dropped.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._kept: tuple[Connection, float] | None = None

    def take(self) -> Connection:
        """The kept connection if it is fresh, else one from the pool."""
        with self._lock:
            kept, self._kept = self._kept, None
        if kept is not None:
            connection, since = kept
            if time.monotonic() - since <= KEPT_IDLE_S and not connection.invalidated:
                return connection
            connection.close()
        return self._engine.connect()

    def give_back(self, connection: Connection) -> None:
        """Keep ``connection`` for the next writer, unless it broke or one is kept already."""
        if not connection.closed and not connection.invalidated:
            with self._lock:
                if self._kept is None:
                    self._kept = (connection, time.monotonic())
                    return
        connection.close()

    def close(self) -> None:
        """Return the kept connection to the pool."""
        with self._lock:
            kept, self._kept = self._kept, None
        if kept is not None:
            kept[0].close()


class _SerializedSessions(sessionmaker[Session]):
    """Sessions whose write transactions take turns (:class:`_WriteTurns`)."""

    def __init__(self, bind: Engine, turns: _WriteTurns) -> None:
        super().__init__(bind, expire_on_commit=False)
        self._turns = turns

    @contextmanager
    def begin(self) -> Iterator[Session]:
        with self._turns.take(), super().begin() as session:
            yield session


class Database:
    """The process's engine and its session factories: reads, and write transactions.

    Write transactions come as ORM sessions (:attr:`write_sessions`) or, where a Session's
    bookkeeping would cost more than the statements, as a bare connection
    (:meth:`write_transaction`); both take the same turns on SQLite.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self.sessions: sessionmaker[Session] = sessionmaker(self.engine, expire_on_commit=False)
        self._write_engine = (
            self.engine.execution_options(sqlite_begin="IMMEDIATE")
            if self.is_sqlite
            else self.engine
        )
        self._write_turns = _WriteTurns(_write_lock_path(url)) if self.is_sqlite else None
        self._writer = _KeptConnection(self._write_engine)
        self.write_sessions: sessionmaker[Session] = (
            _SerializedSessions(self._write_engine, self._write_turns)
            if self._write_turns is not None
            else sessionmaker(self.engine, expire_on_commit=False)
        )

    @contextmanager
    def write_transaction(self) -> Iterator[Connection]:
        """A write transaction on a bare connection, committed on exit, rolled back on error.

        What ``write_sessions.begin()`` gives, less the ORM Session: for the index's hot
        path, whose few statements cost less than a Session's begin, commit and close.
        One connection is kept between such transactions (:class:`_KeptConnection`).
        """
        turn = self._write_turns.take() if self._write_turns is not None else nullcontext()
        with turn:
            connection = self._writer.take()
            try:
                with connection.begin():
                    yield connection
            finally:
                self._writer.give_back(connection)

    def upgrade(self, revision: str = "head") -> None:
        """Apply the shipped migrations to this database."""
        upgrade(self.url, revision)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self._writer.close()
        self.engine.dispose()
        if self._write_turns is not None:
            self._write_turns.close()


def _write_lock_path(url: str) -> Path | None:
    """``<database>.write-lock`` for a SQLite file; None for an in-memory database."""
    path = url.split("///", 1)[-1]
    if not path or path == ":memory:":
        return None
    return Path(path + ".write-lock")


def alembic_config(url: str) -> Config:
    """Alembic configuration for the migrations shipped inside the package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` (``pacs-ai db upgrade``)."""
    command.upgrade(alembic_config(url), revision)
