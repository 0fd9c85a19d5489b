"""The worklist API against a running server, on SQLite and on PostgreSQL.

Findings are inserted as rows, as the pipeline stores them; the server's background task must
notice them, re-rank, and announce them over Server-Sent Events.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from pacs_ai.security.accounts import add_user
from pacs_ai.security.roles import Role
from tests.integration.conftest_dicomweb import LiveServer, live_server
from tests.integration.processes import wait_for
from tests.integration.test_worklist_support import (
    add_finding,
    add_segmented_study,
    add_study,
    read_events,
    set_arrival,
)

pytestmark = pytest.mark.integration
__all__ = ["live_server"]

EVENTS = {"Accept": "text/event-stream"}


@pytest.fixture(scope="module")
def second_reader(live_server: LiveServer) -> dict[str, str]:
    """The Authorization header of another radiologist."""
    context = live_server.server.context
    token = add_user(
        database=context.database,
        settings=context.settings,
        username="radiologist-2",
        role=Role.RADIOLOGIST,
    )
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=live_server.url, headers=live_server.headers(Role.RADIOLOGIST), timeout=30
    ) as session:
        yield session


def listed(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    answer = client.get("/api/worklist", params={"limit": 500, **params})
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def order_of(client: httpx.Client, uids: list[str], **params: Any) -> list[str]:
    """The listed order of ``uids`` (others left out); waits until all of them are listed."""

    def probe() -> list[str] | None:
        shown = [i["study_uid"] for i in listed(client, **params) if i["study_uid"] in uids]
        return shown if len(shown) == len(uids) else None

    return wait_for(probe)


def test_roles_admitted_and_refused(live_server: LiveServer) -> None:
    study = add_study(live_server.server.context.ingestor)
    base = f"{live_server.url}/api/worklist"
    calls = [
        ("GET", base, None),
        ("GET", f"{base}/{study}", None),
        ("GET", f"{base}/{study}/findings/1/key-image", None),
        ("POST", f"{base}/{study}/claim", None),
        ("POST", f"{base}/{study}/release", None),
        ("POST", f"{base}/{study}/read", {"verdicts": []}),
    ]
    with httpx.Client(timeout=30) as client:
        for method, url, body in calls:
            assert client.request(method, url, json=body).status_code == 401
            for role in (Role.QA, Role.ML_ENGINEER):
                refused = client.request(method, url, json=body, headers=live_server.headers(role))
                assert refused.status_code == 403, (method, url, role)
                assert refused.json()["error"]
            for role in (Role.RADIOLOGIST, Role.ADMIN):
                answer = client.request(method, url, json=body, headers=live_server.headers(role))
                assert answer.status_code not in (401, 403), (method, url, role, answer.text)
        for role in Role:
            headers = {**live_server.headers(role), **EVENTS}
            with client.stream("GET", f"{base}/events", headers=headers) as stream:
                admitted = role in (Role.RADIOLOGIST, Role.ADMIN)
                assert stream.status_code == (200 if admitted else 403), role
        refused = client.get(f"{base}/events", headers=live_server.headers(Role.RADIOLOGIST))
        assert refused.status_code == 406


def test_order_badges_and_a_finding_that_moves_a_study_to_the_top(
    live_server: LiveServer, client: httpx.Client
) -> None:
    context = live_server.server.context
    older = add_study(context.ingestor, patient_name="Older^Study")
    newer = add_study(context.ingestor, patient_name="Newer^Study")
    set_arrival(context.database, older, 90)
    set_arrival(context.database, newer, 5)
    assert order_of(client, [older, newer]) == [older, newer]

    add_finding(context.database, newer, probability=0.99, shadow=True)
    quiet = add_finding(context.database, older, probability=0.12)

    def badges_shown() -> list[dict[str, Any]] | None:
        items = {i["study_uid"]: i for i in listed(client)}
        return items[older]["badges"] or None

    badges = wait_for(badges_shown)
    assert [(b["finding_id"], b["text"], b["present"]) for b in badges] == [
        (quiet, "ICH 0.12", False)
    ]
    assert order_of(client, [older, newer]) == [older, newer]
    assert not {i["study_uid"]: i for i in listed(client)}[newer]["badges"]

    add_finding(context.database, newer, probability=0.93)
    wait_for(lambda: listed(client)[0]["study_uid"] == newer)
    top = listed(client)[0]
    assert [b["text"] for b in top["badges"]] == ["ICH 0.93"]
    assert top["rank"] == 1 and top["status"] == "unread"
    score = top["score"]
    assert score["category"] == "critical" and score["sla_minutes"] == 15
    assert score["total"] == pytest.approx(score["ai"] + score["clinical"] + score["waiting"])
    assert score["ai"] == pytest.approx(0.93)
    assert top["minutes_left"] == pytest.approx(15 - top["waited_minutes"], abs=0.1)


def test_filters_and_paging(live_server: LiveServer, client: httpx.Client) -> None:
    context = live_server.server.context
    chest = add_study(context.ingestor, modality="DX", body_part="CHEST", accession="FILTER-DX")
    knee = add_study(context.ingestor, modality="MR", body_part="KNEE", accession="FILTER-MR")
    add_finding(context.database, knee, probability=0.97)
    assert order_of(client, [chest], modality="dx") == [chest]
    assert order_of(client, [knee], body_part="KNEE") == [knee]
    critical = order_of(client, [knee], critical="true")
    assert chest not in [i["study_uid"] for i in listed(client, critical="true")]
    assert critical == [knee]
    assert client.post(f"/api/worklist/{chest}/claim").status_code == 200
    mine = listed(client, reader="radiologist-user", status="in_progress")
    assert chest in [i["study_uid"] for i in mine]
    assert chest not in [i["study_uid"] for i in listed(client, status="unread")]
    page = client.get("/api/worklist", params={"limit": 1, "offset": 0}).json()
    assert len(page["items"]) == 1 and page["total"] >= 2 and page["next_offset"] == 1
    assert client.get("/api/worklist", params={"status": "lost"}).status_code == 400


def test_two_readers_claim_at_once_and_one_wins(
    live_server: LiveServer, second_reader: dict[str, str]
) -> None:
    study = add_study(live_server.server.context.ingestor)
    url = f"{live_server.url}/api/worklist/{study}/claim"
    contenders = [live_server.headers(Role.RADIOLOGIST), second_reader] * 3
    start = threading.Barrier(len(contenders))
    answers: list[httpx.Response] = []

    def claim(headers: dict[str, str]) -> None:
        with httpx.Client(timeout=30) as session:
            start.wait()
            answers.append(session.post(url, headers=headers))

    threads = [threading.Thread(target=claim, args=(h,)) for h in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    winners = {a.json()["reader"] for a in answers if a.status_code == 200}
    assert len(winners) == 1
    refused = [a for a in answers if a.status_code == 409]
    assert len(refused) >= 3
    reason = refused[0].json()
    assert reason["status"] == "in_progress" and reason["reader"] in winners
    assert "being read by" in reason["error"]


def test_release_read_verdicts_and_the_audit_trail(
    live_server: LiveServer, client: httpx.Client, second_reader: dict[str, str]
) -> None:
    context = live_server.server.context
    study = add_study(context.ingestor, patient_id="AUDIT-WL")
    counted = add_finding(context.database, study, probability=0.8)
    shadow = add_finding(context.database, study, probability=0.8, shadow=True)
    base = f"/api/worklist/{study}"
    assert client.post(f"{base}/claim").json()["status"] == "in_progress"
    other = client.post(f"{base}/release", headers=second_reader)
    assert other.status_code == 409 and other.json()["reader"] == "radiologist-user"
    assert client.post(f"{base}/release").json()["status"] == "unread"
    assert client.post(f"{base}/claim").status_code == 200
    bad = client.post(f"{base}/read", json={"verdicts": [{"finding_id": shadow, "agrees": True}]})
    assert bad.status_code == 400 and "not current AI findings" in bad.json()["error"]
    assert client.post(f"{base}/read", headers=second_reader).status_code == 409
    done = client.post(
        f"{base}/read",
        json={"verdicts": [{"finding_id": counted, "agrees": False, "comment": "artefact"}]},
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "read" and done.json()["read_at"]
    assert study not in [i["study_uid"] for i in listed(client)]
    assert study in [i["study_uid"] for i in listed(client, status="read")]
    page = client.get(base).json()
    assert page["verdicts"][0]["finding_id"] == counted
    assert page["verdicts"][0]["agrees"] is False
    assert client.post("/api/worklist/1.2.3.4.5/claim").status_code == 404

    live_server.flush_audit()
    trail = httpx.get(
        f"{live_server.url}/api/audit",
        params={"study_uid": study, "limit": 100},
        headers=live_server.headers(),
    ).json()["items"]
    entries = {(e["action"], e["outcome"], e["detail"]) for e in trail}
    assert ("store", "success", "worklist claim by radiologist-user") in entries
    assert ("store", "success", "worklist release by radiologist-user") in entries
    assert ("store", "success", "worklist read by radiologist-user") in entries
    assert any(e[:2] == ("store", "failure") and "release" in e[2] for e in entries)
    stored = [e for e in trail if (e["action"], e["outcome"]) == ("store", "success")]
    assert len(stored) == 4 and all(e["patient_id"] == "AUDIT-WL" for e in stored)


def test_events_announce_claims_and_new_findings(
    live_server: LiveServer, client: httpx.Client
) -> None:
    context = live_server.server.context
    study = add_study(context.ingestor)
    order_of(client, [study])
    events: list[tuple[str, dict[str, object]]] = []
    ready = threading.Event()
    reader = threading.Thread(
        target=read_events,
        args=(
            f"{live_server.url}/api/worklist/events",
            {**live_server.headers(Role.RADIOLOGIST), **EVENTS},
        ),
        kwargs={
            "until": lambda got: {"claim", "release", "finding"} <= {name for name, _ in got},
            "ready": ready,
            "out": events,
        },
    )
    reader.start()
    assert ready.wait(10)
    assert client.post(f"/api/worklist/{study}/claim").status_code == 200
    assert client.post(f"/api/worklist/{study}/release").status_code == 200
    add_finding(context.database, study, probability=0.9)
    reader.join(20)
    kinds = {name: data for name, data in events}
    assert kinds["claim"] == {
        "type": "claim",
        "study_uids": [study],
        "reader": "radiologist-user",
    }
    assert kinds["release"]["study_uids"] == [study]
    assert kinds["finding"]["study_uids"] == [study]


def test_study_page_and_the_key_image_with_its_segmentation(
    live_server: LiveServer, client: httpx.Client
) -> None:
    context = live_server.server.context
    segmented = add_segmented_study(context.ingestor, context.database)
    page = client.get(f"/api/worklist/{segmented.study_uid}")
    assert page.status_code == 200, page.text
    study = page.json()
    assert study["viewer_url"] is None
    assert study["item"]["score"]["category"] == "critical"
    (finding,) = study["findings"]
    assert finding["id"] == segmented.finding_id
    assert (finding["label"], finding["present"], finding["volume_ml"]) == ("ICH", True, 4.2)
    key = finding["key_image"]
    assert key["sop_instance_uid"] == segmented.key_slice_uid
    assert key["segmentation_uid"] == segmented.segmentation_uid

    overlay = client.get(key["overlay_url"])
    assert overlay.status_code == 200 and overlay.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(overlay.content)).convert("RGB")
    assert image.size == (64, 64)
    pixels = np.asarray(image)
    assert ((pixels == (255, 64, 64)).all(axis=-1)).any()
    plain = client.get(key["rendered_url"], headers={"Accept": "image/png"})
    assert plain.status_code == 200 and plain.headers["content-type"] == "image/png"
    missing = client.get(f"/api/worklist/{segmented.study_uid}/findings/999999/key-image")
    assert missing.status_code == 404


def test_the_web_ui_is_served(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url) as client:
        index = client.get("/ui/")
        script = client.get("/ui/worklist.js")
        missing = client.get("/ui/nothing.js")
    assert index.status_code == 200 and "text/html" in index.headers["content-type"]
    assert 'id="worklist"' in index.text
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert missing.status_code == 404
