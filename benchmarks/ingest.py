"""C-STORE throughput and C-FIND latency of pacs-ai, side by side with Orthanc when installed.

One command: ``.venv/bin/python benchmarks/ingest.py`` (or ``make bench-ingest``). It prints
a table; figures are medians of ``--runs`` runs on this machine, both servers measured in the
same run with the same client (DCMTK's storescu with TCP_NODELAY=1) and the same files.

When Orthanc is installed and we are root, the whole benchmark re-runs itself inside
``unshare --net`` with only loopback up, because Orthanc 1.10 listens on every interface.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
from common import free_port, percentile
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind
from rich.console import Console
from rich.table import Table

from pacs_ai.dicom.uids import derived_uid
from pacs_ai.synth import generate_ct_head, write_study

STORESCU = "/usr/bin/storescu"
ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
PACS_AI = str(Path(sys.executable).with_name("pacs-ai"))
console = Console()


def wait_for_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def serving(http_port: int) -> int:
    """DIMSE processes serving, as the server's /metrics reports them (0 until it answers)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{http_port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return 0
    return len(re.findall(r"pacs_ai_dimse_associations_active\{", text))


@contextmanager
def pacs_ai_server(folder: Path, workers: int = 1) -> Iterator[int]:
    """``pacs-ai serve`` on the embedded defaults (SQLite), in its own process.

    ``workers``: ``PACS_AI_DIMSE_WORKERS``; the server counts as up once every one serves.
    """
    port, http_port = free_port(), free_port()
    env = {
        **os.environ,
        "PACS_AI_METRICS_PUBLIC": "true",
        "PACS_AI_DIMSE_WORKERS": str(workers),
        "PACS_AI_DATA_DIR": str(folder),
        "PACS_AI_PIPELINES_ENABLED": "false",
        "PACS_AI_DIMSE_PORT": str(port),
        "PACS_AI_HTTP_PORT": str(http_port),
        "PACS_AI_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [PACS_AI, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port)
        deadline = time.monotonic() + 60
        while serving(http_port) < workers:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {serving(http_port)} of {workers} DIMSE processes serve")
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=60)


@contextmanager
def orthanc_server(folder: Path) -> Iterator[int]:
    """Orthanc with its defaults (SQLite index, files on disk), TCP_NODELAY for DCMTK."""
    port, http_port = free_port(), free_port()
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "Name": "bench",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "DicomAet": "ORTHANC",
        "DicomPort": port,
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomCheckCalledAet": False,
        "DicomAlwaysAllowFind": True,
        "DicomAlwaysAllowStore": True,
        "StorageCompression": False,
        "Plugins": [],
    }
    (folder / "orthanc.json").write_text(json.dumps(config))
    process = subprocess.Popen(
        [ORTHANC, str(folder / "orthanc.json")],
        env={**os.environ, "TCP_NODELAY": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=60)


def store(port: int, batches: list[list[Path]]) -> float:
    """Seconds for storescu to send every batch, one association per batch, all at once."""
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            [STORESCU, "-aec", "ANY-SCP", "127.0.0.1", str(port), *map(str, batch)],
            env={**os.environ, "TCP_NODELAY": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for batch in batches
    ]
    for process in processes:
        _, errors = process.communicate(timeout=1800)
        if process.returncode != 0:
            raise RuntimeError(f"storescu failed: {errors.decode()[-500:]}")
    return time.perf_counter() - started


def ct_files(folder: Path, studies: int, seed: int) -> list[Path]:
    """40-slice 512x512 synthetic CT heads (0.5 MB a slice)."""
    paths: list[Path] = []
    for index in range(studies):
        study = generate_ct_head(
            seed * 1000 + index, hemorrhage=index % 3 == 0, slices=40, size=512
        )
        paths += sorted(p for p in write_study(study, folder / f"s{index}") if p.suffix == ".dcm")
    return paths


def small_files(folder: Path, studies: int, per_study: int) -> list[Path]:
    """Small objects, ``studies`` x ``per_study``, to build a large index quickly."""
    folder.mkdir(parents=True, exist_ok=True)
    pixels = np.zeros((8, 8), dtype=np.uint16).tobytes()
    paths = []
    for study_index in range(studies):
        study_uid = derived_uid("bench-index", study_index)
        series_uid = derived_uid("bench-index", study_index, "series")
        for index in range(per_study):
            sop_uid = derived_uid("bench-index", study_index, index)
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = CTImageStorage
            meta.MediaStorageSOPInstanceUID = sop_uid
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = Dataset()
            ds.file_meta = meta
            ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop_uid
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
            ds.PatientID = f"BENCH{study_index:05d}"
            ds.PatientName = f"BENCH^PATIENT{study_index:05d}"
            ds.StudyDate = f"2024{1 + study_index % 12:02d}{1 + study_index % 28:02d}"
            ds.StudyTime = "101010"
            ds.AccessionNumber = f"ACC{study_index:06d}"
            ds.Modality = "CT"
            ds.SeriesNumber = 1
            ds.InstanceNumber = index + 1
            ds.Rows = ds.Columns = 8
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
            ds.PixelRepresentation = 0
            ds.PixelData = pixels
            path = folder / f"{study_index:05d}-{index:03d}.dcm"
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
    return paths


def find_latencies(port: int, queries: int, studies: int) -> list[float]:
    """Study-level C-FIND on one reused association; seconds per query until the final response."""
    ae = AE(ae_title="BENCH")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = ae.associate("127.0.0.1", port, ae_title="ANY-SCP")
    assert assoc.is_established
    sock = assoc.dul.socket.socket  # type: ignore[union-attr]
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[union-attr]
    timings = []
    try:
        for index in range(queries):
            identifier = Dataset()
            identifier.QueryRetrieveLevel = "STUDY"
            identifier.PatientID = f"BENCH{(index * 7919) % studies:05d}"
            identifier.StudyInstanceUID = ""
            identifier.PatientName = ""
            identifier.StudyDate = ""
            identifier.AccessionNumber = ""
            identifier.ModalitiesInStudy = ""
            identifier.NumberOfStudyRelatedInstances = ""
            started = time.perf_counter()
            matches = sum(
                1
                for status, _ in assoc.send_c_find(
                    identifier, StudyRootQueryRetrieveInformationModelFind
                )
                if status and status.Status == 0xFF00
            )
            timings.append(time.perf_counter() - started)
            assert matches == 1, matches
    finally:
        assoc.release()
    return timings


def store_runs(
    name: str,
    server: Callable[[Path], contextmanager],
    work: Path,
    run: int,
    args: argparse.Namespace,  # type: ignore[type-arg]
    single: list[Path],
    quad: list[list[Path]],
) -> dict[str, float]:
    """One run of the C-STORE rows for one server: objects/s per row."""
    rates: dict[str, float] = {}
    with server(work / f"{name}-one-{run}") as port:
        rates["one"] = len(single) / store(port, [single])
    with server(work / f"{name}-four-{run}") as port:
        rates["four"] = sum(map(len, quad)) / store(port, quad)
    if name == "pacs-ai":
        with pacs_ai_server(work / f"{name}-workers-{run}", args.dimse_workers) as port:
            rates["four_workers"] = sum(map(len, quad)) / store(port, quad)
    else:  # Orthanc has no such setting: its row repeats its only four-association figure
        rates["four_workers"] = rates["four"]
    console.print(
        f"  {name} run {run + 1}: {rates['one']:.0f}/s (1 assoc), {rates['four']:.0f}/s "
        f"(4 assoc)"
        + (f", {rates['four_workers']:.0f}/s (4 assoc, workers)" if name == "pacs-ai" else "")
    )
    return rates


def find_run(
    server: Callable[[Path], contextmanager],
    folder: Path,
    index_files: list[Path],
    args: argparse.Namespace,
) -> dict[str, float]:
    """C-FIND latencies over an archive of the index files."""
    with server(folder) as port:
        chunks = [index_files[i::4] for i in range(4)]
        store(port, chunks)
        latencies = find_latencies(port, args.queries, args.index_studies)
    return {
        "find_p50_ms": percentile(latencies, 0.5) * 1000,
        "find_p95_ms": percentile(latencies, 0.95) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--studies", type=int, default=5, help="40-slice CT studies per run (1 association)"
    )
    parser.add_argument(
        "--index-studies", type=int, default=250, help="studies x 40 instances for C-FIND"
    )
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument(
        "--dimse-workers",
        type=int,
        default=(os.cpu_count() or 1) + 1,
        help="PACS_AI_DIMSE_WORKERS for the second four-association row "
        "(default: cores + 1, as ingest also waits on fsync)",
    )
    parser.add_argument("--no-orthanc", action="store_true")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    with_orthanc = not args.no_orthanc and Path(ORTHANC).exists()
    if with_orthanc and not args.inside and os.geteuid() == 0 and shutil.which("unshare"):
        command = " ".join([sys.executable, *map(str, sys.argv), "--inside"])
        os.execvp(
            "unshare", ["unshare", "--net", "sh", "-c", f"ip link set lo up && exec {command}"]
        )

    with tempfile.TemporaryDirectory(prefix="pacs-bench-") as temp:
        work = Path(temp)
        console.print("generating data ...")
        single = ct_files(work / "ct1", args.studies, seed=1)
        slice_mb = sum(p.stat().st_size for p in single) / len(single) / 1e6
        quad_all = ct_files(work / "ct4", args.studies, seed=2)
        quad = [quad_all[i::4] for i in range(4)]
        index_files = small_files(work / "index", args.index_studies, 40)
        servers: dict[str, Callable[[Path], contextmanager]] = {"pacs-ai": pacs_ai_server}
        if with_orthanc:
            servers["Orthanc"] = orthanc_server
        # Servers take turns within each run, so that the machine's drift over the minutes
        # of a benchmark falls on both alike.
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
        for run in range(args.runs):
            for name, server in servers.items():
                runs[name].append(store_runs(name, server, work, run, args, single, quad))
        results = {
            name: {
                key: statistics.median(rates[key] for rates in runs[name])
                for key in ("one", "four", "four_workers")
            }
            | find_run(server, work / f"{name}-index", index_files, args)
            for name, server in servers.items()
        }

    table = Table(
        title=f"C-STORE and C-FIND, median of {args.runs} runs ({slice_mb:.2f} MB CT slices, "
        f"C-FIND over {args.index_studies * 40} instances)"
    )
    table.add_column("metric")
    for name in results:
        table.add_column(name, justify="right")
    if "Orthanc" in results:
        table.add_column("pacs-ai / Orthanc", justify="right")
    rows = [
        ("C-STORE, 1 association (instances/s)", "one"),
        ("C-STORE, 4 associations (instances/s)", "four"),
        (
            f"C-STORE, 4 associations, {args.dimse_workers} DIMSE processes (instances/s)",
            "four_workers",
        ),
        ("C-FIND study, reused association, p50 (ms)", "find_p50_ms"),
        ("C-FIND study, reused association, p95 (ms)", "find_p95_ms"),
    ]
    for label, key in rows:
        cells = [f"{results[name][key]:.1f}" for name in results]
        if "Orthanc" in results:
            cells.append(f"{results['pacs-ai'][key] / results['Orthanc'][key]:.2f}")
        table.add_row(label, *cells)
    console.print(table)


if __name__ == "__main__":
    main()
