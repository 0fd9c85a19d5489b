"""The QA review, statistics and models pages in a real (headless) Chromium, via Playwright.

A QA reviewer rejects a positive AI finding, then changes their mind and accepts it: both
reviews stay, the second superseding the first. An ML engineer activates a second version of
a model (confirming that it replaces the active one), then rolls back. A QA reviewer reads
the statistics: the PPV of a version with known reviews, and the plots. Screenshots go to
``test-artifacts/qa-review.png``, ``models.png`` and ``stats.png``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from pacs_ai.qa.schema import FindingReview
from pacs_ai.registry import service
from pacs_ai.registry.bundle import read_bundle
from pacs_ai.registry.metrics import wilson_interval
from pacs_ai.registry.schema import ModelState, ModelVersion
from pacs_ai.security.accounts import add_user
from pacs_ai.security.roles import Role
from tests.integration.conftest_dicomweb import LiveServer, sqlite_server
from tests.integration.test_worklist_support import add_finding, add_segmented_study, add_study
from tests.unit.registry.bundles import make_tiny_bundle

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
__all__ = ["sqlite_server"]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PASSWORD = "check the checker, twice"
UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
    .filter((e) => e.type !== 'hidden' && e.labels.length === 0 && !e.getAttribute('aria-label'))
    .map((e) => e.name || e.id)"""
EN_DASH = "\u2013"  # between the bounds of an interval, as typographers write ranges
NAV = "() => [...document.querySelectorAll('#nav a')].map((a) => a.textContent)"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright import sync_api

    assert Path(CHROMIUM).is_file(), "Chromium is missing: apt-get install chromium"
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"],
        )
        yield launched
        launched.close()


def log_in(page: Any, url: str, username: str) -> None:
    """Open ``url``, check the login form's labels, and log in as ``username``."""
    page.goto(url)
    page.wait_for_selector("#login-view:not([hidden])")
    assert page.evaluate(UNLABELLED) == []
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_selector("#who:not([hidden])")


def test_a_reviewer_rejects_then_accepts_a_finding(browser: Any, sqlite_server: LiveServer) -> None:
    context = sqlite_server.server.context
    add_user(
        database=context.database,
        settings=context.settings,
        username="qa.reviewer",
        role=Role.QA,
        password=PASSWORD,
    )
    segmented = add_segmented_study(context.ingestor, context.database)
    finding = segmented.finding_id
    queued = f'#queue tbody tr[data-finding="{finding}"]'

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        log_in(page, f"{sqlite_server.url}/ui/qa.html", "qa.reviewer")
        assert page.evaluate(NAV) == ["QA review", "Statistics"]
        page.wait_for_selector(queued)
        assert "Positive finding" in page.locator(queued).inner_text()
        page.locator(queued).get_by_role("button", name="Review").click()
        page.wait_for_selector("#detail:not([hidden])")
        page.wait_for_function(
            "() => { const i = document.getElementById('key-image');"
            " return i && i.complete && i.naturalWidth > 0; }",
            timeout=15000,
        )
        assert "Key image for finding" in (page.locator("#key-image").get_attribute("alt") or "")
        facts = page.locator("#facts").inner_text()
        for text in ("ct-head-hemorrhage", "1.0.0", "Intracranial hemorrhage", "0.930", "4.2 ml"):
            assert text in facts
        assert "No reader gave a verdict" in page.locator("#verdicts").inner_text()
        assert page.evaluate(UNLABELLED) == []

        page.get_by_label("Reject", exact=True).check()
        page.get_by_label("Reason", exact=True).select_option("false_positive_artifact")
        page.get_by_label("Comment").fill("streak artifact from the dental fillings")
        page.get_by_role("button", name="Submit review").click()
        page.wait_for_function(
            "() => document.querySelectorAll('#history tbody tr[data-review]').length === 1"
        )
        history = page.locator("#history tbody tr[data-review]")
        assert history.first.locator(".decision").inner_text() == "Reject"
        assert "streak artifact" in history.first.inner_text()
        assert page.locator("#review-error").inner_text() == ""

        page.get_by_label("Accept", exact=True).check()
        page.get_by_label("Reason", exact=True).select_option("confirmed")
        page.get_by_label("Comment").fill("on second look, a real bleed")
        page.get_by_role("button", name="Submit review").click()
        page.wait_for_function(
            "() => document.querySelectorAll('#history tbody tr[data-review]').length === 2"
        )
        assert history.nth(1).locator(".decision").inner_text() == "Accept"
        assert "replaces #" in history.nth(1).inner_text()
        assert "replaces review" in page.locator("#review-status").inner_text()
        # Reviewed: out of the default queue, back with the reviewed ones.
        page.wait_for_selector(queued, state="detached")
        page.get_by_label("Include reviewed").check()
        page.wait_for_selector(queued)
        assert "2; latest Accept by qa.reviewer" in page.locator(queued).inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "qa-review.png"), full_page=True)

        # A refused review shows the server's reason: no Correct of a negative finding, and
        # the page does not even offer it.
        negative = add_finding(
            context.database, segmented.study_uid, probability=0.1, series_uid=segmented.series_uid
        )
        page.goto(f"{sqlite_server.url}/ui/qa.html?finding={negative}")
        page.wait_for_function(
            "() => document.getElementById('detail-title').textContent.startsWith('Finding ')"
        )
        correct = page.get_by_label("Correct", exact=True)
        assert correct.is_disabled()
        # Forced anyway (as a stale page might), the server refuses and the page says why.
        correct.evaluate("input => { input.disabled = false; }")
        correct.check()
        page.get_by_label("Reason", exact=True).select_option("wrong_location")
        page.get_by_role("button", name="Submit review").click()
        page.wait_for_function("() => document.getElementById('review-error').textContent !== ''")
        assert "cannot be corrected" in page.locator("#review-error").inner_text()
        assert errors == []
    finally:
        page.close()

    with context.database.sessions() as session:
        reviews = list(
            session.scalars(
                select(FindingReview)
                .where(FindingReview.finding_id == finding)
                .order_by(FindingReview.id)
            )
        )
    assert [(r.reviewer, r.decision, r.reason) for r in reviews] == [
        ("qa.reviewer", "reject", "false_positive_artifact"),
        ("qa.reviewer", "accept", "confirmed"),
    ]
    assert reviews[0].supersedes is None
    assert reviews[1].supersedes == reviews[0].id
    assert reviews[1].comment == "on second look, a real bleed"


def version_row(name: str, version: str) -> str:
    return f'#models tr[data-name="{name}"][data-version="{version}"]'


def state_of(page: Any, version: str) -> str | None:
    """The state the models page shows for tiny-seg ``version``."""
    return page.locator(version_row("tiny-seg", version)).get_attribute("data-state")


def test_an_engineer_activates_a_version_and_rolls_back(
    browser: Any, sqlite_server: LiveServer, tmp_path: Path
) -> None:
    context = sqlite_server.server.context
    add_user(
        database=context.database,
        settings=context.settings,
        username="ml.engineer",
        role=Role.ML_ENGINEER,
        password=PASSWORD,
    )
    first = read_bundle(make_tiny_bundle(tmp_path, version="1.0.0"))
    second = read_bundle(make_tiny_bundle(tmp_path, version="1.1.0", seed=1))
    with context.database.write_sessions.begin() as session:
        registered, _report = service.register(session=session, bundle=first, actor="test")
        service.register(session=session, bundle=second, actor="test")
        service.set_state(
            session=session,
            model_version=registered,
            state=ModelState.ACTIVE,
            actor="test",
            reason="first",
        )

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        log_in(page, f"{sqlite_server.url}/ui/models.html", "ml.engineer")
        assert page.evaluate(NAV) == ["Statistics", "Models"]
        page.wait_for_selector(version_row("tiny-seg", "1.1.0"))
        assert state_of(page, "1.0.0") == "active"
        assert state_of(page, "1.1.0") == "inactive"

        page.get_by_role("button", name="Details of tiny-seg 1.1.0").click()
        page.wait_for_function(
            "() => document.getElementById('detail-title').textContent === 'tiny-seg 1.1.0'"
        )
        assert page.evaluate(UNLABELLED) == []
        page.get_by_label("Reason for the change").fill("better on the March validation set")
        page.get_by_role("button", name="Activate", exact=True).click()
        page.wait_for_selector("#replace-confirm:not([hidden])")
        assert "1.0.0" in page.locator("#state-error").inner_text()
        page.get_by_label("Replace the active version").check()
        page.get_by_role("button", name="Activate", exact=True).click()
        page.wait_for_selector(version_row("tiny-seg", "1.1.0") + '[data-state="active"]')
        assert state_of(page, "1.0.0") == "inactive"
        history = page.locator("#history tbody").inner_text()
        assert "better on the March validation set" in history
        # The tiny bundle has no MODEL_CARD.md (nor docs/README.md): the API says null.
        assert "no model card" in page.locator("#model-card").inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "models.png"), full_page=True)

        page.get_by_label("Reason for rolling back tiny-seg").fill("more false positives in shadow")
        page.get_by_role("button", name="Roll back tiny-seg").click()
        page.wait_for_selector(version_row("tiny-seg", "1.0.0") + '[data-state="active"]')
        assert "1.0.0 is active again" in page.locator("#models-status").inner_text()
        assert state_of(page, "1.1.0") == "inactive"

        # This server runs without the pipeline: the replay is refused, and the page says so.
        page.get_by_label("Study date").fill("20200101-")
        page.get_by_role("button", name="Run replay").click()
        page.wait_for_function("() => document.getElementById('replay-error').textContent !== ''")
        assert "pipeline" in page.locator("#replay-error").inner_text()
        assert errors == []
    finally:
        page.close()

    with context.database.sessions() as session:
        states = {
            v.version: v.state
            for v in session.scalars(select(ModelVersion).where(ModelVersion.name == "tiny-seg"))
        }
    assert states == {"1.0.0": "active", "1.1.0": "inactive"}


def test_the_statistics_show_ppv_and_plots(browser: Any, sqlite_server: LiveServer) -> None:
    context = sqlite_server.server.context
    add_user(
        database=context.database,
        settings=context.settings,
        username="qa.statistician",
        role=Role.QA,
        password=PASSWORD,
    )
    model = ("stats-model", "3.1.0")
    decisions = [("accept", "confirmed")] * 3 + [("reject", "false_positive_anatomy")]
    with httpx.Client(base_url=sqlite_server.url, headers=sqlite_server.headers(Role.QA)) as http:
        for number, (decision, reason) in enumerate(decisions):
            study = add_study(context.ingestor, patient_id=f"STAT-{number}")
            finding = add_finding(context.database, study, probability=0.9, model=model)
            answer = http.post(
                f"/api/qa/findings/{finding}/reviews", json={"decision": decision, "reason": reason}
            )
            assert answer.status_code == 201, answer.text
    ppv = wilson_interval(3, 4)
    expected = f"{ppv.value:.2f} ({ppv.low:.2f}{EN_DASH}{ppv.high:.2f})"
    row = '#versions tbody tr[data-version="stats-model 3.1.0"][data-shadow="false"]'

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        log_in(page, f"{sqlite_server.url}/ui/stats.html", "qa.statistician")
        assert page.evaluate(NAV) == ["QA review", "Statistics"]
        page.wait_for_selector(row)
        assert page.locator(row).locator(".ppv").inner_text() == expected
        assert "4 (4 positive)" in page.locator(row).inner_text()
        page.wait_for_function(
            "() => document.querySelectorAll('svg[role=img]').length >= 3", timeout=10000
        )
        for svg in page.locator("svg[role=img]").all():
            assert svg.get_attribute("aria-label")
        assert page.locator("#rate-chart circle").count() >= 1
        assert page.locator("#agreement-chart rect.metric-ppv").count() >= 1
        assert page.locator("#drift").is_hidden()
        assert page.evaluate(UNLABELLED) == []
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "stats.png"), full_page=True)

        with page.expect_download() as info:
            page.get_by_role("button", name="Download CSV").click()
        csv_text = Path(info.value.path()).read_text()
        assert csv_text.startswith("pipeline,model_name,model_version")
        assert "stats-model,3.1.0" in csv_text
        assert errors == []
    finally:
        page.close()
