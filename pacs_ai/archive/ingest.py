"""The one ingest path: every object, from a modality, STOW-RS, an import or our own models.

Steps, in this order, before anyone is told "stored":

1. parse and validate the Part 10 stream (structure, UIDs, pixel data size and framing);
2. write the file durably (:mod:`pacs_ai.archive.storage`);
3. index it in one database transaction.

A refused object leaves the archive as it was. The same SOP Instance UID again with the same
bytes is a success that changes nothing; with other bytes it is refused, unless ``overwrite``
is on, when the new object is indexed first and the old file removed after the commit.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple, cast

from sqlalchemy import Connection, Integer, Row, Table, bindparam, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from pacs_ai.archive.db import Database
from pacs_ai.archive.errors import IngestError, IngestErrorKind
from pacs_ai.archive.group_commit import GroupCommit
from pacs_ai.archive.header import Parsed, parse
from pacs_ai.archive.prepared import PreparedStatement
from pacs_ai.archive.schema import Instance, Patient, Series, Study, utcnow
from pacs_ai.archive.storage import StagedObject, Storage, StorageError
from pacs_ai.config import Settings

log = logging.getLogger(__name__)

__all__ = ["IngestError", "IngestErrorKind", "IngestResult", "Ingestor", "Outcome"]


class Outcome(StrEnum):
    """What ingest did with an accepted object."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    REPLACED = "replaced"


@dataclass(frozen=True)
class IngestResult:
    """An accepted object, as the index now knows it."""

    outcome: Outcome
    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    patient_id: str
    size_bytes: int


def _insert(connection: Connection, table: Table) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING for the connection's dialect."""
    name = connection.dialect.name
    return (
        pg_insert(table) if name == "postgresql" else sqlite_insert(table)
    ).on_conflict_do_nothing()


def _get_or_create(
    connection: Connection, table: Table, keys: dict[str, str], values: dict[str, Any]
) -> tuple[int, bool]:
    """The row id for ``keys``, inserting it with ``values`` if absent; True when created.

    ON CONFLICT DO NOTHING lets two associations that race to create the same study both
    succeed: the loser waits for the winner's row and then reads it.
    """
    where = [table.c[name] == value for name, value in keys.items()]
    found = connection.execute(select(table.c.id).where(*where)).scalar()
    if found is not None:
        return int(found), False
    inserted = connection.execute(
        _insert(connection, table).values(**keys, **values).returning(table.c.id)
    ).scalar()
    if inserted is not None:
        return int(inserted), True
    found = connection.execute(select(table.c.id).where(*where)).scalar_one()
    return int(found), False


class _IndexRequest(NamedTuple):
    parsed: Parsed
    relative: str
    size: int
    digest: str
    replacing: bool  # the check before the write saw this UID stored with other content


class _RowIdCache:
    """Row ids of patients, studies and series by their keys; bounded, thread-safe."""

    LIMIT = 50_000

    def __init__(self) -> None:
        self._ids: dict[tuple[str, ...], int] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...]) -> int | None:
        return self._ids.get(key)

    def remember(self, ids: dict[tuple[str, ...], int]) -> None:
        with self._lock:
            if len(self._ids) + len(ids) > self.LIMIT:
                self._ids.clear()
            self._ids.update(ids)

    def clear(self) -> None:
        with self._lock:
            self._ids.clear()


class _HotStatements:
    """The statements of the common case, one more instance of a known series, precompiled."""

    def __init__(self, database: Database) -> None:
        dialect = database.engine.dialect
        instance = cast(Table, Instance.__table__)
        series = cast(Table, Series.__table__)
        study = cast(Table, Study.__table__)
        now = bindparam("now", type_=series.c.updated_at.type)
        self.existing = PreparedStatement(
            select(instance.c.id, instance.c.series_pk, instance.c.sha256, instance.c.path).where(
                instance.c.sop_instance_uid == bindparam("uid")
            ),
            dialect,
        )
        self.insert_instance = PreparedStatement(  # every column but the key: all are given
            insert(instance).values(
                {c.name: bindparam(c.name, type_=c.type) for c in instance.c if not c.primary_key}
            ),
            dialect,
        )
        self.count_series = PreparedStatement(
            update(series)
            .where(series.c.id == bindparam("pk"))
            .values(num_instances=series.c.num_instances + 1, updated_at=now),
            dialect,
        )
        self.count_study = PreparedStatement(
            update(study)
            .where(study.c.id == bindparam("pk"))
            .values(
                num_instances=study.c.num_instances + 1,
                num_series=study.c.num_series + bindparam("new_series", type_=Integer()),
                updated_at=now,
            ),
            dialect,
        )


class Ingestor:
    """Takes Part 10 streams into the archive; thread-safe, one per process."""

    def __init__(
        self, database: Database, storage: Storage, *, overwrite: bool, max_object_bytes: int
    ) -> None:
        self.database = database
        self.storage = storage
        self.overwrite = overwrite
        self.max_object_bytes = max_object_bytes
        self._ids = _RowIdCache()
        self._sql = _HotStatements(database)
        self._group_commit: GroupCommit[_IndexRequest, str | None] = GroupCommit(self._index_batch)

    def ingest(self, data: bytes, *, expected_sop_class: str | None = None) -> IngestResult:
        """Store and index one Part 10 stream; IngestError says why when it is refused."""
        if len(data) > self.max_object_bytes:
            raise IngestError(
                IngestErrorKind.TOO_LARGE,
                f"object is {len(data)} bytes, the limit is {self.max_object_bytes}",
            )
        staged = self.storage.stage(data)  # written and synced while it is parsed
        try:
            # hashlib lets go of the interpreter lock: the writer thread takes it and starts.
            digest = hashlib.sha256(data).hexdigest()
            parsed = parse(data)
            if expected_sop_class is not None and parsed.sop_class_uid != expected_sop_class:
                raise IngestError(
                    IngestErrorKind.SOP_CLASS_MISMATCH,
                    f"dataset SOPClassUID {parsed.sop_class_uid} does not match the "
                    f"request's {expected_sop_class}",
                )
            try:
                # Most objects are new: no look first, the unique SOP Instance UID says
                # otherwise.
                return self._store(parsed, data, digest, None, staged)
            except IntegrityError:
                # The UID is indexed already (a resend, other content, or another
                # association that just stored it), or a cached row id went stale: a second
                # pass sees the rows as they are and answers duplicate, conflict or replaced.
                self._ids.clear()
                with self.database.engine.connect() as connection:
                    existing = self._sql.existing.execute(
                        connection, {"uid": parsed.sop_instance_uid}
                    ).first()
                return self._store(parsed, data, digest, existing, staged)
        finally:
            staged.discard()

    def ingest_many(
        self, items: Iterable[bytes]
    ) -> Iterator[tuple[bytes, IngestResult | IngestError]]:
        """Each object with its result or refusal, one after the other in this process.

        :class:`~pacs_ai.archive.ingest_pool.IngestPool` does the same in worker processes.
        """
        for data in items:
            try:
                yield data, self.ingest(data)
            except IngestError as exc:
                yield data, exc

    def _store(
        self,
        parsed: Parsed,
        data: bytes,
        digest: str,
        existing: Row[Any] | None,
        staged: StagedObject,
    ) -> IngestResult:
        """Write and index; ``existing`` is the stored row under this UID, if any."""
        if existing is not None and existing.sha256 == digest:
            self._repair_file(existing.path, staged)
            return self._result(Outcome.DUPLICATE, parsed, len(data))
        if existing is not None and not self.overwrite:
            raise IngestError(
                IngestErrorKind.CONFLICT,
                f"SOP Instance {parsed.sop_instance_uid} is stored with other content "
                "and overwrite is off",
            )
        try:
            relative = self.storage.relative_path(parsed.sop_instance_uid, digest)
            created = staged.place(relative)
        except StorageError as exc:
            raise IngestError(IngestErrorKind.STORAGE, str(exc)) from exc
        try:
            old_path = self._index(
                _IndexRequest(parsed, relative, len(data), digest, existing is not None)
            )
        except IntegrityError:
            if created:
                self._discard_unreferenced(relative)
            raise
        except SQLAlchemyError as exc:
            if created:
                self._discard_unreferenced(relative)
            log.exception("indexing %s failed", parsed.sop_instance_uid)
            raise IngestError(
                IngestErrorKind.INDEX, "the index could not record the object"
            ) from exc
        if old_path is not None and old_path != relative:
            self.storage.remove(old_path)
            return self._result(Outcome.REPLACED, parsed, len(data))
        return self._result(Outcome.STORED, parsed, len(data))

    def _repair_file(self, relative: str, staged: StagedObject) -> None:
        """An identical resend restores a file lost from disk since it was indexed."""
        try:
            staged.place(relative)
        except StorageError as exc:
            raise IngestError(IngestErrorKind.STORAGE, str(exc)) from exc

    def _discard_unreferenced(self, relative: str) -> None:
        with self.database.sessions() as session:
            referenced = session.execute(
                select(Instance.id).where(Instance.path == relative)
            ).first()
        if referenced is None:
            self.storage.remove(relative)

    def _index(self, request: _IndexRequest) -> str | None:
        """Index the object, committed; returns the replaced object's path, if any."""
        return self._group_commit.submit(request)

    def _index_batch(self, requests: Sequence[_IndexRequest]) -> list[str | BaseException | None]:
        """Index a batch in one transaction; each request of several in its own savepoint.

        A request that fails (a UID that raced in, a stale cached row id) gets its exception
        back without spoiling the others. Everything runs on the connection, with no ORM
        Session: its bookkeeping would cost more CPU than the common case's statements.
        """
        outcomes: list[str | BaseException | None] = []
        created: dict[tuple[str, ...], int] = {}
        with self.database.write_transaction() as connection:
            for request in requests:
                if len(requests) == 1:
                    outcomes.append(self._index_rows(connection, request, created))
                    continue
                try:
                    with connection.begin_nested():
                        mine: dict[tuple[str, ...], int] = {}
                        outcomes.append(self._index_rows(connection, request, mine))
                    created.update(mine)
                except SQLAlchemyError as exc:
                    outcomes.append(exc)
        self._ids.remember(created)
        return outcomes

    def _index_rows(
        self, connection: Connection, request: _IndexRequest, created: dict[tuple[str, ...], int]
    ) -> str | None:
        """Write one object's rows; returns the replaced object's path, if any.

        Row ids of known patients, studies and series come from a cache, so that the common
        case (one more instance of a series) is one INSERT and two counter UPDATEs.
        """
        parsed, relative, size, digest, replacing = request
        now = utcnow()
        # A new UID needs no second look: if another association stores it meanwhile, the
        # INSERT's unique constraint says so and ingest retries as duplicate or conflict.
        old = (
            self._sql.existing.execute(connection, {"uid": parsed.sop_instance_uid}).first()
            if replacing
            else None
        )
        old_path = None
        if old is not None:
            if old.sha256 == digest:
                return None
            old_path = old.path
            self._unindex(connection, old)
            self._ids.clear()
        patient_key = (
            "patient",
            parsed.patient["patient_id"],
            parsed.patient["issuer_of_patient_id"],
        )
        patient_pk = self._row_id(
            connection,
            created,
            patient_key,
            Patient.__table__,  # type: ignore[arg-type]
            {
                "patient_id": parsed.patient["patient_id"],
                "issuer_of_patient_id": parsed.patient["issuer_of_patient_id"],
            },
            {
                **_without(parsed.patient, "patient_id", "issuer_of_patient_id"),
                "created_at": now,
            },
        )
        study_pk = self._row_id(
            connection,
            created,
            ("study", parsed.study_instance_uid),
            Study.__table__,  # type: ignore[arg-type]
            {"study_instance_uid": parsed.study_instance_uid},
            {**parsed.study, "patient_pk": patient_pk, "created_at": now, "updated_at": now},
        )
        series_key = ("series", parsed.series_instance_uid)
        series_pk = self._row_id(
            connection,
            created,
            series_key,
            Series.__table__,  # type: ignore[arg-type]
            {"series_instance_uid": parsed.series_instance_uid},
            {**parsed.series, "study_pk": study_pk, "created_at": now, "updated_at": now},
        )
        if old_path is not None:
            self._refresh_attributes(connection, parsed, patient_pk, study_pk, series_pk)
        self._sql.insert_instance.execute(
            connection,
            {
                "sop_instance_uid": parsed.sop_instance_uid,
                "series_pk": series_pk,
                "size_bytes": size,
                "sha256": digest,
                "path": relative,
                "received_at": now,
                **parsed.instance,
            },
        )
        self._sql.count_series.execute(connection, {"pk": series_pk, "now": now})
        self._sql.count_study.execute(
            connection,
            {"pk": study_pk, "new_series": 1 if series_key in created else 0, "now": now},
        )
        return old_path

    def _row_id(
        self,
        connection: Connection,
        created: dict[tuple[str, ...], int],
        key: tuple[str, ...],
        table: Table,
        keys: dict[str, str],
        values: dict[str, Any],
    ) -> int:
        """The row id for ``key``: cached, found, or a new row (then noted in ``created``).

        New ids join the cache only after the commit, so a rolled-back row is never cached.
        """
        cached = self._ids.get(key)
        if cached is not None:
            return cached
        row_id, is_new = _get_or_create(connection, table, keys, values)
        if is_new:
            created[key] = row_id
        else:
            self._ids.remember({key: row_id})
        return row_id

    @staticmethod
    def _refresh_attributes(
        connection: Connection, parsed: Parsed, patient_pk: int, study_pk: int, series_pk: int
    ) -> None:
        """A replacing object corrects the patient, study and series attributes it carries."""
        connection.execute(
            update(Patient)
            .where(Patient.id == patient_pk)
            .values(**_without(parsed.patient, "patient_id", "issuer_of_patient_id"))
        )
        connection.execute(update(Study).where(Study.id == study_pk).values(**parsed.study))
        connection.execute(update(Series).where(Series.id == series_pk).values(**parsed.series))

    @staticmethod
    def _unindex(connection: Connection, old: Row[Any]) -> None:
        """Remove an instance row being replaced, with its counts; drop emptied parents."""
        series = connection.execute(
            select(Series.id, Series.study_pk, Series.num_instances).where(
                Series.id == old.series_pk
            )
        ).first()
        connection.execute(delete(Instance).where(Instance.id == old.id))
        if series is None:
            return
        connection.execute(
            update(Series)
            .where(Series.id == series.id)
            .values(num_instances=Series.num_instances - 1)
        )
        emptied = series.num_instances - 1 <= 0
        connection.execute(
            update(Study)
            .where(Study.id == series.study_pk)
            .values(
                num_instances=Study.num_instances - 1,
                num_series=Study.num_series - (1 if emptied else 0),
            )
        )
        if emptied:
            connection.execute(delete(Series).where(Series.id == series.id))
            remaining = connection.execute(
                select(Study.num_instances).where(Study.id == series.study_pk)
            ).scalar()
            if not remaining:
                connection.execute(delete(Study).where(Study.id == series.study_pk))

    @staticmethod
    def _result(outcome: Outcome, parsed: Parsed, size: int) -> IngestResult:
        return IngestResult(
            outcome=outcome,
            sop_class_uid=parsed.sop_class_uid,
            sop_instance_uid=parsed.sop_instance_uid,
            series_instance_uid=parsed.series_instance_uid,
            study_instance_uid=parsed.study_instance_uid,
            patient_id=parsed.patient["patient_id"],
            size_bytes=size,
        )


def _without(values: dict[str, str], *names: str) -> dict[str, str]:
    return {k: v for k, v in values.items() if k not in names}


def build_ingestor(settings: Settings, database: Database) -> Ingestor:
    """The ingest path that ``settings`` describe, over ``database`` and the settings' store.

    One place for it: the server, its DIMSE workers and its ingest processes all use it.
    """
    return Ingestor(
        database,
        Storage(settings.storage_dir),
        overwrite=settings.overwrite,
        max_object_bytes=settings.max_object_bytes,
    )
