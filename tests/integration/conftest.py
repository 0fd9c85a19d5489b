"""Running servers and DICOM peers for the integration tests."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread

from pacs_ai.config import Settings
from pacs_ai.server import Server, create_server

# pynetdicom installs Python scripts named storescu, findscu... into the virtualenv; the
# interop tests must run DCMTK's own binaries.
DCMTK_DIR = Path("/usr/bin")


def dcmtk(tool: str) -> str:
    """Absolute path of a DCMTK tool, checked to be DCMTK's."""
    path = DCMTK_DIR / tool
    assert path.is_file(), f"DCMTK's {tool} is missing: apt-get install dcmtk"
    version = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=False)
    assert "dcmtk" in version.stdout.lower(), f"{path} is not DCMTK's {tool}"
    return str(path)


def run_dcmtk(
    tool: str, *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a DCMTK tool with TCP_NODELAY (DCMTK reads it from the environment)."""
    return subprocess.run(
        [dcmtk(tool), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "TCP_NODELAY": "1", **(env or {})},
    )


# storescu offers a compressed syntax only when asked; one option per syntax.
STORESCU_PROPOSAL = {
    "1.2.840.10008.1.2.4.50": "-xy",
    "1.2.840.10008.1.2.4.51": "-xx",
    "1.2.840.10008.1.2.4.70": "-xs",
    "1.2.840.10008.1.2.4.90": "-xv",
    "1.2.840.10008.1.2.4.91": "-xw",
    "1.2.840.10008.1.2.4.80": "-xt",
    "1.2.840.10008.1.2.4.81": "-xu",
    "1.2.840.10008.1.2.5": "-xr",
    "1.2.840.10008.1.2.1.99": "-xd",
}


def storescu(port: int, files: list[Path], *extra: str) -> list[subprocess.CompletedProcess[str]]:
    """Send files with storescu, grouped so that each goes in its own transfer syntax."""
    groups: dict[str, list[Path]] = {}
    for path in files:
        syntax = str(dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)
        groups.setdefault(STORESCU_PROPOSAL.get(syntax, "-x="), []).append(path)
    return [
        run_dcmtk("storescu", *extra, option, "127.0.0.1", str(port), *map(str, group))
        for option, group in groups.items()
    ]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


ServerFactory = Callable[..., Server]


@pytest.fixture
def make_server(tmp_path: Path, database_url: str) -> Iterator[ServerFactory]:
    """Start in-process servers with settings overrides; all are stopped afterwards."""
    started: list[Server] = []

    def factory(**overrides: Any) -> Server:
        settings = Settings(
            data_dir=tmp_path / f"pacs-data-{len(started)}",
            database_url=database_url,
            dimse_port=0,
            http_port=0,
            **{"pipelines_enabled": False, **overrides},
        )
        server = create_server(settings)
        server.start()
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture
def server(make_server: ServerFactory) -> Server:
    """A server with default settings on an ephemeral port."""
    return make_server()


@contextmanager
def storescp(out_dir: Path, ae_title: str = "DEST") -> Iterator[int]:
    """DCMTK's storescp as a C-MOVE destination, on a free port."""
    out_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    process = subprocess.Popen(
        [dcmtk("storescp"), "-aet", ae_title, "+xa", "-od", str(out_dir), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "TCP_NODELAY": "1"},
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
