"""OHIF's calls from a page of another origin, in a real (headless) Chromium, with a token.

The page is served by a second small HTTP server; pacs-ai allows its origin and no other. The
page makes the requests OHIF 3 makes (study list, series, series metadata, a frame, an
instance), with ``Authorization: Bearer``, so the browser sends CORS preflights that must pass
without a token. The same page loaded from an origin not allowed must be refused by the
browser.
"""

from __future__ import annotations

import io
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pydicom
import pytest

from tests.integration.conftest_dicomweb import LiveServer, start_live_server, with_new_uids

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

PAGE = b"""<!doctype html>
<html><body><pre id="out">running</pre>
<script>
async function main() {
  const p = new URLSearchParams(location.hash.slice(1));
  const api = p.get("api"), auth = {Authorization: "Bearer " + p.get("token")};
  const s = p.get("study"), r = p.get("series"), i = p.get("instance");
  const inc = "includefield=00081030%2C00080060%2C00080090%2C00100030";
  const calls = {
    studies: [`/studies?limit=101&offset=0&fuzzymatching=false&${inc}&00100020=${p.get("pid")}`],
    series: [`/studies/${s}/series?includefield=00080021%2C00080031%2C0008103E%2C00200011`],
    metadata: [`/studies/${s}/series/${r}/metadata`],
    frame: [`/studies/${s}/series/${r}/instances/${i}/frames/1`,
            "multipart/related; type=application/octet-stream; transfer-syntax=*"],
    instance: [`/studies/${s}/series/${r}/instances/${i}`,
               'multipart/related; type="application/dicom"'],
  };
  const results = {};
  for (const [name, [path, accept]] of Object.entries(calls)) {
    try {
      const headers = accept ? {...auth, Accept: accept} : auth;
      const res = await fetch(api + path, {headers});
      const body = new Uint8Array(await res.arrayBuffer());
      results[name] = {status: res.status, type: res.headers.get("content-type"),
                       length: body.length,
                       text: name === "studies" ? new TextDecoder().decode(body) : ""};
    } catch (e) {
      results[name] = {error: String(e)};
    }
  }
  document.getElementById("out").textContent = JSON.stringify(results);
}
main();
</script></body></html>"""


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture(scope="module")
def page_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright import sync_api

    assert Path(CHROMIUM).is_file(), "Chromium is missing: apt-get install chromium"
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"],
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def cross_origin_server(
    page_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    live = start_live_server(
        tmp_path_factory.mktemp("pacs"), None, origins=(f"http://127.0.0.1:{page_port}",)
    )
    try:
        yield live
    finally:
        live.server.stop()


def _run_page(browser: object, page_url: str) -> dict[str, dict[str, object]]:
    page = browser.new_page()  # type: ignore[attr-defined]
    try:
        page.goto(page_url)
        page.wait_for_function("document.getElementById('out').textContent !== 'running'")
        return dict(json.loads(page.text_content("#out")))
    finally:
        page.close()


def test_ohif_calls_from_another_origin(
    browser: object, page_port: int, cross_origin_server: LiveServer
) -> None:
    data = with_new_uids("CT_small.dcm", PatientID="BROWSER-1")
    cross_origin_server.server.context.ingestor.ingest(data)
    ds = pydicom.dcmread(io.BytesIO(data))
    fragment = (
        f"api={cross_origin_server.dicomweb}&token={cross_origin_server.tokens['radiologist']}"
        f"&study={ds.StudyInstanceUID}&series={ds.SeriesInstanceUID}"
        f"&instance={ds.SOPInstanceUID}&pid=BROWSER-1"
    )
    allowed = _run_page(browser, f"http://127.0.0.1:{page_port}/#{fragment}")
    assert {name: r.get("status") for name, r in allowed.items()} == {
        "studies": 200,
        "series": 200,
        "metadata": 200,
        "frame": 200,
        "instance": 200,
    }, allowed
    assert json.loads(str(allowed["studies"]["text"]))[0]["0020000D"]["Value"] == [
        ds.StudyInstanceUID
    ]
    assert str(allowed["frame"]["type"]).startswith("multipart/related")
    assert int(str(allowed["frame"]["length"])) > len(ds.PixelData)
    assert int(str(allowed["instance"]["length"])) > len(data)

    refused = _run_page(browser, f"http://localhost:{page_port}/#{fragment}")
    assert all("error" in r for r in refused.values()), refused
