"""The worklist services on SQLite and PostgreSQL: order, filters, claims, reads, settings."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from pacs_ai.archive.db import Database
from pacs_ai.archive.ingest import Ingestor
from pacs_ai.archive.schema import utcnow
from pacs_ai.archive.storage import Storage
from pacs_ai.config import Settings
from pacs_ai.registry.schema import ModelVersion
from pacs_ai.triage import worklist, worklist_reading
from pacs_ai.triage.schema import ReadingStatus, WorklistEntry
from pacs_ai.triage.score import Category, PatientSetting
from pacs_ai.triage.worklist import RankedWorklist, WorklistFilter
from pacs_ai.triage.worklist_dicom import (
    draw_overlay,
    key_image,
    outline,
    render_key_image,
    setting_from_location,
    sync_entries,
)
from pacs_ai.triage.worklist_reading import Changed, InvalidVerdict, ReadingConflict, Verdict
from tests.integration.test_worklist_support import (
    add_finding,
    add_segmented_study,
    add_study,
    set_arrival,
)


@pytest.fixture
def ranked(database: Database, tmp_path: Path) -> RankedWorklist:
    return RankedWorklist(database, Settings(data_dir=tmp_path))


def order(ranked: RankedWorklist, filters: WorklistFilter | None = None) -> list[str]:
    ranked.refresh()
    page = ranked.page(filters=filters or WorklistFilter(), limit=100, offset=0)
    return [item.study.study_uid for item in page.items]


def test_order_follows_the_score_and_a_finding_moves_a_study_up(
    database: Database, ingestor: Ingestor, ranked: RankedWorklist
) -> None:
    waiting = add_study(ingestor, description="routine, waiting an hour")
    stat = add_study(ingestor, priority="STAT", description="STAT order")
    fresh = add_study(ingestor, description="routine, fresh")
    set_arrival(database, waiting, 60)
    set_arrival(database, stat, 10)
    set_arrival(database, fresh, 5)
    assert order(ranked) == [stat, waiting, fresh]

    finding = add_finding(database, fresh, probability=0.93)
    assert order(ranked) == [fresh, stat, waiting]
    top = ranked.current().items[0]
    assert top.breakdown.category is Category.CRITICAL
    assert [badge.text for badge in top.study.badges] == ["ICH 0.93"]
    assert top.study.badges[0].finding_id == finding
    assert top.breakdown.ai == pytest.approx(0.93)
    assert any("ICH 0.93" in reason for reason in top.breakdown.reasons)


def test_shadow_superseded_and_demoted_findings_do_not_count(
    database: Database, ingestor: Ingestor, ranked: RankedWorklist
) -> None:
    first = add_study(ingestor)
    second = add_study(ingestor)
    set_arrival(database, first, 30)
    set_arrival(database, second, 20)
    add_finding(database, second, probability=0.99, shadow=True)
    add_finding(database, second, probability=0.98, status="superseded")
    add_finding(database, second, probability=0.97, model=("ct-head-hemorrhage", "0.9.0"))
    with database.write_sessions.begin() as session:
        session.add(
            ModelVersion(
                name="ct-head-hemorrhage",
                version="0.9.0",
                path="/models/old",
                weights_file="models/model.pt",
                weights_sha256="0" * 64,
                bundle_metadata={},
                state="shadow",
            )
        )
    assert order(ranked) == [first, second]
    assert all(not item.study.badges for item in ranked.current().items)
    with database.sessions() as session:
        assert worklist.studies_with_findings_after(session=session, finding_id=0) == []


def test_filters_select_by_modality_body_part_status_reader_and_criticality(
    database: Database, ingestor: Ingestor, ranked: RankedWorklist
) -> None:
    head = add_study(ingestor, modality="CT", body_part="HEAD")
    chest = add_study(ingestor, modality="DX", body_part="CHEST")
    add_finding(database, head, probability=0.9)
    with database.write_sessions.begin() as session:
        worklist_reading.claim(session=session, study_uid=chest, reader="alice", now=utcnow())

    assert order(ranked, WorklistFilter(modality="ct")) == [head]
    assert order(ranked, WorklistFilter(body_part="chest")) == [chest]
    assert order(ranked, WorklistFilter(status=ReadingStatus.UNREAD)) == [head]
    assert order(ranked, WorklistFilter(status=ReadingStatus.IN_PROGRESS)) == [chest]
    assert order(ranked, WorklistFilter(reader="alice")) == [chest]
    assert order(ranked, WorklistFilter(critical_only=True)) == [head]
    page = ranked.page(filters=WorklistFilter(), limit=1, offset=1)
    assert page.total == 2 and len(page.items) == 1


def test_concurrent_claims_have_one_winner(database: Database, ingestor: Ingestor) -> None:
    study = add_study(ingestor)
    readers = [f"reader{i}" for i in range(6)]
    start = threading.Barrier(len(readers))
    won: list[str] = []
    refused: list[str] = []

    def attempt(reader: str) -> None:
        start.wait()
        try:
            with database.write_sessions.begin() as session:
                worklist_reading.claim(
                    session=session, study_uid=study, reader=reader, now=utcnow()
                )
            won.append(reader)
        except ReadingConflict:
            refused.append(reader)

    threads = [threading.Thread(target=attempt, args=(reader,)) for reader in readers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(won) == 1 and len(refused) == len(readers) - 1
    with database.sessions() as session:
        entry = session.execute(select(WorklistEntry)).scalar_one()
    assert (entry.status, entry.reader) == ("in_progress", won[0])


def test_claim_release_and_read_with_verdicts(database: Database, ingestor: Ingestor) -> None:
    study = add_study(ingestor)
    counted = add_finding(database, study, probability=0.8)
    shadow = add_finding(database, study, probability=0.9, shadow=True)

    claim, release, mark_read = (
        worklist_reading.claim,
        worklist_reading.release,
        worklist_reading.mark_read,
    )

    def run(action: Callable[..., Changed], reader: str, **extra: object) -> Changed:
        with database.write_sessions.begin() as session:
            return action(session=session, study_uid=study, reader=reader, now=utcnow(), **extra)

    assert run(claim, "alice").state.reader == "alice"
    assert run(claim, "alice").state.status is ReadingStatus.IN_PROGRESS
    with pytest.raises(ReadingConflict, match="being read by alice") as refused:
        run(claim, "bob")
    assert refused.value.state.reader == "alice"
    with pytest.raises(ReadingConflict):
        run(release, "bob")
    assert run(release, "admin", override=True).state.status is ReadingStatus.UNREAD
    run(claim, "bob")
    with pytest.raises(InvalidVerdict):
        run(mark_read, "bob", verdicts=[Verdict(shadow, agrees=True)])
    with pytest.raises(ReadingConflict):
        run(mark_read, "alice", verdicts=[])
    verdict = Verdict(counted, agrees=False, comment="calcification")
    done = run(mark_read, "bob", verdicts=[verdict])
    assert done.state.status is ReadingStatus.READ and done.state.read_at is not None
    with pytest.raises(ReadingConflict, match="already read by bob"):
        run(claim, "alice")
    with database.sessions() as session:
        given = worklist_reading.agreements(session=session, study_uid=study)
    assert [(v.finding_id, v.reader, v.agrees, v.comment) for v in given] == [
        (counted, "bob", False, "calcification")
    ]


def test_read_studies_leave_the_open_list_and_a_claim_shows_without_reranking(
    database: Database, ingestor: Ingestor, ranked: RankedWorklist
) -> None:
    kept = add_study(ingestor)
    read = add_study(ingestor)
    ranked.refresh()
    with database.write_sessions.begin() as session:
        worklist_reading.claim(session=session, study_uid=kept, reader="alice", now=utcnow())
        worklist_reading.mark_read(
            session=session, study_uid=read, reader="bob", verdicts=[], now=utcnow()
        )
    page = ranked.page(filters=WorklistFilter(), limit=10, offset=0)
    assert [(i.study.study_uid, i.state.status) for i in page.items] == [
        (kept, ReadingStatus.IN_PROGRESS)
    ]
    history = ranked.page(filters=WorklistFilter(status=ReadingStatus.READ), limit=10, offset=0)
    assert [i.study.study_uid for i in history.items] == [read]
    assert history.items[0].state.reader == "bob"


@pytest.mark.parametrize(
    ("location", "setting"),
    [
        ("E", PatientSetting.EMERGENCY),
        ("ER bay 3", PatientSetting.EMERGENCY),
        ("Emergency Department", PatientSetting.EMERGENCY),
        ("Ward 5B", PatientSetting.INPATIENT),
        ("inpatient", PatientSetting.INPATIENT),
        ("Outpatient clinic", PatientSetting.OUTPATIENT),
        ("Radiology", None),
        ("", None),
    ],
)
def test_setting_from_location(location: str, setting: PatientSetting | None) -> None:
    assert setting_from_location(location) is setting


def test_patient_setting_is_read_once_from_the_first_instance(
    database: Database, ingestor: Ingestor, storage: Storage, ranked: RankedWorklist
) -> None:
    emergency = add_study(ingestor, location="ER")
    unknown = add_study(ingestor)
    synced = sync_entries(database=database, storage=storage, now=utcnow(), horizon_start=None)
    assert (synced.settings_found, synced.more) == (1, False)
    with database.sessions() as session:
        settings = dict(
            session.execute(
                select(WorklistEntry.study_pk, WorklistEntry.patient_setting).order_by(
                    WorklistEntry.study_pk
                )
            ).all()
        )
    assert sorted(settings.values()) == ["", "emergency"]
    assert sync_entries(database=database, storage=storage, now=utcnow(), horizon_start=None) == (
        type(synced)(0, False)
    )
    first = ranked.refresh().items[0]
    assert first.study.study_uid == emergency
    assert first.breakdown.category is Category.STAT
    assert unknown in [item.study.study_uid for item in ranked.current().items]


def test_marks_announce_counted_findings_only(database: Database, ingestor: Ingestor) -> None:
    study = add_study(ingestor)
    with database.sessions() as session:
        before = worklist.marks(session=session)
    add_finding(database, study, probability=0.7, shadow=True)
    counted = add_finding(database, study, probability=0.7)
    with database.sessions() as session:
        after = worklist.marks(session=session)
        found = worklist.studies_with_findings_after(session=session, finding_id=before.finding_id)
    assert after.finding_id == counted and after.study_id == before.study_id
    assert found == [study]


def test_outline_is_the_border_of_the_mask() -> None:
    mask = np.zeros((5, 5), dtype=bool)
    mask[1:4, 1:4] = True
    border = outline(mask)
    assert border.sum() == 8 and not border[2, 2] and border[1, 1]
    image = draw_overlay(Image.new("L", (5, 5), 0), mask)
    pixels = np.asarray(image)
    assert tuple(pixels[1, 1]) == (255, 64, 64)
    assert pixels[2, 2, 0] > pixels[2, 2, 1] and tuple(pixels[0, 0]) == (0, 0, 0)


def test_key_image_is_the_slice_the_segmentation_covers_most(
    database: Database, ingestor: Ingestor, storage: Storage
) -> None:
    segmented = add_segmented_study(ingestor, database)
    with database.sessions() as session:
        finding = worklist.get_by_uid_or_raise(
            session=session, study_uid=segmented.study_uid, labels={}
        ).findings[0]
        found = key_image(session=session, storage=storage, finding=finding)
        assert found is not None
        key, mask = found
        png = render_key_image(session=session, storage=storage, key=key, mask=mask)
    assert key.sop_instance_uid == segmented.key_slice_uid
    assert key.segmentation_uid == segmented.segmentation_uid
    assert mask is not None and mask.any()
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    red = (pixels[..., 0] == 255) & (pixels[..., 1] == 64) & (pixels[..., 2] == 64)
    assert red.sum() == outline(mask).sum()


def test_a_finding_without_segmentation_shows_the_middle_image(
    database: Database, ingestor: Ingestor, storage: Storage
) -> None:
    segmented = add_segmented_study(ingestor, database, probability=-1)
    add_finding(database, segmented.study_uid, probability=0.2, series_uid=segmented.series_uid)
    with database.sessions() as session:
        finding = worklist.get_by_uid_or_raise(
            session=session, study_uid=segmented.study_uid, labels={}
        ).findings[0]
        found = key_image(session=session, storage=storage, finding=finding)
    assert found is not None
    key, mask = found
    assert mask is None and key.segmentation_uid is None
    assert key.series_uid == segmented.series_uid


def test_the_horizon_leaves_old_studies_off(
    database: Database, ingestor: Ingestor, tmp_path: Path
) -> None:
    old = add_study(ingestor)
    new = add_study(ingestor)
    set_arrival(database, old, 60 * 24 * 40)
    ranked = RankedWorklist(database, Settings(data_dir=tmp_path, worklist_horizon_days=30))
    assert order(ranked) == [new]
