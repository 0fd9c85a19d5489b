"""DICOMweb benchmark: pacs-ai beside Orthanc (with its DICOMweb plugin), on loopback only.

One command: ``.venv/bin/python benchmarks/dicomweb.py`` prints a table of

- STOW-RS ingest rate (instances/s), batches of 50 synthetic CT instances, one request at a
  time and four at once;
- QIDO-RS study search latency (p50/p95 ms) with ``--instances`` (10,000) in the archive;
- WADO-RS series retrieve throughput (MB/s);

for pacs-ai (SQLite index, the default) as configured out of the box, pacs-ai with one
ingest process per core (``PACS_AI_INGEST_PROCESSES``), and Orthanc (its default SQLite
index), with the ratios.
Run as root, the script re-runs itself inside a new network namespace (``unshare --net``,
loopback up) so that both servers and the client see nothing but loopback. Orthanc is skipped
when ``/usr/sbin/Orthanc`` or its DICOMweb plugin is missing.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pydicom
from common import free_port, percentile
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

ORTHANC = Path("/usr/sbin/Orthanc")
PACS_AI = str(Path(sys.executable).with_name("pacs-ai"))
ORTHANC_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
BATCH = 50
INSTANCES_PER_STUDY = 10
SERIES_SIZE = 200
QUERIES = 60
STOW_CLIENTS = 4
CONCURRENT_BATCHES = 10  # per client: 2,000 instances in all


@dataclass
class Result:
    """The measures of one server."""

    stow_rate: float
    stow4_rate: float
    qido_p50_ms: float
    qido_p95_ms: float
    wado_mb_s: float


class Synthetic:
    """Copies of a small CT with new UIDs: 10 instances per study, one patient per study."""

    def __init__(self, seed: str) -> None:
        self.template = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False))
        self.seed = seed
        self.count = 0
        self.study = ""
        self.series = ""

    def next(self, *, series: str | None = None, study: str | None = None) -> bytes:
        """One more instance (a new study every INSTANCES_PER_STUDY unless given)."""
        if study is None and self.count % INSTANCES_PER_STUDY == 0:
            self.study, self.series = generate_uid(), generate_uid()
        ds = self.template
        sop = generate_uid()
        ds.SOPInstanceUID = sop
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.StudyInstanceUID = study or self.study
        ds.SeriesInstanceUID = series or self.series
        patient = self.count // INSTANCES_PER_STUDY if study is None else 999_999
        ds.PatientID = f"{self.seed}{patient:06d}"
        ds.PatientName = f"Bench^Patient{patient:06d}"
        ds.StudyDate = f"2020{1 + patient % 12:02d}{1 + patient % 28:02d}"
        ds.InstanceNumber = self.count % INSTANCES_PER_STUDY + 1
        self.count += 1
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        return out.getvalue()


def multipart(parts: list[bytes]) -> tuple[bytes, str]:
    """A STOW-RS body and its Content-Type."""
    boundary = "benchmark-boundary-5b1c"
    chunks = []
    for part in parts:
        chunks.append(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode())
        chunks.append(part)
        chunks.append(b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f'multipart/related; type="application/dicom"; boundary={boundary}'


def measure(client: httpx.Client, instances: int, seed: str) -> Result:
    """Load ``instances`` through STOW-RS, then time searches and a series retrieve."""
    synthetic = Synthetic(seed)
    stored = 0
    busy = 0.0
    while stored < instances:
        body, content_type = multipart([synthetic.next() for _ in range(BATCH)])
        start = time.perf_counter()
        answer = client.post("studies", content=body, headers={"Content-Type": content_type})
        busy += time.perf_counter() - start
        answer.raise_for_status()
        stored += BATCH
    stow_rate = stored / busy
    patients = stored // INSTANCES_PER_STUDY
    queries: list[Callable[[int], dict[str, str]]] = [
        lambda n: {"PatientID": f"{seed}{n % patients:06d}"},
        lambda n: {"PatientName": f"Bench^Patient{(n % patients) // 10:05d}*"},
        lambda n: {"StudyDate": f"2020{1 + n % 12:02d}01-2020{1 + n % 12:02d}28", "limit": "50"},
    ]
    latencies = []
    for n in range(QUERIES):
        params = queries[n % len(queries)](n * 7919)
        start = time.perf_counter()
        answer = client.get("studies", params=params, headers={"Accept": "application/dicom+json"})
        latencies.append((time.perf_counter() - start) * 1000)
        answer.raise_for_status()
        if "PatientID" in params:
            assert answer.json(), params
    stow4_rate = concurrent_stow(client, synthetic)
    study, series = generate_uid(), generate_uid()
    series_parts = [synthetic.next(series=series, study=study) for _ in range(SERIES_SIZE)]
    for offset in range(0, SERIES_SIZE, BATCH):
        body, content_type = multipart(series_parts[offset : offset + BATCH])
        client.post(
            "studies", content=body, headers={"Content-Type": content_type}
        ).raise_for_status()
    rates = []
    for _ in range(5):
        start = time.perf_counter()
        size = 0
        with client.stream(
            "GET",
            f"studies/{study}/series/{series}",
            headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
        ) as answer:
            answer.raise_for_status()
            for chunk in answer.iter_bytes():
                size += len(chunk)
        rates.append(size / 1e6 / (time.perf_counter() - start))
        assert size > sum(len(p) for p in series_parts)
    return Result(
        stow_rate=stow_rate,
        stow4_rate=stow4_rate,
        qido_p50_ms=percentile(latencies, 0.5),
        qido_p95_ms=percentile(latencies, 0.95),
        wado_mb_s=statistics.median(rates),
    )


def concurrent_stow(client: httpx.Client, synthetic: Synthetic) -> float:
    """Instances/s with STOW_CLIENTS requests in flight at once (bodies built beforehand)."""
    bodies = [
        multipart([synthetic.next() for _ in range(BATCH)])
        for _ in range(STOW_CLIENTS * CONCURRENT_BATCHES)
    ]

    def send(mine: list[tuple[bytes, str]]) -> None:
        for body, content_type in mine:
            client.post(
                "studies", content=body, headers={"Content-Type": content_type}
            ).raise_for_status()

    start = time.perf_counter()
    with ThreadPoolExecutor(STOW_CLIENTS) as pool:
        list(pool.map(send, [bodies[i::STOW_CLIENTS] for i in range(STOW_CLIENTS)]))
    return len(bodies) * BATCH / (time.perf_counter() - start)


def run_pacs_ai(instances: int, work: Path, ingest_processes: int = 0) -> Result:
    """``pacs-ai serve`` in its own process (as Orthanc runs in its own), SQLite, an admin token.

    In the benchmark's process the server would share one interpreter lock with the client
    that builds and sends the instances, and measure the client as much as the server.
    ``ingest_processes``: ``PACS_AI_INGEST_PROCESSES`` (0: ingest in the server process).
    """
    http_port = free_port()
    env = {
        **os.environ,
        "PACS_AI_INGEST_PROCESSES": str(ingest_processes),
        "PACS_AI_DATA_DIR": str(work / "pacs-ai"),
        "PACS_AI_HTTP_PORT": str(http_port),
        "PACS_AI_DIMSE_PORT": str(free_port()),
        "PACS_AI_PIPELINES_ENABLED": "false",
        "PACS_AI_LOG_LEVEL": "WARNING",
    }
    added = subprocess.run(
        [PACS_AI, "users", "add", "bench", "--role", "admin"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    token = added.stdout.strip().splitlines()[-1]
    process = subprocess.Popen(
        [PACS_AI, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        base = f"http://127.0.0.1:{http_port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        with httpx.Client(
            base_url=f"{base}/dicom-web/",
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
        ) as client:
            return measure(client, instances, "PA")
    finally:
        process.terminate()
        process.wait(timeout=60)


@dataclass
class Orthanc:
    """An Orthanc process with the DICOMweb plugin on a loopback port."""

    process: subprocess.Popen[bytes]
    port: int


def _orthanc(work: Path) -> Iterator[Orthanc]:
    folder = work / "orthanc"
    folder.mkdir()
    port = 8042
    config = {
        "Name": "bench",
        "StorageDirectory": str(folder / "db"),
        "IndexDirectory": str(folder / "db"),
        "HttpPort": port,
        "DicomPort": 4242,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "Plugins": [str(ORTHANC_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "StorageCompression": False,
        "HttpCompressionEnabled": False,
    }
    (folder / "orthanc.json").write_text(json.dumps(config))
    process = subprocess.Popen(
        [str(ORTHANC), str(folder / "orthanc.json")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/system", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield Orthanc(process, port)
    finally:
        process.terminate()
        process.wait(timeout=30)


def run_orthanc(instances: int, work: Path) -> Result:
    """Orthanc with its DICOMweb plugin, default settings, no authentication."""
    for orthanc in _orthanc(work):
        with httpx.Client(
            base_url=f"http://127.0.0.1:{orthanc.port}/dicom-web/", timeout=120
        ) as client:
            return measure(client, instances, "OR")
    raise RuntimeError("Orthanc did not start")


def table(rows: dict[str, list[Result]]) -> str:
    """The results as a text table, medians of the runs."""

    def median(name: str, field: str) -> float:
        return statistics.median(getattr(r, field) for r in rows[name])

    fields = [
        ("STOW-RS ingest (instances/s, batches of 50)", "stow_rate", True),
        ("STOW-RS ingest, 4 requests at once (instances/s)", "stow4_rate", True),
        ("QIDO-RS study search p50 (ms)", "qido_p50_ms", False),
        ("QIDO-RS study search p95 (ms)", "qido_p95_ms", False),
        ("WADO-RS series retrieve (MB/s)", "wado_mb_s", True),
    ]
    names = list(rows)
    ours = [n for n in names if n != "orthanc"]
    header = f"{'measure':<50}" + "".join(f"{n:>16}" for n in names)
    if "orthanc" in rows:
        header += "".join(f"{n + '/orthanc':>24}" for n in ours)
    lines = [header, "-" * len(header)]
    for label, field, _higher_better in fields:
        line = f"{label:<50}" + "".join(f"{median(n, field):>16.1f}" for n in names)
        if "orthanc" in rows:
            line += "".join(f"{median(n, field) / median('orthanc', field):>24.2f}" for n in ours)
        lines.append(line)
    return "\n".join(lines)


def main() -> None:
    """Parse arguments, enter a private network namespace, run, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=1, help="runs per server (medians shown)")
    parser.add_argument("--no-orthanc", action="store_true")
    parser.add_argument(
        "--ingest-processes",
        type=int,
        default=(os.cpu_count() or 1) + 1,
        help="PACS_AI_INGEST_PROCESSES of the second pacs-ai set-up "
        "(default: cores + 1, as ingest also waits on fsync)",
    )
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.inside and os.geteuid() == 0 and shutil.which("unshare"):
        command = [sys.executable, *sys.argv, "--inside"]
        script = "ip link set lo up && exec " + " ".join(f"'{c}'" for c in command)
        sys.exit(subprocess.call(["unshare", "--net", "sh", "-c", script]))
    with_orthanc = not args.no_orthanc and ORTHANC.is_file() and ORTHANC_PLUGIN.is_file()
    pooled = f"pacs-ai x{args.ingest_processes}"
    runners: dict[str, Callable[[int, Path], Result]] = {
        "pacs-ai": run_pacs_ai,
        pooled: lambda n, work: run_pacs_ai(n, work, args.ingest_processes),
    }
    if with_orthanc:
        runners["orthanc"] = run_orthanc
    rows: dict[str, list[Result]] = {name: [] for name in runners}
    for run in range(args.runs):
        for name, runner in runners.items():
            with tempfile.TemporaryDirectory(prefix="bench-dicomweb-") as work:
                started = time.perf_counter()
                rows[name].append(runner(args.instances, Path(work)))
                elapsed = time.perf_counter() - started
                print(f"run {run + 1}: {name} done in {elapsed:.0f} s", file=sys.stderr)
    print(
        f"{args.instances} instances, {args.runs} run(s) per server, loopback only; "
        f"{pooled}: PACS_AI_INGEST_PROCESSES={args.ingest_processes}"
    )
    print(table(rows))


if __name__ == "__main__":
    main()
