"""The ``synth`` command function, run through typer's CliRunner on a one-command app."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from pydicom.uid import CTImageStorage, DigitalXRayImageStorageForPresentation
from pynetdicom import AE, evt
from pynetdicom.events import Event
from typer.testing import CliRunner

from pacs_ai.synth.command import synth

SMALL = ["--slices", "3", "--size", "32", "--cxr-size", "64"]


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    application = typer.Typer()
    application.command()(synth)
    return application


@pytest.fixture
def store_scp() -> Iterator[tuple[int, list[str]]]:
    """A Storage SCP on an ephemeral port that keeps the SOP Instance UIDs it receives."""
    received: list[str] = []
    lock = threading.Lock()

    def on_store(event: Event) -> int:
        with lock:
            received.append(str(event.dataset.SOPInstanceUID))
        return 0x0000

    ae = AE(ae_title="TEST-SCP")
    for sop_class in (CTImageStorage, DigitalXRayImageStorageForPresentation):
        ae.add_supported_context(sop_class)
    server = ae.start_server(
        ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    assert server is not None
    try:
        yield server.server_address[1], received
    finally:
        server.shutdown()


def test_out_writes_studies_and_truth(app: typer.Typer, tmp_path: Path) -> None:
    out = tmp_path / "synth"
    args = ["--ct-head", "2", "--cxr", "2", "--out", str(out), "--seed", "4", *SMALL]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    truths = [json.loads(p.read_text()) for p in sorted(out.glob("*/truth.json"))]
    assert sorted(t["kind"] for t in truths) == ["ct_head", "ct_head", "cxr", "cxr"]
    assert len(list(out.rglob("*.dcm"))) == 2 * 3 + 2
    assert "4 studies" in result.output


def test_same_seed_same_files(app: typer.Typer, tmp_path: Path) -> None:
    for name in ("a", "b"):
        args = ["--ct-head", "1", "--cxr", "1", "--out", str(tmp_path / name), *SMALL]
        assert CliRunner().invoke(app, args).exit_code == 0
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.dcm"))
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.dcm"))
    assert files_a == files_b
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()


def test_send_only_stores_every_file(
    app: typer.Typer, store_scp: tuple[int, list[str]], tmp_path: Path
) -> None:
    port, received = store_scp
    args = ["--ct-head", "1", "--cxr", "1", "--send", "127.0.0.1", str(port), *SMALL]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert len(received) == 3 + 1
    assert "sent 4 files" in result.output


def test_send_to_nobody_fails(app: typer.Typer, tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nobody listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "out"
    args = ["--cxr", "1", "--out", str(out), "--send", "127.0.0.1", str(port), *SMALL]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "not sent" in result.output
    assert len(list(out.rglob("*.dcm"))) == 1  # the files stay for a second try


def test_out_or_send_is_required(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["--cxr", "1"])
    assert result.exit_code == 2
    assert "--send" in result.output
