"""SIGKILL the server mid-stream: every acknowledged instance is there, intact, after restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydicom import dcmread

from tests.conftest import sample_path
from tests.factories import clone_series
from tests.integration.conftest import dcmtk, free_port, run_dcmtk

pytestmark = pytest.mark.integration

PACS_AI = str(Path(sys.executable).with_name("pacs-ai"))


def start_server(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [PACS_AI, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if run_dcmtk("echoscu", "127.0.0.1", str(port), timeout=10).returncode == 0:
            return process
        assert process.poll() is None, "server exited at start"
        time.sleep(0.2)
    process.kill()
    raise AssertionError("server did not start")


def test_acknowledged_instances_survive_sigkill(tmp_path: Path, database_url: str) -> None:
    files = clone_series(sample_path("CT_small.dcm"), 200, tmp_path / "send", seed="crash")
    port = free_port()
    env = {
        **os.environ,
        "PACS_AI_DATA_DIR": str(tmp_path / "pacs-data"),
        "PACS_AI_PIPELINES_ENABLED": "false",
        "PACS_AI_DATABASE_URL": database_url,
        "PACS_AI_DIMSE_PORT": str(port),
        "PACS_AI_HTTP_PORT": "0",
        "PACS_AI_LOG_LEVEL": "WARNING",
    }
    server = start_server(env, port)
    sender = subprocess.Popen(
        [dcmtk("storescu"), "-v", "127.0.0.1", str(port), *map(str, files)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TCP_NODELAY": "1"},
    )
    assert sender.stderr is not None
    acknowledged: list[Path] = []
    current: Path | None = None
    killed = False
    for line in sender.stderr:
        if line.startswith("I: Sending file: "):
            current = Path(line.removeprefix("I: Sending file: ").strip())
        elif "Received Store Response (Success)" in line and current is not None:
            acknowledged.append(current)
            if len(acknowledged) == 60 and not killed:
                server.send_signal(signal.SIGKILL)
                killed = True
    sender.wait(timeout=60)
    server.wait(timeout=30)
    assert killed, "the stream ended before the kill"
    assert 60 <= len(acknowledged) < 200

    server = start_server(env, port)
    try:
        out = tmp_path / "retrieved"
        out.mkdir()
        study_uid = str(dcmread(files[0]).StudyInstanceUID)
        got = run_dcmtk(
            "getscu",
            "-S",
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            f"StudyInstanceUID={study_uid}",
            "-od",
            str(out),
            "127.0.0.1",
            str(port),
        )
        assert got.returncode == 0, got.stderr
        retrieved = {str(dcmread(p).SOPInstanceUID): p for p in out.iterdir()}
        for path in acknowledged:
            original = dcmread(path)
            copy = dcmread(retrieved[str(original.SOPInstanceUID)])
            original.pop(0xFFFCFFFC, None)
            assert copy == original
    finally:
        server.terminate()
        server.wait(timeout=30)
