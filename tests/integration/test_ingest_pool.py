"""STOW-RS through ingest processes: the same answers as in-process, survivable worker deaths."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from io import BytesIO
from pathlib import Path

import httpx
import pytest
from pydicom import dcmread
from sqlalchemy import func, select

from pacs_ai.archive.ingest import IngestError, IngestErrorKind, IngestResult
from pacs_ai.archive.ingest_pool import IngestPool
from pacs_ai.archive.schema import Instance
from pacs_ai.config import Settings
from pacs_ai.security.accounts import add_user
from pacs_ai.security.roles import Role
from pacs_ai.server import Server, build_context
from tests.conftest import sample_path
from tests.factories import clone_series
from tests.integration.conftest import ServerFactory, free_port
from tests.integration.processes import process_alive, spawned_children

pytestmark = pytest.mark.integration

PACS_AI = str(Path(sys.executable).with_name("pacs-ai"))
BOUNDARY = "pool-test-boundary"


def multipart(parts: list[bytes]) -> bytes:
    chunks = []
    for part in parts:
        chunks += [f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode(), part]
        chunks.append(b"\r\n")
    chunks.append(f"--{BOUNDARY}--\r\n".encode())
    return b"".join(chunks)


def stow(server: Server, body: bytes) -> httpx.Response:
    token = add_user(
        database=server.context.database,
        settings=server.context.settings,
        username=f"stow-{time.monotonic_ns()}",
        role=Role.ADMIN,
    )
    return httpx.post(
        f"http://127.0.0.1:{server.http_port}/dicom-web/studies",
        content=body,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={BOUNDARY}',
        },
        timeout=60,
    )


def instance_count(server: Server) -> int:
    with server.context.database.sessions() as session:
        return int(session.execute(select(func.count(Instance.id))).scalar_one())


def test_pool_answers_as_the_server_process_does(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    files = clone_series(sample_path("CT_small.dcm"), 12, tmp_path / "send", seed="pool")
    first = [f.read_bytes() for f in files[:2]]
    other = dcmread(files[1])
    other.PatientName = "Other^Content"
    conflicting = BytesIO()
    other.save_as(conflicting, enforce_file_format=True)
    # New objects, an identical resend, garbage, and other content under a stored UID.
    request = multipart(
        [f.read_bytes() for f in files[2:]]
        + [first[0], b"not DICOM at all", conflicting.getvalue()]
    )
    answers = {}
    for processes in (0, 2):
        server = make_server(ingest_processes=processes)
        assert (server.context.ingest_pool is None) == (processes == 0)
        assert stow(server, multipart(first)).status_code == 200
        answer = stow(server, request)
        assert answer.status_code == 202
        assert instance_count(server) == 12
        body = answer.json()
        for item in body["00081199"]["Value"]:  # RetrieveURLs name each server's own port
            del item["00081190"]
        del body["00081190"]
        answers[processes] = body
    assert answers[0] == answers[2]
    stored = [i["00081155"]["Value"][0] for i in answers[2]["00081199"]["Value"]]
    assert stored == [str(dcmread(f).SOPInstanceUID) for f in files[2:]] + [
        str(dcmread(files[0]).SOPInstanceUID)
    ]
    failed = answers[2]["00081198"]["Value"]
    assert [f["00081197"]["Value"][0] for f in failed] == [0xC000, 0x0111]
    assert failed[1]["00000902"]["Value"][0].startswith("SOP Instance ")  # the reason, cut to LO


def test_a_dead_ingest_process_fails_only_what_it_held(tmp_path: Path, database_url: str) -> None:
    settings = Settings(
        data_dir=tmp_path / "pacs-data", database_url=database_url, ingest_processes=2
    )
    build_context(settings).database.dispose()  # migrated
    before = spawned_children(os.getpid())
    pool = IngestPool(settings)
    try:
        pool.warm_up()
        workers = spawned_children(os.getpid()) - before
        assert len(workers) == 2
        files = clone_series(sample_path("CT_small.dcm"), 6, tmp_path / "send", seed="dead")
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        outcomes = [o for _, o in pool.ingest_many(f.read_bytes() for f in files[:3])]
        for outcome in outcomes:
            if isinstance(outcome, IngestError):
                assert outcome.kind is IngestErrorKind.INDEX
                assert "send again" in outcome.reason
            else:
                assert isinstance(outcome, IngestResult)
        again = [o for _, o in pool.ingest_many(f.read_bytes() for f in files)]
        assert all(isinstance(o, IngestResult) for o in again), again
        assert [o.sop_instance_uid for o in again] == [  # type: ignore[union-attr]
            str(dcmread(f).SOPInstanceUID) for f in files
        ]
    finally:
        pool.close()


def test_ingest_processes_leave_with_a_killed_server(tmp_path: Path) -> None:
    port, http_port = free_port(), free_port()
    env = {
        **os.environ,
        "PACS_AI_DATA_DIR": str(tmp_path / "pacs-data"),
        "PACS_AI_PIPELINES_ENABLED": "false",
        "PACS_AI_DIMSE_PORT": str(port),
        "PACS_AI_HTTP_PORT": str(http_port),
        "PACS_AI_INGEST_PROCESSES": "2",
        "PACS_AI_LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen([PACS_AI, "serve"], env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(spawned_children(server.pid)) < 2:
            assert time.monotonic() < deadline, "ingest processes did not start"
            time.sleep(0.1)
        workers = spawned_children(server.pid)
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        deadline = time.monotonic() + 15
        while alive := [pid for pid in workers if process_alive(pid)]:
            assert time.monotonic() < deadline, f"ingest processes outlived the server: {alive}"
            time.sleep(0.1)
    finally:
        if server.poll() is None:
            server.kill()
