"""Worklist benchmark: ``GET /api/worklist`` latency with 5,000 unread studies.

One command: ``.venv/bin/python benchmarks/worklist.py`` starts an in-process server (SQLite
index by default, ``--database-url`` for PostgreSQL), fills its index with ``--studies``
unread studies (one patient and one or two series each, arrivals spread over two days, a
tenth with a STAT or HIGH order, a fifth with an AI finding of which one in six is critical
and present), and times requests over HTTP with a radiologist's bearer token:

- the first page (50 items) in reading order, the critical filter, a modality filter and a
  deep page (offset 2,500);
- the baseline: the same first page ranked again on every request (``worklist_refresh_s``
  near zero), which is what the ranking cache saves;
- the cold ranking itself (three queries and :func:`pacs_ai.triage.score.rank`).

It prints p50 and p95 in milliseconds per case.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import httpx
from common import print_latency_table
from pydicom.uid import generate_uid
from sqlalchemy import func, insert, select

from pacs_ai.archive.db import Database
from pacs_ai.archive.schema import Patient, Series, Study, utcnow
from pacs_ai.config import Settings
from pacs_ai.pipeline.schema import FindingRow, Job
from pacs_ai.security.accounts import add_user
from pacs_ai.security.roles import Role
from pacs_ai.server import Server, create_server
from pacs_ai.triage.schema import WorklistEntry
from pacs_ai.triage.worklist import RankedWorklist

MODALITIES = (("CT", "HEAD"), ("CT", "CHEST"), ("DX", "CHEST"), ("MR", "KNEE"), ("US", "ABDOMEN"))


def seed(database: Database, studies: int, rng: random.Random) -> None:
    """Insert ``studies`` unread studies with series and findings, in bulk."""
    now = utcnow()
    with database.write_sessions.begin() as session:
        session.execute(
            insert(Patient),
            [
                {"patient_id": f"BENCH{i:06d}", "patient_name": f"Bench^Patient{i:06d}"}
                for i in range(studies)
            ],
        )
        patients = list(session.scalars(select(Patient.id).order_by(Patient.id)))
        uids = [generate_uid() for _ in range(studies)]
        session.execute(
            insert(Study),
            [
                {
                    "study_instance_uid": uid,
                    "patient_pk": patient,
                    "accession_number": f"ACC{index:08d}",
                    "study_description": "Benchmark study",
                    "requested_procedure_priority": rng.choice(["STAT", "HIGH"])
                    if rng.random() < 0.1
                    else "ROUTINE",
                    "created_at": now - timedelta(minutes=rng.uniform(0, 48 * 60)),
                }
                for index, (uid, patient) in enumerate(zip(uids, patients, strict=True))
            ],
        )
        keys = dict(session.execute(select(Study.study_instance_uid, Study.id)).all())
        series = []
        for uid in uids:
            modality, body_part = rng.choice(MODALITIES)
            for _ in range(rng.choice((1, 2))):
                series.append(
                    {
                        "series_instance_uid": generate_uid(),
                        "study_pk": keys[uid],
                        "modality": modality,
                        "body_part_examined": body_part,
                    }
                )
        session.execute(insert(Series), series)
        positive = [uid for uid in uids if rng.random() < 0.2]
        session.execute(
            insert(Job),
            [
                {
                    "study_instance_uid": uid,
                    "series_instance_uid": generate_uid(),
                    "pipeline": "ct-head-hemorrhage",
                    "pipeline_version": 1,
                    "content_key": uid,
                    "model_name": "ct-head-hemorrhage",
                    "model_version": "1.0.0",
                    "state": "done",
                    "last_instance_at": now,
                    "stable_at": now,
                }
                for uid in positive
            ],
        )
        jobs = dict(session.execute(select(Job.study_instance_uid, Job.id)).all())
        findings = []
        for uid in positive:
            critical = rng.random() < 1 / 6
            probability = rng.uniform(0.5, 1.0) if critical else rng.uniform(0.0, 0.5)
            findings.append(
                {
                    "job_id": jobs[uid],
                    "study_instance_uid": uid,
                    "model_name": "ct-head-hemorrhage",
                    "model_version": "1.0.0",
                    "code_scheme": "SCT",
                    "code_value": "1386000",
                    "code_meaning": "Intracranial hemorrhage",
                    "present": critical,
                    "probability": probability,
                    "severity": "critical" if critical else "",
                }
            )
        session.execute(insert(FindingRow), findings)


def settle(database: Database, timeout_s: float = 120.0) -> None:
    """Wait until the background task has made every study's entry (a one-time backfill)."""
    deadline = time.monotonic() + timeout_s
    unchecked = select(func.count()).where(WorklistEntry.setting_checked.is_(False))
    while time.monotonic() < deadline:
        with database.sessions() as session:
            entries = session.scalar(select(func.count()).select_from(WorklistEntry))
            if entries and not session.scalar(unchecked):
                return
        time.sleep(0.2)
    raise RuntimeError("the worklist's background task did not finish its backfill")


def timed(client: httpx.Client, params: dict[str, str | int], requests: int) -> list[float]:
    """Milliseconds of ``requests`` sequential list requests."""
    elapsed = []
    for _ in range(requests):
        start = time.perf_counter()
        answer = client.get("/api/worklist", params=params)
        elapsed.append((time.perf_counter() - start) * 1000)
        answer.raise_for_status()
    return elapsed


def start(data_dir: Path, database_url: str | None, **overrides: float) -> tuple[Server, str]:
    """A started server and a radiologist's token."""
    settings = Settings(
        data_dir=data_dir,
        database_url=database_url,
        dimse_port=0,
        http_port=0,
        pipelines_enabled=False,
        **overrides,
    )
    server = create_server(settings)
    server.start()
    token = add_user(
        database=server.context.database,
        settings=settings,
        username=f"bench-{len(overrides)}",
        role=Role.RADIOLOGIST,
    )
    return server, token


def main() -> None:
    """Seed, measure, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp folder")
    args = parser.parse_args()
    rows: list[tuple[str, list[float]]] = []
    with tempfile.TemporaryDirectory() as folder:
        server, token = start(Path(folder) / "cached", args.database_url)
        database = server.context.database
        try:
            seed(database, args.studies, random.Random(6))
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(
                base_url=f"http://127.0.0.1:{server.http_port}", headers=headers
            ) as c:
                c.get("/api/worklist").raise_for_status()
                settle(database)
                total = c.get("/api/worklist").json()["total"]
                cases: list[tuple[str, dict[str, str | int]]] = [
                    ("first page (50)", {}),
                    ("critical only", {"critical": "true"}),
                    ("modality CT", {"modality": "CT"}),
                    ("page at offset 2,500", {"offset": 2500}),
                ]
                for name, params in cases:
                    rows.append((name, timed(c, params, args.requests)))
            ranked = RankedWorklist(database, server.context.settings)
            cold = []
            for _ in range(max(5, args.requests // 20)):
                start_at = time.perf_counter()
                ranked.refresh()
                cold.append((time.perf_counter() - start_at) * 1000)
        finally:
            server.stop()
        baseline, token = start(
            Path(folder) / "cached", args.database_url, worklist_refresh_s=0.001
        )
        try:
            headers = {"Authorization": f"Bearer {token}"}
            url = f"http://127.0.0.1:{baseline.http_port}"
            with httpx.Client(base_url=url, headers=headers) as c:
                c.get("/api/worklist").raise_for_status()
                rows.append(
                    ("baseline: ranked per request", timed(c, {}, max(20, args.requests // 4)))
                )
        finally:
            baseline.stop()
    rows.append(("cold ranking (3 queries + rank)", cold))
    index = "PostgreSQL" if args.database_url else "SQLite"
    print(f"{total} unread studies, {index} index, {args.requests} requests per case")
    print_latency_table(rows)


if __name__ == "__main__":
    main()
