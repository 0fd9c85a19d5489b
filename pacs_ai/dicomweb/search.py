"""QIDO-RS (PS3.18 10.6): query parameters become one :class:`~pacs_ai.archive.query.Query`.

The matching itself is the shared matcher's (:mod:`pacs_ai.archive.query`), the same that
answers C-FIND; this module only reads the URL, chooses the attributes to return and writes
DICOM JSON (PS3.18 Annex F).

Decisions where PS3.18 leaves a choice:

- No match answers ``200`` with an empty array (PS3.18 2024 10.6.3.2 allows 200 for an empty
  result; ``204`` would make clients special-case it).
- A parameter that is not a DICOM attribute (keyword or ``ggggeeee`` tag) and not a QIDO-RS
  parameter is a ``400``; an attribute pacs-ai does not index, or one below the query level,
  is ignored with a ``Warning: 299`` header (10.6.1.3.1: "the origin server may ignore it").
- ``fuzzymatching=true`` is supported: person names match where any name component starts with
  the value.
- ``limit`` is capped at ``Settings.max_find_results``; a capped or truncated answer says so
  in a ``Warning`` header (10.6.3.3.1).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydicom.datadict import keyword_for_tag, tag_for_keyword
from sqlalchemy.orm import Session

from pacs_ai.api.errors import ApiError
from pacs_ai.archive.query import (
    ATTRIBUTES,
    UNIQUE_KEYS,
    Kind,
    Level,
    Query,
    QueryError,
    find,
    needs_utf8,
)
from pacs_ai.dicom.uids import is_valid_uid
from pacs_ai.dicomweb.dicom_json import match_json

OFFSET_MAX = 2**31 - 1
WARNING_AGENT = "pacs-ai"
RESERVED = {"limit", "offset", "fuzzymatching", "includefield"}
_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")

STUDY_DEFAULTS = (
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "InstanceAvailability",
    "ModalitiesInStudy",
    "ReferringPhysicianName",
    "RetrieveURL",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyID",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
    "StudyDescription",
)
"""PS3.18 Table 10.6.3-3 study attributes (those the index holds), plus StudyDescription,
which every study list shows."""

SERIES_DEFAULTS = (
    "Modality",
    "SeriesDescription",
    "RetrieveURL",
    "SeriesInstanceUID",
    "SeriesNumber",
    "NumberOfSeriesRelatedInstances",
    "PerformedProcedureStepStartDate",
    "StudyInstanceUID",
)
"""PS3.18 Table 10.6.3-4 series attributes that the index holds."""

INSTANCE_DEFAULTS = (
    "SOPClassUID",
    "SOPInstanceUID",
    "InstanceAvailability",
    "RetrieveURL",
    "InstanceNumber",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "StudyInstanceUID",
    "SeriesInstanceUID",
)
"""PS3.18 Table 10.6.3-5 instance attributes that the index holds."""

OURS = {"RetrieveURL", "InstanceAvailability"}
"""Returned attributes made here rather than by the matcher."""


def defaults(level: Level, top: Level) -> tuple[str, ...]:
    """Attributes returned at ``level`` without includefield (PS3.18 10.6.3.3.1).

    ``top`` is the highest level the path leaves open: a search over all series
    (``/series``) also returns the study attributes, one over a study's instances
    (``/studies/{uid}/instances``) the series attributes, as the standard's tables say.
    """
    tables = {Level.STUDY: STUDY_DEFAULTS, Level.SERIES: SERIES_DEFAULTS}
    returned: tuple[str, ...] = ()
    for current in (Level.STUDY, Level.SERIES, Level.IMAGE):
        if top <= current <= level:
            returned += tables.get(current, INSTANCE_DEFAULTS)
    return returned


@dataclass
class SearchRequest:
    """A QIDO-RS request, parsed."""

    level: Level
    keys: dict[str, str]
    fuzzy: bool
    limit: int
    offset: int
    warnings: list[str] = field(default_factory=list)


def _keyword(name: str) -> str | None:
    """The keyword for a parameter given as keyword or as ``ggggeeee``; None if neither."""
    if _TAG.fullmatch(name):
        return keyword_for_tag(int(name, 16)) or None
    return name if tag_for_keyword(name) is not None else None


def _integer(name: str, value: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError as exc:
        raise ApiError(400, f"{name} must be an integer, not {value[:40]!r}") from exc
    if not low <= number <= high:
        raise ApiError(400, f"{name} must be between {low} and {high}")
    return number


def _check_value(keyword: str, value: str) -> str:
    if any(ord(c) < 0x20 and c not in "\t" for c in value) or len(value) > 1024:
        raise ApiError(400, f"value of {keyword} has control characters or is too long")
    if not value.replace("\\", "").strip():
        return ""  # only separators: universal matching (PS3.4 C.2.2.2.3)
    attribute = ATTRIBUTES.get(keyword)
    if attribute is not None and attribute.kind is Kind.UID:
        uids = [u.strip() for u in value.replace(",", "\\").split("\\") if u.strip()]
        bad = [u for u in uids if not is_valid_uid(u)]
        if bad:
            raise ApiError(400, f"{keyword} is not a valid UID: {bad[0][:70]!r}")
        return "\\".join(uids)
    return value


def parse(
    level: Level,
    scope: dict[str, str],
    params: Sequence[tuple[str, str]],
    *,
    max_results: int,
) -> SearchRequest:
    """Read QIDO-RS query parameters (PS3.18 8.3.4) into a request; ApiError 400 when invalid.

    ``scope`` holds the UIDs of the path (``/studies/{uid}/series``), which match like keys.
    """
    top = Level(min(Level.STUDY + len(scope), level))
    warnings: list[str] = []
    matching: dict[str, list[str]] = {}
    include: list[str] = []
    fuzzy = False
    limit: int | None = None
    offset = 0
    for name, value in params:
        lowered = name.lower()
        if lowered == "limit":
            limit = _integer("limit", value, 0, OFFSET_MAX)
        elif lowered == "offset":
            offset = _integer("offset", value, 0, OFFSET_MAX)
        elif lowered == "fuzzymatching":
            if value.lower() not in ("true", "false"):
                raise ApiError(400, "fuzzymatching must be true or false")
            fuzzy = value.lower() == "true"
        elif lowered == "includefield":
            include.extend(v.strip() for v in value.split(",") if v.strip())
        else:
            keyword = _keyword(name)
            if keyword is None:
                if "." in name:
                    warnings.append(f"sequence matching is not supported; {name} ignored")
                    continue
                raise ApiError(400, f"{name!r} is neither a QIDO-RS parameter nor an attribute")
            matching.setdefault(keyword, []).append(value)
    keys: dict[str, str] = {}
    for keyword, values in matching.items():
        attribute = ATTRIBUTES.get(keyword)
        joined = "\\".join(c for c in (_check_value(keyword, v) for v in values) if c)
        if attribute is None or attribute.level > level:
            warnings.append(f"{keyword} is not a supported matching key at this level; ignored")
            continue
        if attribute.kind is Kind.COMPUTED and keyword != "ModalitiesInStudy":
            warnings.append(f"{keyword} cannot be matched; it is returned only")
            joined = ""
        keys[keyword] = joined
    for keyword, uid in scope.items():
        keys[keyword] = uid
    returned = list(defaults(level, top))
    returned.extend(UNIQUE_KEYS[lv] for lv in Level if Level.STUDY <= lv <= level)
    for item in include:
        if item.lower() == "all":
            returned.extend(k for k, a in ATTRIBUTES.items() if a.level <= level)
            continue
        keyword = _keyword(item)
        if keyword is None:
            raise ApiError(400, f"includefield {item!r} is not an attribute")
        attribute = ATTRIBUTES.get(keyword)
        if attribute is None or attribute.level > level:
            warnings.append(f"includefield {keyword} is not supported at this level; ignored")
            continue
        returned.append(keyword)
    for keyword in returned:
        if keyword in ATTRIBUTES or keyword in OURS:
            keys.setdefault(keyword, "")
    capped = min(limit, max_results) if limit is not None else max_results
    if limit is not None and limit > max_results:
        warnings.append(f"limit reduced to the server's maximum of {max_results}")
    return SearchRequest(level, keys, fuzzy, capped, offset, warnings)


def _retrieve_url(base: str, match: dict[str, Any], level: Level) -> str:
    url = f"{base}/studies/{match.get('StudyInstanceUID') or ''}"
    if level >= Level.SERIES:
        url += f"/series/{match.get('SeriesInstanceUID') or ''}"
    if level >= Level.IMAGE:
        url += f"/instances/{match.get('SOPInstanceUID') or ''}"
    return url


def search(
    *, session: Session, request: SearchRequest, dicomweb_base: str
) -> tuple[list[dict[str, Any]], list[str]]:
    """Run the request through the shared matcher: DICOM JSON objects and warnings."""
    matcher_keys = {k: v for k, v in request.keys.items() if k not in OURS}
    warnings = list(request.warnings)
    if request.limit == 0:
        return [], warnings
    try:
        matches = find(
            session,
            Query(request.level, matcher_keys, fuzzy=request.fuzzy),
            limit=request.limit + 1,
            offset=request.offset,
        )
    except QueryError as exc:
        raise ApiError(400, str(exc)) from exc
    if len(matches) > request.limit:
        matches = matches[: request.limit]
        warnings.append(
            "The number of results exceeded the limit; additional results can be requested "
            f"with offset={request.offset + request.limit}"
        )
    utf8 = needs_utf8(matches)
    answers = []
    for match in matches:
        if "RetrieveURL" in request.keys:
            match["RetrieveURL"] = _retrieve_url(dicomweb_base, match, request.level)
        if "InstanceAvailability" in request.keys:
            match["InstanceAvailability"] = "ONLINE"
        if utf8:
            match["SpecificCharacterSet"] = "ISO_IR 192"
        answers.append(match_json(match))
    return answers, warnings


def warning_header(warnings: Iterable[str]) -> dict[str, str]:
    """``Warning: 299 pacs-ai: "..."`` headers (RFC 7234 5.5, PS3.18 8.4.4), one value each."""
    values = [f'299 {WARNING_AGENT} "{w.replace(chr(34), chr(39))}"' for w in warnings]
    return {"Warning": ", ".join(values)} if values else {}
