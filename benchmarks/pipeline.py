"""Time from the last instance stored to SR+SEG stored, and studies per minute, on the CPU.

One command: ``.venv/bin/python benchmarks/pipeline.py`` (prints a table). It runs
``pacs-ai serve`` (SQLite, embedded Ray) with the shipped models active, sends 40-slice
512x512 CT heads with DCMTK's storescu, and reads each job's timeline from the index:

- time-to-result with the stability wait: last instance stored -> results stored;
- and without it: study stable -> results stored (what the pipeline itself costs);
- throughput: a burst of studies sent at once, with 1 and with 2 Ray actors per model.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from common import free_port, percentile
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from pacs_ai.archive.db import Database
from pacs_ai.pipeline.schema import Job
from pacs_ai.registry import service as registry
from pacs_ai.registry.bundle import discover, read_bundle
from pacs_ai.registry.schema import ModelState
from pacs_ai.synth import generate_ct_head, write_study

REPO = Path(__file__).resolve().parents[1]
PACS_AI = str(Path(sys.executable).with_name("pacs-ai"))
STORESCU = "/usr/bin/storescu"
console = Console()


@contextmanager
def server(folder: Path, *, actors: int, stable_after: float) -> Iterator[tuple[int, Database]]:
    """``pacs-ai serve`` with the shipped models registered and active."""
    folder.mkdir(parents=True)
    url = f"sqlite:///{folder / 'index.sqlite'}"
    database = Database(url)
    database.upgrade()
    for path in discover([REPO / "models"]):
        with database.write_sessions.begin() as session:
            version, _ = registry.register(session=session, bundle=read_bundle(path), actor="bench")
            registry.set_state(
                session=session, model_version=version, state=ModelState.ACTIVE, actor="bench"
            )
    port = free_port()
    ray_dir = tempfile.mkdtemp(prefix="rb-", dir="/tmp")
    env = {
        **os.environ,
        "PACS_AI_DATA_DIR": str(folder),
        "PACS_AI_DIMSE_PORT": str(port),
        "PACS_AI_HTTP_PORT": str(free_port()),
        "PACS_AI_PIPELINES_DIR": str(REPO / "pipelines"),
        "PACS_AI_STABLE_AFTER_SECONDS": str(stable_after),
        "PACS_AI_DISPATCHER_POLL_S": "0.2",
        "PACS_AI_INFERENCE_ACTORS_PER_MODEL": str(actors),
        "PACS_AI_LOG_LEVEL": "WARNING",
        "RAY_TMPDIR": ray_dir,
    }
    process = subprocess.Popen(
        [PACS_AI, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while subprocess.run(
            ["/usr/bin/echoscu", "127.0.0.1", str(port)], capture_output=True
        ).returncode:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.3)
        yield port, database
    finally:
        process.terminate()
        process.wait(timeout=120)
        database.dispose()
        shutil.rmtree(ray_dir, ignore_errors=True)


def send(port: int, files: list[Path]) -> None:
    subprocess.run(
        [STORESCU, "127.0.0.1", str(port), *map(str, files)],
        check=True,
        capture_output=True,
        env={**os.environ, "TCP_NODELAY": "1"},
    )


def wait_done(database: Database, count: int, timeout_s: float = 1800) -> list[Job]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with database.sessions() as session:
            jobs = list(session.execute(select(Job).order_by(Job.id)).scalars())
        if len(jobs) >= count and all(job.state in ("done", "failed") for job in jobs):
            failed = [job.error for job in jobs if job.state == "failed"]
            if failed:
                raise RuntimeError(f"jobs failed: {failed}")
            return jobs
        time.sleep(0.2)
    raise RuntimeError("jobs did not finish")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--studies", type=int, default=6, help="CT heads sent one at a time")
    parser.add_argument("--burst", type=int, default=6, help="CT heads sent at once, per setting")
    parser.add_argument("--stable-after", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pacs-pipe-") as temp:
        work = Path(temp)
        console.print("generating CT heads ...")
        studies = []
        for index in range(args.studies + args.burst):
            study = generate_ct_head(500 + index, hemorrhage=index % 2 == 0, slices=40, size=512)
            studies.append(
                sorted(p for p in write_study(study, work / f"ct{index}") if p.suffix == ".dcm")
            )
        single, burst = studies[: args.studies], studies[args.studies :]

        with server(work / "latency", actors=1, stable_after=args.stable_after) as (port, database):
            send(port, single[0])  # warm-up: actor start and model load
            wait_done(database, 1)
            for files in single[1:]:
                send(port, files)
                with database.sessions() as session:
                    count = len(session.execute(select(Job.id)).all())
                wait_done(database, count + 1)
            jobs = wait_done(database, len(single))[1:]
        with_wait = [(j.stored_at - j.last_instance_at).total_seconds() for j in jobs]  # type: ignore[operator]
        without_wait = [(j.stored_at - j.stable_at).total_seconds() for j in jobs]  # type: ignore[operator]

        throughput: dict[int, float] = {}
        for actors in (1, 2):
            with server(work / f"burst{actors}", actors=actors, stable_after=args.stable_after) as (
                port,
                database,
            ):
                send(port, single[0])
                wait_done(database, 1)
                for files in burst:
                    send(port, files)
                jobs = wait_done(database, 1 + len(burst))[1:]
            first = min(j.stable_at for j in jobs)
            last = max(j.stored_at for j in jobs if j.stored_at is not None)
            throughput[actors] = len(jobs) / ((last - first).total_seconds() / 60)

    table = Table(
        title=f"pipeline on this machine's CPU ({os.cpu_count()} cores), 40-slice 512x512 CT heads"
    )
    table.add_column("metric")
    table.add_column("p50", justify="right")
    table.add_column("p95", justify="right")
    table.add_row(
        f"last instance -> SR+SEG stored (s), incl. stability wait {args.stable_after:g} s",
        f"{statistics.median(with_wait):.1f}",
        f"{percentile(with_wait, 0.95):.1f}",
    )
    table.add_row(
        "study stable -> SR+SEG stored (s)",
        f"{statistics.median(without_wait):.1f}",
        f"{percentile(without_wait, 0.95):.1f}",
    )
    for actors, rate in throughput.items():
        table.add_row(f"studies per minute, {actors} Ray actor(s) per model", f"{rate:.1f}", "")
    console.print(table)


if __name__ == "__main__":
    main()
