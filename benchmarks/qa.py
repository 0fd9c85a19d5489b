"""QA benchmark: review queue, statistics and model list latency over a large finding table.

One command: ``.venv/bin/python benchmarks/qa.py`` starts an in-process server (SQLite index
by default, ``--database-url`` for PostgreSQL), fills its index with ``--findings`` AI findings
over the last 90 days (an active version, the version before it, and a shadow version on a
third of the studies; one in six positive), reviews of 2% of them and readers' verdicts on 2%,
then times requests over HTTP with a QA user's bearer token:

- the review queue's first page (50), and filtered to shadow differences;
- a finding's page (history, verdicts, the active run's call);
- the statistics of the default period (90 days: every finding loaded and counted), its CSV,
  and one pipeline over the last week;
- the model list with per-version operations (latency percentiles over recent jobs).

It prints p50 and p95 in milliseconds per case. No figure is a pass/fail: compare cases and
databases within one run.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa
from common import print_latency_table
from pydicom.uid import generate_uid
from sqlalchemy import insert, select

from pacs_ai.archive.db import Database
from pacs_ai.archive.schema import utcnow
from pacs_ai.config import Settings
from pacs_ai.pipeline.schema import FindingRow, Job
from pacs_ai.qa.schema import FindingReview
from pacs_ai.registry.schema import ModelVersion
from pacs_ai.security.accounts import add_user
from pacs_ai.security.roles import Role
from pacs_ai.server import create_server
from pacs_ai.triage.schema import FindingAgreement

MODEL = "ct-head-hemorrhage"
PIPELINE = "ct-head-hemorrhage"
BATCH = 5000


def _key(uid: str, version: str) -> str:
    return hashlib.sha256(f"{uid}|{version}".encode()).hexdigest()[:40]


def _job(uid: str, version: str, shadow: bool, at: object, rng: random.Random) -> dict[str, object]:
    started = at
    return {
        "study_instance_uid": uid,
        "series_instance_uid": uid,
        "pipeline": PIPELINE,
        "pipeline_version": 1,
        "content_key": _key(uid, version),
        "model_name": MODEL,
        "model_version": version,
        "shadow": shadow,
        "state": "done",
        "placement": "cpu@bench",
        "last_instance_at": at,
        "stable_at": at,
        "queued_at": at,
        "started_at": started,
        "inferred_at": at + timedelta(milliseconds=rng.uniform(300, 900)),  # type: ignore[operator]
        "stored_at": at + timedelta(seconds=rng.uniform(1.5, 2.5)),  # type: ignore[operator]
    }


def seed(database: Database, findings: int, rng: random.Random) -> None:
    """Jobs and findings of three versions, reviews and verdicts, in bulk."""
    now = utcnow()
    with database.write_sessions.begin() as session:
        session.execute(
            insert(ModelVersion),
            [
                {
                    "name": MODEL,
                    "version": version,
                    "path": "/nonexistent",
                    "weights_file": "models/model.pt",
                    "weights_sha256": "00" * 32,
                    "bundle_metadata": {},
                    "state": state,
                }
                for version, state in (
                    ("1.0.0", "inactive"),
                    ("1.1.0", "active"),
                    ("2.0.0", "shadow"),
                )
            ],
        )
    made = 0
    while made < findings:
        rows: list[tuple[str, str, bool, object]] = []
        for _ in range(min(BATCH, findings - made)):
            uid = generate_uid()
            at = now - timedelta(days=rng.uniform(0, 89))
            version = "1.1.0" if at > now - timedelta(days=45) else "1.0.0"
            rows.append((uid, version, False, at))
            if rng.random() < 1 / 3:
                rows.append((uid, "2.0.0", True, at))
        with database.write_sessions.begin() as session:
            session.execute(insert(Job), [_job(u, v, s, a, rng) for u, v, s, a in rows])
            jobs = {
                key: job_id
                for key, job_id in session.execute(
                    select(Job.content_key, Job.id).where(
                        Job.content_key.in_([_key(u, v) for u, v, _, _ in rows])
                    )
                )
            }
            values = []
            for uid, version, shadow, at in rows:
                present = rng.random() < 1 / 6
                values.append(
                    {
                        "job_id": jobs[_key(uid, version)],
                        "study_instance_uid": uid,
                        "model_name": MODEL,
                        "model_version": version,
                        "shadow": shadow,
                        "code_scheme": "SCT",
                        "code_value": "1386000",
                        "code_meaning": "Intracranial hemorrhage",
                        "present": present,
                        "probability": rng.uniform(0.5, 1) if present else rng.uniform(0, 0.5),
                        "severity": "critical" if present else "",
                        "created_at": at,
                    }
                )
            session.execute(insert(FindingRow), values)
        made += len(rows)
    with database.write_sessions.begin() as session:
        ids = [
            tuple(row)
            for row in session.execute(select(FindingRow.id, FindingRow.study_instance_uid))
        ]
        picked = rng.sample(ids, k=max(1, len(ids) // 50))
        session.execute(
            insert(FindingReview),
            [
                {
                    "finding_id": finding,
                    "study_instance_uid": study,
                    "reviewer": "bench",
                    "decision": rng.choice(["accept", "accept", "accept", "reject"]),
                    "reason": "other",
                    "created_at": now,
                }
                for finding, study in picked
            ],
        )
        verdicts = rng.sample(ids, k=max(1, len(ids) // 50))
        session.execute(
            insert(FindingAgreement),
            [
                {
                    "finding_id": finding,
                    "study_instance_uid": study,
                    "reader": "dr.bench",
                    "agrees": rng.random() < 0.9,
                }
                for finding, study in verdicts
            ],
        )


@contextmanager
def own_schema(url: str | None) -> Iterator[str | None]:
    """``url`` itself, or for PostgreSQL the URL of a new schema in it, dropped afterwards."""
    if url is None or not url.startswith("postgresql"):
        yield url
        return
    schema = f"bench_qa_{secrets.token_hex(4)}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def timed(client: httpx.Client, path: str, params: dict[str, str], requests: int) -> list[float]:
    """Milliseconds of ``requests`` sequential GETs."""
    elapsed = []
    for _ in range(requests):
        start = time.perf_counter()
        answer = client.get(path, params=params)
        elapsed.append((time.perf_counter() - start) * 1000)
        answer.raise_for_status()
    return elapsed


def main() -> None:
    """Seed, measure, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--findings", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument(
        "--database-url",
        default=None,
        help="default: SQLite in a temp folder; a PostgreSQL database gets a schema of its own",
    )
    args = parser.parse_args()
    rows: list[tuple[str, list[float]]] = []
    with tempfile.TemporaryDirectory() as folder, own_schema(args.database_url) as url:
        settings = Settings(
            data_dir=Path(folder),
            database_url=url,
            dimse_port=0,
            http_port=0,
            pipelines_enabled=False,
            log_level="WARNING",
        )
        server = create_server(settings)
        server.start()
        try:
            database = server.context.database
            seed(database, args.findings, random.Random(7))
            with database.sessions() as session:
                total = len(session.scalars(select(FindingRow.id)).all())
                some = session.scalars(
                    select(FindingRow.id).where(FindingRow.shadow.is_(True)).limit(1)
                ).one()
            token = add_user(database=database, settings=settings, username="qa", role=Role.QA)
            week = (utcnow() - timedelta(days=7)).isoformat()
            cases = [
                ("queue, first page (50)", "/api/qa/queue", {}),
                ("queue, shadow differences", "/api/qa/queue", {"reason": "shadow_differs"}),
                ("one finding's page", f"/api/qa/findings/{some}", {}),
                ("statistics, 90 days", "/api/qa/stats", {}),
                ("statistics CSV, 90 days", "/api/qa/stats.csv", {}),
                (
                    "statistics, one pipeline, 7 days",
                    "/api/qa/stats",
                    {"pipeline": PIPELINE, "since": week},
                ),
                ("model list with operations", "/api/models", {}),
            ]
            with httpx.Client(
                base_url=f"http://127.0.0.1:{server.http_port}",
                headers={"Authorization": f"Bearer {token}"},
                timeout=300,
            ) as client:
                for name, path, params in cases:
                    client.get(path, params=params).raise_for_status()
                    rows.append((name, timed(client, path, params, args.requests)))
        finally:
            server.stop()
    index = "PostgreSQL" if args.database_url else "SQLite"
    print(f"{total} findings, {index} index, {args.requests} requests per case")
    print_latency_table(rows)


if __name__ == "__main__":
    main()
