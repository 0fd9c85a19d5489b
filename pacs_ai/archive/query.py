"""The one DICOM matcher: C-FIND identifiers and QIDO-RS queries become SQL here.

Each matching type of PS3.4 C.2.2.2 is one function:

- C.2.2.2.1 single value matching: :func:`match_single`
- C.2.2.2.2 list of UID matching: :func:`match_uid_list`
- C.2.2.2.3 universal matching: an empty value adds no condition (:func:`condition_for`)
- C.2.2.2.4 wild card matching (``*`` and ``?``): :func:`match_wildcard`
- C.2.2.2.5 range matching of DA, TM and DT: :func:`match_range`

PN values match case-insensitively, as C.2.2.2.1 permits, on upper-cased columns; other
strings match case-sensitively. Sequence matching (C.2.2.2.6) is not supported: such keys,
and keys the index does not hold, are returned empty and not matched, as C.2.2.2 allows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from pacs_ai.archive.schema import Instance, Patient, Series, Study
from pacs_ai.dicom.values import normalize_datetime, normalize_pn, normalize_time


class Level(IntEnum):
    """Query/retrieve levels, ordered from the top of the hierarchy down."""

    PATIENT = 0
    STUDY = 1
    SERIES = 2
    IMAGE = 3


class Kind(StrEnum):
    """How the values of an attribute are matched."""

    TEXT = "text"
    PN = "pn"
    UID = "uid"
    DATE = "date"
    TIME = "time"
    DATETIME = "datetime"
    COMPUTED = "computed"


class QueryError(ValueError):
    """A query the matcher cannot run (bad level, malformed range); the reason is for the peer."""


@dataclass(frozen=True)
class Attribute:
    """An attribute the index answers: its level, the column matched and the one returned."""

    keyword: str
    level: Level
    kind: Kind
    match_column: InstrumentedAttribute[Any] | None
    value_column: InstrumentedAttribute[Any] | None


def _attr(
    keyword: str,
    level: Level,
    kind: Kind,
    column: InstrumentedAttribute[Any] | None,
    match_column: InstrumentedAttribute[Any] | None = None,
) -> Attribute:
    return Attribute(
        keyword, level, kind, match_column if match_column is not None else column, column
    )


ATTRIBUTES: dict[str, Attribute] = {
    a.keyword: a
    for a in (
        _attr(
            "PatientName", Level.PATIENT, Kind.PN, Patient.patient_name, Patient.patient_name_norm
        ),
        _attr("PatientID", Level.PATIENT, Kind.TEXT, Patient.patient_id),
        _attr("IssuerOfPatientID", Level.PATIENT, Kind.TEXT, Patient.issuer_of_patient_id),
        _attr("PatientBirthDate", Level.PATIENT, Kind.DATE, Patient.patient_birth_date),
        _attr("PatientSex", Level.PATIENT, Kind.TEXT, Patient.patient_sex),
        _attr("NumberOfPatientRelatedStudies", Level.PATIENT, Kind.COMPUTED, None),
        _attr("NumberOfPatientRelatedSeries", Level.PATIENT, Kind.COMPUTED, None),
        _attr("NumberOfPatientRelatedInstances", Level.PATIENT, Kind.COMPUTED, None),
        _attr("StudyInstanceUID", Level.STUDY, Kind.UID, Study.study_instance_uid),
        _attr("StudyDate", Level.STUDY, Kind.DATE, Study.study_date),
        _attr("StudyTime", Level.STUDY, Kind.TIME, Study.study_time, Study.study_time_norm),
        _attr("AccessionNumber", Level.STUDY, Kind.TEXT, Study.accession_number),
        _attr("StudyID", Level.STUDY, Kind.TEXT, Study.study_id),
        _attr("StudyDescription", Level.STUDY, Kind.TEXT, Study.study_description),
        _attr(
            "ReferringPhysicianName",
            Level.STUDY,
            Kind.PN,
            Study.referring_physician_name,
            Study.referring_physician_name_norm,
        ),
        _attr("PatientAge", Level.STUDY, Kind.TEXT, Study.patient_age),
        _attr("ModalitiesInStudy", Level.STUDY, Kind.COMPUTED, None),
        _attr("NumberOfStudyRelatedSeries", Level.STUDY, Kind.COMPUTED, Study.num_series),
        _attr("NumberOfStudyRelatedInstances", Level.STUDY, Kind.COMPUTED, Study.num_instances),
        _attr("SeriesInstanceUID", Level.SERIES, Kind.UID, Series.series_instance_uid),
        _attr("Modality", Level.SERIES, Kind.TEXT, Series.modality),
        _attr("SeriesNumber", Level.SERIES, Kind.TEXT, Series.series_number),
        _attr("SeriesDescription", Level.SERIES, Kind.TEXT, Series.series_description),
        _attr("BodyPartExamined", Level.SERIES, Kind.TEXT, Series.body_part_examined),
        _attr("SeriesDate", Level.SERIES, Kind.DATE, Series.series_date),
        _attr(
            "PerformedProcedureStepStartDate",
            Level.SERIES,
            Kind.DATE,
            Series.performed_procedure_step_start_date,
        ),
        _attr("NumberOfSeriesRelatedInstances", Level.SERIES, Kind.COMPUTED, Series.num_instances),
        _attr("SOPInstanceUID", Level.IMAGE, Kind.UID, Instance.sop_instance_uid),
        _attr("SOPClassUID", Level.IMAGE, Kind.UID, Instance.sop_class_uid),
        _attr("InstanceNumber", Level.IMAGE, Kind.TEXT, Instance.instance_number),
        _attr("Rows", Level.IMAGE, Kind.COMPUTED, Instance.rows),
        _attr("Columns", Level.IMAGE, Kind.COMPUTED, Instance.columns),
        _attr("NumberOfFrames", Level.IMAGE, Kind.COMPUTED, Instance.number_of_frames),
        _attr(
            "AcquisitionDateTime",
            Level.IMAGE,
            Kind.DATETIME,
            Instance.acquisition_datetime,
            Instance.acquisition_datetime_norm,
        ),
    )
}

UNIQUE_KEYS = {
    Level.PATIENT: "PatientID",
    Level.STUDY: "StudyInstanceUID",
    Level.SERIES: "SeriesInstanceUID",
    Level.IMAGE: "SOPInstanceUID",
}


def _like_pattern(value: str) -> str:
    """DICOM ``*``/``?`` to SQL LIKE, escaping LIKE's own ``%``, ``_`` and the escape ``!``."""
    escaped = value.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return escaped.replace("*", "%").replace("?", "_")


def match_single(column: Any, value: str) -> ColumnElement[bool]:
    """C.2.2.2.1: the attribute equals the value."""
    return column == value


def match_uid_list(column: Any, values: list[str]) -> ColumnElement[bool]:
    """C.2.2.2.2: the attribute equals any UID of the backslash-separated list."""
    return column.in_(values)


def match_wildcard(column: Any, value: str) -> ColumnElement[bool]:
    """C.2.2.2.4: ``*`` any run of characters, ``?`` one character."""
    return column.like(_like_pattern(value), escape="!")


def match_range(
    column: Any, value: str, normalize: Callable[..., str | None]
) -> ColumnElement[bool]:
    """C.2.2.2.5: ``a-b``, ``a-`` or ``-b`` on DA, TM or DT, bounds inclusive.

    A DT may carry a ``-ZZXX`` offset, so the range's own hyphen is the first one that leaves
    two valid (or empty) bounds.
    """
    low = high = None
    for position, character in enumerate(value):
        if character != "-":
            continue
        low_text, high_text = value[:position], value[position + 1 :]
        low = normalize(low_text, upper=False) if low_text else None
        high = normalize(high_text, upper=True) if high_text else None
        if (low_text and low is None) or (high_text and high is None):
            low = high = None
            continue
        break
    if low is None and high is None:
        raise QueryError(f"malformed range {value!r}")
    conditions: list[ColumnElement[bool]] = [column != ""]
    if low is not None:
        conditions.append(column >= low)
    if high is not None:
        conditions.append(column <= high)
    return and_(*conditions)


def _normalize_date(value: str, *, upper: bool = False) -> str | None:
    text = value.strip().replace(".", "")
    return text if len(text) == 8 and text.isdigit() else None


_NORMALIZERS: dict[Kind, Callable[..., str | None]] = {
    Kind.DATE: _normalize_date,
    Kind.TIME: normalize_time,
    Kind.DATETIME: normalize_datetime,
}


def _match_one(attribute: Attribute, column: Any, value: str, fuzzy: bool) -> ColumnElement[bool]:
    kind = attribute.kind
    if kind in _NORMALIZERS:
        normalize = _NORMALIZERS[kind]
        if "-" in value:
            return match_range(column, value, normalize)
        if normalize(value) is None:
            raise QueryError(f"malformed {attribute.keyword} value {value!r}")
        if kind is Kind.DATE:
            return match_single(column, normalize(value) or "")
        # A TM or DT given to a lower precision names the whole span it covers.
        return match_range(column, f"{value}-{value}", normalize)
    if kind is Kind.PN:
        value = normalize_pn(value)
        if fuzzy:
            # PS3.18 8.3.4.1 fuzzymatching: a name matches where any of its components starts
            # with the value.
            pattern = _like_pattern(value.rstrip("*")) + "%"
            return or_(column.like(pattern, escape="!"), column.like("%^" + pattern, escape="!"))
    if kind is not Kind.UID and ("*" in value or "?" in value):
        return match_wildcard(column, value)
    return match_single(column, value)


def condition_for(
    attribute: Attribute, value: str, *, fuzzy: bool = False
) -> ColumnElement[bool] | None:
    """The SQL condition for one key, or None for universal matching (C.2.2.2.3)."""
    value = value.strip()
    if value in ("", "*"):
        return None
    if attribute.keyword == "ModalitiesInStudy":
        modalities = [v.strip() for v in value.split("\\") if v.strip()]
        return exists().where(Series.study_pk == Study.id, Series.modality.in_(modalities))
    column = attribute.match_column
    if column is None:
        return None
    if attribute.kind is Kind.UID:
        uids = [v.strip() for v in value.split("\\") if v.strip()]
        if not uids:
            return None
        return match_uid_list(column, uids) if len(uids) > 1 else match_single(column, uids[0])
    parts = [v for v in value.split("\\") if v.strip()]
    if not parts:  # only backslashes: no value to match, as universal matching
        return None
    conditions = [_match_one(attribute, column, part.strip(), fuzzy) for part in parts]
    return conditions[0] if len(conditions) == 1 else or_(*conditions)


@dataclass(frozen=True)
class Query:
    """A parsed query: the level, the keys asked for (in order) and their values."""

    level: Level
    keys: Mapping[str, str]
    fuzzy: bool = False


_ENTITIES = (Patient, Study, Series, Instance)


def build_select(query: Query) -> Select[Any]:
    """SELECT of the entities down to the query level, filtered by the keys that can match."""
    entities = _ENTITIES[: query.level + 1]
    statement: Select[Any] = select(*entities)  # type: ignore[assignment]
    if query.level >= Level.STUDY:
        statement = statement.join(Study, Study.patient_pk == Patient.id)
    if query.level >= Level.SERIES:
        statement = statement.join(Series, Series.study_pk == Study.id)
    if query.level >= Level.IMAGE:
        statement = statement.join(Instance, Instance.series_pk == Series.id)
    for keyword, value in query.keys.items():
        attribute = ATTRIBUTES.get(keyword)
        if attribute is None or attribute.level > query.level:
            continue
        condition = condition_for(attribute, value, fuzzy=query.fuzzy)
        if condition is not None:
            statement = statement.where(condition)
    return statement.order_by(entities[-1].id)


def _computed_counts(
    session: Session, level_rows: Sequence[Any], keys: Iterable[str]
) -> dict[str, dict[int, Any]]:
    """Patient counts and ModalitiesInStudy, fetched once for the whole page of results."""
    wanted = set(keys)
    found: dict[str, dict[int, Any]] = {}
    patient_ids = [row[0].id for row in level_rows]
    if "ModalitiesInStudy" in wanted and level_rows and len(level_rows[0]) > 1:
        study_ids = [row[1].id for row in level_rows]
        modalities: dict[int, list[str]] = {}
        for study_pk, modality in session.execute(
            select(Series.study_pk, Series.modality)
            .where(Series.study_pk.in_(study_ids))
            .distinct()
            .order_by(Series.study_pk, Series.modality)
        ):
            if modality:
                modalities.setdefault(study_pk, []).append(modality)
        found["ModalitiesInStudy"] = modalities
    counters = {
        "NumberOfPatientRelatedStudies": func.count(func.distinct(Study.id)),
        "NumberOfPatientRelatedSeries": func.count(func.distinct(Series.id)),
        "NumberOfPatientRelatedInstances": func.coalesce(func.sum(Series.num_instances), 0),
    }
    for keyword, aggregate in counters.items():
        if keyword not in wanted or not patient_ids:
            continue
        rows = session.execute(
            select(Study.patient_pk, aggregate)
            .select_from(Study)
            .outerjoin(Series, Series.study_pk == Study.id)
            .where(Study.patient_pk.in_(patient_ids))
            .group_by(Study.patient_pk)
        )
        found[keyword] = {patient_pk: count for patient_pk, count in rows}
    return found


def set_value(ds: Dataset, keyword: str, value: Any) -> None:
    """Put an index value into an identifier under its keyword, with its dictionary VR."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        return
    vr = dictionary_VR(tag)
    if value in (None, ""):
        ds.add_new(tag, vr, None)
    elif isinstance(value, list):
        ds.add_new(tag, vr, value)
    elif vr in ("US", "UL", "SS", "SL"):
        ds.add_new(tag, vr, int(value))
    else:
        ds.add_new(tag, vr, str(value))


def find(
    session: Session, query: Query, *, limit: int | None = None, offset: int = 0
) -> list[dict[str, Any]]:
    """Matches of ``query``: per match, each key asked for with its value as the index holds it.

    Keys the index does not hold are returned with no value (None: C.2.2.2 "not matched");
    no key that was not asked for is added (C.4.1.1.3.2), so callers that want the unique
    keys (QIDO-RS) ask for them. C-FIND turns matches into identifiers (:func:`run`), QIDO-RS
    straight into DICOM JSON.
    """
    statement = build_select(query)
    if offset:
        statement = statement.offset(offset)
    if limit is not None:
        statement = statement.limit(limit)
    rows = session.execute(statement).all()
    requested = [
        k for k in query.keys if k != "QueryRetrieveLevel" and tag_for_keyword(k) is not None
    ]
    computed = _computed_counts(session, rows, requested)
    matches: list[dict[str, Any]] = []
    for row in rows:
        match: dict[str, Any] = {}
        for keyword in requested:
            attribute = ATTRIBUTES.get(keyword)
            value: Any = None
            if attribute is not None and attribute.level <= query.level:
                if keyword in computed:
                    source = row[0] if attribute.level is Level.PATIENT else row[1]
                    value = computed[keyword].get(
                        source.id, 0 if keyword.startswith("Number") else None
                    )
                elif attribute.value_column is not None:
                    entity = row[attribute.level]
                    value = getattr(entity, attribute.value_column.key)
            match[keyword] = value
        matches.append(match)
    return matches


def needs_utf8(matches: list[dict[str, Any]]) -> bool:
    """True when a matched text is not ASCII: the answer then declares ISO_IR 192 (UTF-8)."""
    return any(isinstance(v, str) and not v.isascii() for m in matches for v in m.values())


def run(
    session: Session, query: Query, *, limit: int | None = None, offset: int = 0
) -> list[Dataset]:
    """Matches of ``query`` as C-FIND response identifiers (see :func:`find`)."""
    matches = find(session, query, limit=limit, offset=offset)
    utf8 = needs_utf8(matches)
    results: list[Dataset] = []
    for match in matches:
        ds = Dataset()
        for keyword, value in match.items():
            set_value(ds, keyword, value)
        ds.QueryRetrieveLevel = query.level.name
        if utf8:
            ds.SpecificCharacterSet = "ISO_IR 192"
        results.append(ds)
    return results


def matching_instances(session: Session, level: Level, keys: Mapping[str, str]) -> list[Instance]:
    """Instances under the entities that a C-GET/C-MOVE identifier at ``level`` names."""
    scoped = {k: v for k, v in keys.items() if k in ATTRIBUTES and ATTRIBUTES[k].level <= level}
    statement = build_select(Query(Level.IMAGE, scoped))
    return [row[3] for row in session.execute(statement)]
