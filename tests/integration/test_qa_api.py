"""QA review and model operations over HTTP, on SQLite and on PostgreSQL.

Findings are inserted as rows, as the pipeline's recorder writes them (see
``test_worklist_support``); reviews, verdicts and state changes go through the API, and the
statistics are compared with values computed here by hand from the Wilson formula.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from pacs_ai.archive.schema import utcnow
from pacs_ai.pipeline.schema import Job
from pacs_ai.qa.schema import FindingReview
from pacs_ai.qa.stats import in_negative_sample
from pacs_ai.registry import service as registry
from pacs_ai.registry.bundle import read_bundle
from pacs_ai.registry.schema import ModelState, ModelVersion
from pacs_ai.security.roles import Role
from pacs_ai.security.schema import AuditEvent
from pacs_ai.triage.schema import FindingAgreement
from tests.integration.conftest_dicomweb import LiveServer, live_server
from tests.integration.processes import wait_for
from tests.integration.test_worklist_api import order_of
from tests.integration.test_worklist_support import (
    add_finding,
    add_segmented_study,
    add_study,
    set_arrival,
)
from tests.unit.registry.bundles import make_tiny_bundle

pytestmark = pytest.mark.integration
__all__ = ["live_server"]

Z95 = 1.959963984540054


def wilson(successes: float, total: float) -> tuple[float, float, float]:
    """The Wilson score interval, written out here independently of pacs_ai."""
    p = successes / total
    denominator = 1 + Z95**2 / total
    centre = (p + Z95**2 / (2 * total)) / denominator
    half = Z95 * math.sqrt(p * (1 - p) / total + Z95**2 / (4 * total**2)) / denominator
    return p, max(0.0, centre - half), min(1.0, centre + half)


def interval(body: dict[str, float] | None) -> tuple[float, float, float]:
    assert body is not None
    return body["value"], body["low"], body["high"]


@pytest.fixture
def qa(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=live_server.url, headers=live_server.headers(Role.QA), timeout=30
    ) as session:
        yield session


@pytest.fixture
def engineer(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=live_server.url, headers=live_server.headers(Role.ML_ENGINEER), timeout=30
    ) as session:
        yield session


def queue(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    answer = client.get("/api/qa/queue", params={"limit": 500, **params})
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def review(client: httpx.Client, finding_id: int, **body: Any) -> httpx.Response:
    return client.post(f"/api/qa/findings/{finding_id}/reviews", json=body)


def audit_details(live_server: LiveServer, action: str) -> list[str]:
    live_server.flush_audit()
    with live_server.server.context.database.sessions() as session:
        return list(session.scalars(select(AuditEvent.detail).where(AuditEvent.action == action)))


def test_a_review_is_kept_with_its_history(live_server: LiveServer, qa: httpx.Client) -> None:
    context = live_server.server.context
    study = add_segmented_study(context.ingestor, context.database, seed=11)
    listed = {item["finding"]["id"]: item for item in queue(qa, reason="positive")}
    assert study.finding_id in listed
    assert listed[study.finding_id]["reasons"] == ["positive"]
    assert listed[study.finding_id]["finding"]["study_uid"] == study.study_uid

    image = qa.get(f"/api/qa/findings/{study.finding_id}/key-image")
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")

    first = review(
        qa, study.finding_id, decision="reject", reason="false_positive_artifact", comment="beam"
    )
    assert first.status_code == 201, first.text
    second = review(qa, study.finding_id, decision="accept", reason="confirmed")
    assert second.status_code == 201, second.text
    assert second.json()["supersedes"] == first.json()["id"]

    detail = qa.get(f"/api/qa/findings/{study.finding_id}").json()
    assert [(r["decision"], r["reason"], r["comment"]) for r in detail["reviews"]] == [
        ("reject", "false_positive_artifact", "beam"),
        ("accept", "confirmed", ""),
    ]
    assert detail["reasons"] == ["positive"]
    with context.database.sessions() as session:
        rows = session.scalars(
            select(FindingReview).where(FindingReview.finding_id == study.finding_id)
        ).all()
    assert [(r.decision, r.reviewer) for r in rows] == [
        ("reject", "qa-user"),
        ("accept", "qa-user"),
    ]

    assert study.finding_id not in {i["finding"]["id"] for i in queue(qa)}
    reviewed = {i["finding"]["id"]: i for i in queue(qa, include_reviewed="true")}
    assert reviewed[study.finding_id]["reviews"] == 2
    assert reviewed[study.finding_id]["latest_review"]["decision"] == "accept"
    details = audit_details(live_server, "store")
    assert any(f"of finding {study.finding_id}: accept (confirmed)" in d for d in details)


def test_bad_reviews_are_refused_with_a_reason(live_server: LiveServer, qa: httpx.Client) -> None:
    context = live_server.server.context
    study = add_study(context.ingestor, patient_id="QA-BAD")
    negative = add_finding(context.database, study, probability=0.1, present=False)
    before = audit_details(live_server, "store")

    missing = review(qa, 2**31 - 1, decision="accept", reason="confirmed")
    assert missing.status_code == 404 and "no AI finding" in missing.json()["error"]
    unfit = review(qa, negative, decision="accept", reason="wrong_size")
    assert unfit.status_code == 422 and "does not fit" in unfit.json()["error"]
    corrected = review(qa, negative, decision="correct", reason="wrong_location")
    assert corrected.status_code == 422 and "negative finding" in corrected.json()["error"]
    unknown = review(qa, negative, decision="maybe", reason="confirmed")
    assert unknown.status_code == 400
    assert qa.get("/api/qa/findings/0").status_code == 400
    assert qa.get(f"/api/qa/findings/{2**31 - 1}").status_code == 404

    radiologist = live_server.headers(Role.RADIOLOGIST)
    refused = httpx.post(
        f"{live_server.url}/api/qa/findings/{negative}/reviews",
        json={"decision": "accept", "reason": "confirmed"},
        headers=radiologist,
    )
    assert refused.status_code == 403
    anonymous = httpx.get(f"{live_server.url}/api/qa/queue")
    assert anonymous.status_code == 401
    with context.database.sessions() as session:
        assert (
            session.scalars(select(FindingReview).where(FindingReview.finding_id == negative)).all()
            == []
        )
    assert len(audit_details(live_server, "store")) >= len(before) + 3


def test_the_queue_offers_what_deserves_a_look(live_server: LiveServer, qa: httpx.Client) -> None:
    context = live_server.server.context
    database = context.database
    model, shadow = ("qa-queue-model", "2.0.0"), ("qa-queue-model", "2.1.0")
    study = add_study(context.ingestor, patient_id="QA-QUEUE")
    negatives = [
        add_finding(database, study, probability=0.05, present=False, model=model)
        for _ in range(40)
    ]
    rate = context.settings.qa_negative_sample_rate
    sampled = {f for f in negatives if in_negative_sample(f, rate)}
    not_sampled = [f for f in negatives if f not in sampled]
    assert sampled and not_sampled

    disagreed = not_sampled[0]
    with database.write_sessions.begin() as session:
        session.add(
            FindingAgreement(
                finding_id=disagreed, study_instance_uid=study, reader="dr", agrees=False
            )
        )
    other = add_study(context.ingestor, patient_id="QA-SHADOW")
    negatives.append(add_finding(database, other, probability=0.2, present=False, model=model))
    differing = add_finding(database, other, probability=0.9, shadow=True, model=shadow)
    third = add_study(context.ingestor, patient_id="QA-SHADOW-2")
    negatives.append(add_finding(database, third, probability=0.2, present=False, model=model))
    same_call = add_finding(
        database, third, probability=0.3, present=False, shadow=True, model=shadow
    )

    items = queue(qa, model="qa-queue-model")
    reasons = {item["finding"]["id"]: item["reasons"] for item in items}
    assert reasons[disagreed] == ["reader_disagreed"]
    assert reasons[differing] == ["shadow_differs"]
    assert same_call not in reasons
    drawn = {f for f, why in reasons.items() if why == ["negative_sample"]}
    assert drawn == {f for f in negatives if in_negative_sample(f, rate)}
    assert set(reasons) == drawn | {disagreed, differing}
    order = [item["reasons"][0] for item in items]
    assert order[:2] == ["reader_disagreed", "shadow_differs"]
    detail = qa.get(f"/api/qa/findings/{differing}").json()
    assert detail["active_finding"]["present"] is False
    only = queue(qa, model="qa-queue-model", reason="shadow_differs")
    assert [i["finding"]["id"] for i in only] == [differing]


def test_statistics_equal_hand_computed_values(
    live_server: LiveServer, qa: httpx.Client, engineer: httpx.Client
) -> None:
    context = live_server.server.context
    database = context.database
    model = ("qa-stats-model", "1.0.0")
    study = add_study(context.ingestor, patient_id="QA-STATS")
    positives = [
        add_finding(database, study, probability=0.9, present=True, model=model) for _ in range(10)
    ]
    for finding, (decision, reason) in zip(
        positives,
        [("accept", "confirmed")] * 6
        + [("correct", "wrong_size")] * 2
        + [("reject", "false_positive_anatomy")] * 2,
        strict=True,
    ):
        assert review(qa, finding, decision=decision, reason=reason).status_code == 201
    rate = context.settings.qa_negative_sample_rate
    negatives: list[int] = []
    while sum(1 for f in negatives if in_negative_sample(f, rate)) < 5:
        negatives.append(add_finding(database, study, probability=0.1, present=False, model=model))
    sampled = [f for f in negatives if in_negative_sample(f, rate)]
    outside = next(f for f in negatives if not in_negative_sample(f, rate))
    for finding, decision, reason in zip(
        sampled,
        ["accept"] * 4 + ["reject"],
        ["confirmed"] * 4 + ["missed_finding"],
        strict=True,
    ):
        assert review(qa, finding, decision=decision, reason=reason).status_code == 201
    # Reviewed, but not drawn at random: counts as reviewed, not in the estimates.
    assert review(qa, outside, decision="reject", reason="missed_finding").status_code == 201
    with database.write_sessions.begin() as session:
        for finding, agrees in zip(positives[:3], (True, True, False), strict=True):
            session.add(
                FindingAgreement(
                    finding_id=finding, study_instance_uid=study, reader="dr", agrees=agrees
                )
            )

    answer = engineer.get("/api/qa/stats", params={"model": "qa-stats-model"})
    assert answer.status_code == 200, answer.text
    (stats,) = answer.json()["versions"]
    n_neg = len(negatives)
    assert (stats["findings"], stats["positives"], stats["negatives"]) == (10 + n_neg, 10, n_neg)
    assert (stats["tp"], stats["fp"], stats["tn"], stats["fn"], stats["corrected"]) == (
        8,
        2,
        4,
        1,
        2,
    )
    assert stats["reviewed"] == 10 + 5 + 1
    assert interval(stats["ppv"]) == pytest.approx(wilson(8, 10), abs=1e-9)
    assert interval(stats["ppv"]) == pytest.approx((0.8, 0.4902, 0.9433), abs=1e-4)
    # Positives all reviewed (weight 1); 5 sampled negatives stand for all n_neg.
    w_pos, w_neg = 1.0, n_neg / 5
    tp, fp, tn, fn = 8, 2, 4, 1
    sens_n = (tp * w_pos + fn * w_neg) ** 2 / (tp * w_pos**2 + fn * w_neg**2)
    sens_p = tp * w_pos / (tp * w_pos + fn * w_neg)
    assert interval(stats["sensitivity"]) == pytest.approx(
        wilson(sens_p * sens_n, sens_n), abs=1e-9
    )
    spec_n = (tn * w_neg + fp * w_pos) ** 2 / (tn * w_neg**2 + fp * w_pos**2)
    spec_p = tn * w_neg / (tn * w_neg + fp * w_pos)
    assert interval(stats["specificity"]) == pytest.approx(
        wilson(spec_p * spec_n, spec_n), abs=1e-9
    )
    agreement = stats["reader_agreement"]
    assert (agreement["verdicts"], agreement["agreed"]) == (3, 2)
    assert interval(agreement["rate"]) == pytest.approx(wilson(2, 3), abs=1e-9)
    assert sum(day["findings"] for day in stats["daily"]) == 10 + n_neg

    exported = engineer.get("/api/qa/stats.csv", params={"model": "qa-stats-model"})
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    (row,) = list(csv.DictReader(io.StringIO(exported.text)))
    assert (row["model_version"], row["tp"], row["fp"]) == ("1.0.0", "8", "2")
    assert float(row["ppv"]) == pytest.approx(0.8)
    assert float(row["ppv_low"]) == pytest.approx(0.4902, abs=1e-4)

    radiologist = httpx.get(
        f"{live_server.url}/api/qa/stats", headers=live_server.headers(Role.RADIOLOGIST)
    )
    assert radiologist.status_code == 403
    reversed_period = engineer.get(
        "/api/qa/stats", params={"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}
    )
    assert reversed_period.status_code == 400


def test_shadow_versus_active_comparison(live_server: LiveServer, qa: httpx.Client) -> None:
    context = live_server.server.context
    database = context.database
    active, shadow = ("qa-compare-model", "1.0.0"), ("qa-compare-model", "1.1.0")
    calls = [(True, True), (True, False), (False, False), (False, True), (False, False)]
    for index, (active_call, shadow_call) in enumerate(calls):
        study = add_study(context.ingestor, patient_id=f"QA-CMP-{index}")
        add_finding(
            database,
            study,
            probability=0.8 if active_call else 0.2,
            present=active_call,
            model=active,
        )
        add_finding(
            database,
            study,
            probability=0.7 if shadow_call else 0.1,
            present=shadow_call,
            shadow=True,
            model=shadow,
        )
    body = qa.get("/api/qa/stats", params={"model": "qa-compare-model"}).json()
    (comparison,) = body["comparisons"]
    assert (comparison["active_version"], comparison["shadow_version"]) == ("1.0.0", "1.1.0")
    assert (
        comparison["studies"],
        comparison["both_positive"],
        comparison["both_negative"],
        comparison["shadow_only"],
        comparison["active_only"],
    ) == (5, 1, 2, 1, 1)
    assert interval(comparison["agreement"]) == pytest.approx(wilson(3, 5), abs=1e-9)
    assert comparison["mean_abs_probability_difference"] == pytest.approx(
        (0.1 + 0.7 + 0.1 + 0.5 + 0.1) / 5
    )
    shadow_rows = [v for v in body["versions"] if v["shadow"]]
    assert [v["model_version"] for v in shadow_rows] == ["1.1.0"]


def test_shadow_results_never_change_the_worklist_order(live_server: LiveServer) -> None:
    context = live_server.server.context
    older = add_study(context.ingestor, patient_id="QA-ORDER-1", description="CT HEAD OLD")
    newer = add_study(context.ingestor, patient_id="QA-ORDER-2", description="CT HEAD NEW")
    set_arrival(context.database, older, 50)
    set_arrival(context.database, newer, 5)
    with httpx.Client(
        base_url=live_server.url, headers=live_server.headers(Role.RADIOLOGIST), timeout=30
    ) as reader:
        assert order_of(reader, [older, newer]) == [older, newer]
        add_finding(context.database, newer, probability=0.99, shadow=True)
        add_finding(
            context.database,
            newer,
            probability=0.98,
            shadow=True,
            model=("ct-head-hemorrhage", "9.9.9"),
        )
        # A later refresh of the worklist has seen the shadow rows: still the same order.
        marker = add_study(context.ingestor, patient_id="QA-ORDER-3")
        order_of(reader, [marker])
        assert order_of(reader, [older, newer]) == [older, newer]
        add_finding(context.database, newer, probability=0.99)
        wait_for(lambda: order_of(reader, [older, newer]) == [newer, older])


def _tiny_versions(live_server: LiveServer, root: Path, name: str) -> None:
    database = live_server.server.context.database
    for version, seed in (("1.0.0", 0), ("1.1.0", 1)):
        path = make_tiny_bundle(root, name=name, version=version, seed=seed)
        if version == "1.1.0":
            (path / "MODEL_CARD.md").write_text(
                "# Card of 1.1.0\n\n| metric | value |\n|---|---|\n| AUC | 0.9 |\n\n"
                "<script>alert('card')</script>\n",
                encoding="utf-8",
            )
        with database.write_sessions.begin() as session:
            registry.register(session=session, bundle=read_bundle(path), actor="tests")


def states(live_server: LiveServer, name: str) -> dict[str, str]:
    with live_server.server.context.database.sessions() as session:
        return {
            v.version: v.state
            for v in session.scalars(select(ModelVersion).where(ModelVersion.name == name))
        }


def test_model_operations_change_states_with_reasons(
    live_server: LiveServer, engineer: httpx.Client, tmp_path: Path
) -> None:
    name = "tiny-ops"
    _tiny_versions(live_server, tmp_path, name)
    base = f"/api/models/{name}"

    first = engineer.post(f"{base}/1.0.0/state", json={"state": "active", "reason": "first go"})
    assert first.status_code == 200, first.text
    assert first.json()["state"] == "active"
    no_reason = engineer.post(f"{base}/1.1.0/state", json={"state": "active", "reason": "  "})
    assert no_reason.status_code == 422 and "reason" in no_reason.json()["error"]
    second_active = engineer.post(
        f"{base}/1.1.0/state", json={"state": "active", "reason": "better"}
    )
    assert second_active.status_code == 409
    assert "version 1.0.0" in second_active.json()["error"]
    assert states(live_server, name) == {"1.0.0": "active", "1.1.0": "inactive"}
    replaced = engineer.post(
        f"{base}/1.1.0/state", json={"state": "active", "reason": "better", "replace_active": True}
    )
    assert replaced.status_code == 200, replaced.text
    assert states(live_server, name) == {"1.0.0": "inactive", "1.1.0": "active"}
    again = engineer.post(
        f"{base}/1.1.0/state", json={"state": "active", "reason": "x", "replace_active": True}
    )
    assert again.status_code == 409 and "already active" in again.json()["error"]

    rolled = engineer.post(f"{base}/rollback", json={"reason": "PPV fell"})
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["activated"]["version"] == "1.0.0"
    assert rolled.json()["deactivated"]["version"] == "1.1.0"
    assert states(live_server, name) == {"1.0.0": "active", "1.1.0": "inactive"}

    shadowed = engineer.post(f"{base}/1.1.0/state", json={"state": "shadow", "reason": "watch"})
    assert shadowed.status_code == 200

    detail = engineer.get(f"{base}/1.1.0").json()
    assert [(h["to_state"], h["actor"]) for h in detail["history"]] == [
        ("inactive", "tests"),
        ("active", "ml_engineer-user"),
        ("inactive", "ml_engineer-user"),
        ("shadow", "ml_engineer-user"),
    ]
    assert detail["history"][1]["reason"] == "better"
    assert detail["history"][2]["reason"] == "replaced by version 1.0.0"
    html = detail["model_card_html"]
    assert "<h1>Card of 1.1.0</h1>" in html and "<table>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert engineer.get(f"{base}/1.0.0").json()["model_card_html"] is None

    listed = {(v["name"], v["version"]): v for v in engineer.get("/api/models").json()["versions"]}
    assert listed[(name, "1.1.0")]["state"] == "shadow"
    assert listed[(name, "1.0.0")]["operations"]["jobs"] == 0

    assert (
        engineer.post(
            f"/api/models/{name}/9.9.9/state", json={"state": "active", "reason": "x"}
        ).status_code
        == 404
    )
    assert engineer.post("/api/models/nobody/rollback", json={"reason": "x"}).status_code == 409
    refused = httpx.post(
        f"{live_server.url}{base}/1.1.0/state",
        json={"state": "active", "reason": "x"},
        headers=live_server.headers(Role.QA),
    )
    assert refused.status_code == 403
    assert (
        httpx.get(f"{live_server.url}/api/models", headers=live_server.headers(Role.QA)).status_code
        == 200
    )
    no_runtime = engineer.post(f"{base}/1.1.0/replay", json={"query": {"PatientID": "X"}})
    assert no_runtime.status_code == 503
    configured = audit_details(live_server, "configure")
    assert any(f"model {name} 1.1.0 -> active: better" in d for d in configured)
    assert any(f"rollback of {name} to 1.0.0: PPV fell" in d for d in configured)


def test_operations_report_latency_and_placement(
    live_server: LiveServer, engineer: httpx.Client
) -> None:
    from datetime import timedelta

    database = live_server.server.context.database
    model = ("qa-ops-model", "3.0.0")
    study = add_study(live_server.server.context.ingestor, patient_id="QA-OPS")
    ids = [add_finding(database, study, probability=0.5, model=model) for _ in range(4)]
    now = utcnow()
    with database.write_sessions.begin() as session:
        jobs = session.scalars(select(Job).where(Job.model_name == model[0]).order_by(Job.id)).all()
        assert len(jobs) == len(ids)
        for job, (latency_ms, device) in zip(
            jobs, [(100, "cpu"), (200, "cpu"), (300, "cuda:0"), (400, "cpu")], strict=True
        ):
            job.started_at = now
            job.inferred_at = now + timedelta(milliseconds=latency_ms)
            job.stable_at = now
            job.stored_at = now + timedelta(seconds=latency_ms / 100)
            job.placement = f"{device}@abcdef"
        session.add(
            Job(
                study_instance_uid=study,
                series_instance_uid="1.2.3",
                pipeline="ct-head-hemorrhage",
                pipeline_version=1,
                content_key="failed-one",
                model_name=model[0],
                model_version=model[1],
                state="failed",
                error="broken",
                last_instance_at=now,
                stable_at=now,
            )
        )
        registered = ModelVersion(
            name=model[0],
            version=model[1],
            path="/nonexistent",
            weights_file="model.pt",
            weights_sha256="00" * 32,
            bundle_metadata={},
            state=ModelState.INACTIVE.value,
        )
        session.add(registered)
    listed = {(v["name"], v["version"]): v for v in engineer.get("/api/models").json()["versions"]}
    operations = listed[model]["operations"]
    assert (operations["jobs"], operations["done"], operations["failed"]) == (5, 4, 1)
    assert operations["latency_ms"]["p50"] == pytest.approx(250, abs=1)
    assert operations["latency_ms"]["p95"] == pytest.approx(385, abs=1)
    assert operations["time_to_result_s"]["p50"] == pytest.approx(2.5, abs=0.01)
    assert operations["placement"] == {"cpu": 3, "cuda": 1}


def test_concurrent_reviews_never_overwrite_each_other(
    live_server: LiveServer, qa: httpx.Client
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    context = live_server.server.context
    study = add_study(context.ingestor, patient_id="QA-RACE")
    finding = add_finding(context.database, study, probability=0.9, present=True)
    comments = [f"reviewer note {index}" for index in range(8)]

    def submit(comment: str) -> int:
        with httpx.Client(
            base_url=live_server.url, headers=live_server.headers(Role.QA), timeout=60
        ) as client:
            answer = review(client, finding, decision="accept", reason="confirmed", comment=comment)
            return answer.status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(submit, comments))
    assert statuses == [201] * 8
    history = qa.get(f"/api/qa/findings/{finding}").json()["reviews"]
    assert sorted(r["comment"] for r in history) == sorted(comments)
    ids = [r["id"] for r in history]
    assert all(r["supersedes"] is None or r["supersedes"] in ids for r in history)
