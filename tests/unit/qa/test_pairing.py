"""Shadow against active calls, paired and counted in SQL, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from pacs_ai.archive.db import Database
from pacs_ai.archive.schema import utcnow
from pacs_ai.pipeline.schema import FindingRow, Job
from pacs_ai.qa.findings import paired_calls, tallied_findings
from pacs_ai.qa.stats import PairTally

NOW = utcnow()
SINCE, UNTIL = NOW - timedelta(days=30), NOW
DAY = NOW - timedelta(days=10)


def call(
    database: Database,
    study: str,
    present: bool,
    probability: float,
    *,
    version: str = "1.0",
    shadow: bool = False,
    model: str = "pe-net",
    at: datetime = DAY,
    status: str = "current",
) -> None:
    """One run of ``model`` ``version`` on ``study`` and its finding, as the recorder writes."""
    with database.write_sessions.begin() as session:
        job = Job(
            study_instance_uid=study,
            series_instance_uid=study + ".1",
            pipeline="ctpa",
            pipeline_version=1,
            content_key=f"{study}-{model}-{version}-{at.timestamp()}-{status}",
            model_name=model,
            model_version=version,
            shadow=shadow,
            state="done",
            last_instance_at=at,
            stable_at=at,
        )
        session.add(job)
        session.flush()
        session.add(
            FindingRow(
                job_id=job.id,
                study_instance_uid=study,
                model_name=model,
                model_version=version,
                shadow=shadow,
                code_scheme="SCT",
                code_value="59282003",
                code_meaning="Pulmonary embolism",
                present=present,
                probability=probability,
                status=status,
                created_at=at,
            )
        )


def test_calls_pair_per_study_newest_first(database: Database) -> None:
    def pair(study: str, active: bool, shadow: bool, pa: float, ps: float) -> None:
        call(database, study, active, pa)
        call(database, study, shadow, ps, version="2.0", shadow=True)

    pair("s1", True, True, 0.9, 0.8)
    pair("s2", False, False, 0.1, 0.2)
    pair("s3", False, True, 0.4, 0.6)
    pair("s4", True, False, 0.7, 0.3)
    call(database, "s5", True, 0.9)  # no shadow run
    call(database, "s6", True, 0.9, version="2.0", shadow=True, model="other")  # no active run
    # s6 read again: the newest active call (negative, 0.2) pairs with the shadow's.
    call(database, "s6", True, 0.9, at=DAY)
    call(database, "s6", False, 0.2, version="1.1", at=DAY + timedelta(hours=1))
    call(database, "s6", False, 0.1, version="2.0", shadow=True)
    # A superseded run and a run outside the period count for nothing.
    call(database, "s7", True, 0.9, status="superseded")
    call(database, "s7", False, 0.1, version="2.0", shadow=True)
    call(database, "s8", True, 0.9, at=UNTIL)
    call(database, "s8", False, 0.1, version="2.0", shadow=True, at=UNTIL)
    # A second shadow version on s1 is compared too, on its own.
    call(database, "s1", False, 0.3, version="3.0", shadow=True)

    with database.sessions() as session:
        pairs = paired_calls(session=session, since=SINCE, until=UNTIL)
    assert [(p.active_version, p.shadow_version, p.studies) for p in pairs] == [
        ("1.0", "2.0", 4),
        ("1.0", "3.0", 1),
        ("1.1", "2.0", 1),
    ]
    first = pairs[0]
    assert first == PairTally(
        pipeline="ctpa",
        model_name="pe-net",
        active_version="1.0",
        shadow_version="2.0",
        studies=4,
        both_positive=1,
        both_negative=1,
        shadow_only=1,
        active_only=1,
        abs_probability_difference=pytest.approx(0.1 + 0.1 + 0.2 + 0.4),
    )
    assert (pairs[1].active_only, pairs[2].both_negative) == (1, 1)
    assert pairs[2].abs_probability_difference == pytest.approx(0.1)
    with database.sessions() as session:
        only_other = paired_calls(session=session, since=SINCE, until=UNTIL, model="other")
    assert only_other == []


def test_tallies_count_each_finding_once(database: Database) -> None:
    for index in range(5):
        call(database, f"t{index}", index < 2, 0.5, at=DAY + timedelta(minutes=index))
    call(database, "t9", True, 0.5, at=UNTIL - timedelta(hours=1))  # in the recent window
    call(database, "t10", True, 0.5, status="superseded")
    with database.sessions() as session:
        rows = tallied_findings(
            session=session,
            since=SINCE,
            until=UNTIL,
            recent_from=UNTIL - timedelta(days=7),
            rate=0.0,
        )
    assert sum(r.count for r in rows) == 6
    assert sorted(
        (r.present, r.count, r.created_at >= UNTIL - timedelta(days=7)) for r in rows
    ) == [
        (False, 3, False),
        (True, 1, True),
        (True, 2, False),
    ]
