"""The worklist web UI in a real (headless) Chromium, driven by Playwright.

A radiologist logs in; a critical finding arrives for the newest study while the page is open
and Server-Sent Events move it to the top; the radiologist claims it, opens the study page,
sees the key image with the segmentation drawn on it, agrees with the AI and marks it read.
A screenshot of the worklist goes to ``test-artifacts/worklist.png``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from pacs_ai.security.accounts import add_user
from pacs_ai.security.roles import Role
from pacs_ai.triage.schema import FindingAgreement
from tests.integration.conftest_dicomweb import LiveServer, sqlite_server
from tests.integration.test_worklist_support import (
    add_finding,
    add_segmented_study,
    add_study,
    set_arrival,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
__all__ = ["sqlite_server"]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PASSWORD = "read carefully, read twice"
UNLABELLED = """() => [...document.querySelectorAll('input, select')]
    .filter((e) => e.type !== 'hidden' && e.labels.length === 0 && !e.getAttribute('aria-label'))
    .map((e) => e.name || e.id)"""


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


def row(study_uid: str) -> str:
    return f'#worklist tbody tr[data-study="{study_uid}"]'


def test_a_critical_finding_jumps_to_the_top_and_is_read(
    browser: Any, sqlite_server: LiveServer
) -> None:
    context = sqlite_server.server.context
    add_user(
        database=context.database,
        settings=context.settings,
        username="dr.reader",
        role=Role.RADIOLOGIST,
        password=PASSWORD,
    )
    waiting = [
        add_study(
            context.ingestor,
            patient_id=f"WAIT-{i}",
            patient_name=f"Waiting^Patient{i}",
            priority="HIGH",
        )
        for i in range(3)
    ]
    for minutes, study in zip((120, 90, 60), waiting, strict=True):
        set_arrival(context.database, study, minutes)
    segmented = add_segmented_study(context.ingestor, context.database, probability=-1)

    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        page.goto(f"{sqlite_server.url}/ui/")
        assert page.evaluate(UNLABELLED) == []
        page.get_by_label("User name").fill("dr.reader")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_selector(row(segmented.study_uid))
        page.wait_for_selector("#live[data-state='live']")
        first = page.locator("#worklist tbody tr").first
        assert first.get_attribute("data-study") != segmented.study_uid

        add_finding(
            context.database,
            segmented.study_uid,
            probability=0.93,
            series_uid=segmented.series_uid,
            result_uids=(segmented.segmentation_uid,),
            volume_ml=4.2,
        )
        page.wait_for_function(
            "uid => document.querySelector('#worklist tbody tr')?.dataset.study === uid",
            arg=segmented.study_uid,
            timeout=15000,
        )
        top = page.locator(row(segmented.study_uid))
        assert top.locator(".badge").first.inner_text() == "ICH 0.93"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "worklist.png"), full_page=True)

        top.get_by_role("button", name="Claim").focus()
        page.keyboard.press("ArrowDown")
        focused = page.evaluate("document.activeElement.closest('tr').dataset.study")
        assert focused == waiting[0]
        top.get_by_role("button", name="Claim").click()
        page.wait_for_function(
            "sel => document.querySelector(sel)?.querySelector('.reader').textContent === "
            "'dr.reader'",
            arg=row(segmented.study_uid),
        )
        assert top.locator(".status").inner_text() == "In progress"

        top.get_by_role("link", name="Open").click()
        page.wait_for_selector("#study-view:not([hidden])")
        assert "Intracranial hemorrhage: present" in page.locator("#findings").inner_text()
        page.wait_for_function(
            "() => { const i = document.querySelector('img.key-image');"
            " return i && i.complete && i.naturalWidth === 64; }"
        )
        image = page.locator("img.key-image")
        assert "segmentation outlined" in (image.get_attribute("alt") or "")
        page.screenshot(path=str(ARTIFACTS / "study.png"), full_page=True)
        assert page.evaluate(UNLABELLED) == []
        page.get_by_label("Agree", exact=True).check()
        page.get_by_role("button", name="Mark read").click()
        page.wait_for_function(
            "() => document.getElementById('state').textContent.startsWith('Read by dr.reader')"
        )

        page.get_by_role("link", name="Back to the worklist").click()
        page.wait_for_selector(row(waiting[0]))
        assert page.locator(row(segmented.study_uid)).count() == 0
    finally:
        page.close()
    with context.database.sessions() as session:
        verdicts = list(session.execute(select(FindingAgreement)).scalars())
    assert [(v.study_instance_uid, v.reader, v.agrees) for v in verdicts] == [
        (segmented.study_uid, "dr.reader", True)
    ]
