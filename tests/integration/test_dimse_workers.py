"""Several DIMSE processes on one port: all serve, none loses a store, none outlives the server."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from tests.conftest import sample_path
from tests.factories import clone_series
from tests.integration.conftest import dcmtk, free_port, run_dcmtk
from tests.integration.processes import process_alive, spawned_children, wait_for

pytestmark = pytest.mark.integration

PACS_AI = str(Path(sys.executable).with_name("pacs-ai"))
WORKERS = 3


@dataclass
class RunningServer:
    process: subprocess.Popen[bytes]
    dimse_port: int
    http: httpx.Client

    def workers(self) -> set[int]:
        """Process ids of the DIMSE workers (spawned children of the server)."""
        return spawned_children(self.process.pid)

    def active_associations(self) -> dict[str, int]:
        text = self.http.get("/metrics").raise_for_status().text
        return {
            process: int(float(count))
            for process, count in re.findall(
                r'pacs_ai_dimse_associations_active\{process="(\d+)"\} (\S+)', text
            )
        }


def listening(server: RunningServer) -> int:
    """DIMSE processes listening, by the metrics (0 while HTTP is not up yet)."""
    try:
        return len(server.active_associations())
    except httpx.HTTPError:
        return 0


@pytest.fixture
def running(tmp_path: Path, database_url: str) -> Iterator[RunningServer]:
    port, http_port = free_port(), free_port()
    env = {
        **os.environ,
        "PACS_AI_DATA_DIR": str(tmp_path / "pacs-data"),
        "PACS_AI_DATABASE_URL": database_url,
        "PACS_AI_PIPELINES_ENABLED": "false",
        "PACS_AI_DIMSE_PORT": str(port),
        "PACS_AI_HTTP_PORT": str(http_port),
        "PACS_AI_DIMSE_WORKERS": str(WORKERS),
        "PACS_AI_MAX_ASSOCIATIONS": "64",
        "PACS_AI_LOG_LEVEL": "WARNING",
    }
    added = subprocess.run(
        [PACS_AI, "users", "add", "ops", "--role", "admin"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    token = added.stdout.strip().splitlines()[-1]
    process = subprocess.Popen([PACS_AI, "serve"], env=env, stderr=subprocess.DEVNULL)
    http = httpx.Client(
        base_url=f"http://127.0.0.1:{http_port}", headers={"Authorization": f"Bearer {token}"}
    )
    server = RunningServer(process, port, http)
    try:
        wait_for(lambda: len(server.workers()) == WORKERS - 1, timeout_s=60)
        wait_for(lambda: run_dcmtk("echoscu", "127.0.0.1", str(port)).returncode == 0)
        wait_for(lambda: listening(server) == WORKERS, timeout_s=60)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=60)
        http.close()


def test_associations_spread_over_every_process(running: RunningServer) -> None:
    ae = AE(ae_title="SPREAD")
    ae.add_requested_context(Verification)
    held = [ae.associate("127.0.0.1", running.dimse_port) for _ in range(40)]
    try:
        assert all(a.is_established for a in held)
        wait_for(lambda: sum(running.active_associations().values()) == 40)
        per_process = running.active_associations()
        # Each new association goes to the process with the fewest: 40 over 3 is 13 or 14
        # each. A hash of the connection (SO_REUSEPORT) would spread them unevenly.
        assert set(per_process) == {"0", "1", "2"}
        assert sorted(per_process.values()) == [13, 13, 14], per_process
    finally:
        for association in held:
            association.release()
    wait_for(lambda: sum(running.active_associations().values()) == 0)


def test_concurrent_stores_over_all_processes_are_all_indexed(
    running: RunningServer, tmp_path: Path
) -> None:
    files = clone_series(sample_path("CT_small.dcm"), 96, tmp_path / "send", seed="workers")
    batches = [files[i::8] for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(
                lambda batch: run_dcmtk(
                    "storescu", "127.0.0.1", str(running.dimse_port), *map(str, batch)
                ),
                batches,
            )
        )
    assert all(r.returncode == 0 for r in results), [r.stderr[-300:] for r in results]
    study = str(dcmread(files[0]).StudyInstanceUID)
    found = running.http.get(
        "/dicom-web/instances", params={"StudyInstanceUID": study, "limit": "1000"}
    ).raise_for_status()
    assert len(found.json()) == 96
    counts = running.http.get(
        "/dicom-web/studies",
        params={"StudyInstanceUID": study, "includefield": "00201208,00201206"},
    ).json()[0]
    assert counts["00201208"]["Value"] == [96]  # NumberOfStudyRelatedInstances
    assert counts["00201206"]["Value"] == [1]  # NumberOfStudyRelatedSeries
    session = requests.Session()
    session.headers.update(running.http.headers)
    client = DICOMwebClient(f"{running.http.base_url}/dicom-web", session=session)
    for path in (files[0], files[47], files[95]):
        sent = dcmread(path)
        del sent[0xFFFCFFFC]  # DataSetTrailingPadding: storescu does not send it
        back = client.retrieve_instance(study, sent.SeriesInstanceUID, sent.SOPInstanceUID)
        assert back == sent  # every element of the dataset, pixel data included


def test_a_dead_worker_is_replaced(running: RunningServer) -> None:
    victim = min(running.workers())
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: victim not in running.workers() and len(running.workers()) == WORKERS - 1)
    assert running.process.poll() is None
    ae = AE(ae_title="AFTER")
    ae.add_requested_context(Verification)
    for _ in range(12):  # whichever process the kernel picks answers
        association = ae.associate("127.0.0.1", running.dimse_port)
        assert association.is_established
        assert association.send_c_echo().Status == 0x0000
        association.release()


def test_workers_leave_with_the_main_process_even_when_it_is_killed(
    running: RunningServer,
) -> None:
    workers = running.workers()
    running.process.send_signal(signal.SIGKILL)
    running.process.wait(timeout=10)
    wait_for(lambda: not any(process_alive(pid) for pid in workers), timeout_s=15)
    echo = subprocess.run(
        [dcmtk("echoscu"), "127.0.0.1", str(running.dimse_port)],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert echo.returncode != 0, "something still answers on the port"
