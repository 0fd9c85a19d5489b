"""``pacs-ai jobs list|retry``: the pipeline queue from the command line."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from pacs_ai.archive.db import Database
from pacs_ai.archive.schema import utcnow
from pacs_ai.config import Settings
from pacs_ai.pipeline import queue
from pacs_ai.pipeline.schema import Job

jobs_app = typer.Typer(help="Pipeline jobs (the durable queue).", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)


def _database() -> Database:
    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.effective_database_url)
    database.upgrade()
    return database


def _seconds(start: object, end: object) -> str:
    if start is None or end is None:
        return ""
    return f"{(end - start).total_seconds():.1f}"  # type: ignore[operator]


@jobs_app.command("list")
def list_jobs(
    state: Annotated[str | None, typer.Option(help="pending, running, done or failed")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first")] = 50,
) -> None:
    """Jobs with their timeline (seconds from the last instance to each step) and errors."""
    database = _database()
    table = Table(
        "id",
        "study",
        "pipeline",
        "model",
        "state",
        "try",
        "stable",
        "started",
        "inferred",
        "stored",
        "placement",
        "error",
    )
    with database.sessions() as session:
        statement = select(Job).order_by(Job.id.desc()).limit(limit)
        if state:
            statement = statement.where(Job.state == state)
        for job in session.execute(statement).scalars():
            table.add_row(
                str(job.id),
                job.study_instance_uid[-20:],
                f"{job.pipeline} v{job.pipeline_version}",
                f"{job.model_name}@{job.model_version}{' (shadow)' if job.shadow else ''}",
                job.state + (" superseded" if job.superseded else ""),
                str(job.attempts),
                _seconds(job.last_instance_at, job.stable_at),
                _seconds(job.last_instance_at, job.started_at),
                _seconds(job.last_instance_at, job.inferred_at),
                _seconds(job.last_instance_at, job.stored_at),
                job.placement,
                job.error[:60],
            )
        depth = queue.depth(session=session)
    database.dispose()
    console.print(table)
    console.print(
        ", ".join(f"{name}: {count}" for name, count in sorted(depth.items())) or "no jobs"
    )


@jobs_app.command("retry")
def retry_job(job_id: int) -> None:
    """Put a failed job back in the queue."""
    database = _database()
    try:
        with database.write_sessions.begin() as session:
            queue.retry(session=session, job_id=job_id, now=utcnow())
    except queue.QueueError as exc:
        err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    finally:
        database.dispose()
    console.print(f"job {job_id} queued again")
