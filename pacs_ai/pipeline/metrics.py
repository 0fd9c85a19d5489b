"""Prometheus view of the pipeline, read from the job table at scrape time.

Jobs live in the database, possibly run by several servers, so the truth is there: queue depth
by state, jobs and failures per model version, and the time from the last instance to the
stored results of recent jobs.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from pacs_ai.archive.db import Database
from pacs_ai.pipeline.schema import Job

RECENT_JOBS = 200


class PipelineCollector(Collector):
    """Queue depth, outcomes per model version, time-to-result quantiles."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily("pacs_ai_jobs", "Pipeline jobs by state", labels=["state"])
        per_model = GaugeMetricFamily(
            "pacs_ai_model_jobs",
            "Pipeline jobs by model version and state",
            labels=["model", "version", "state"],
        )
        latency = GaugeMetricFamily(
            "pacs_ai_job_time_to_result_seconds",
            f"Last instance stored to results stored, over the last {RECENT_JOBS} done jobs",
            labels=["model", "version", "quantile"],
        )
        try:
            with self.database.sessions() as session:
                for state, count in session.execute(
                    select(Job.state, func.count()).group_by(Job.state)
                ):
                    depth.add_metric([state], float(count))
                rows = session.execute(
                    select(Job.model_name, Job.model_version, Job.state, func.count()).group_by(
                        Job.model_name, Job.model_version, Job.state
                    )
                )
                for name, version, state, count in rows:
                    per_model.add_metric([name, version, state], float(count))
                recent = session.execute(
                    select(Job.model_name, Job.model_version, Job.last_instance_at, Job.stored_at)
                    .where(Job.stored_at.is_not(None))
                    .order_by(Job.id.desc())
                    .limit(RECENT_JOBS)
                ).all()
        except SQLAlchemyError:
            return
        by_model: dict[tuple[str, str], list[float]] = {}
        for name, version, last_instance_at, stored_at in recent:
            if stored_at is None:
                continue
            seconds = (stored_at - last_instance_at).total_seconds()
            by_model.setdefault((name, version), []).append(seconds)
        for (name, version), values in by_model.items():
            values.sort()
            for quantile in (0.5, 0.95):
                index = min(len(values) - 1, round(quantile * (len(values) - 1)))
                latency.add_metric([name, version, str(quantile)], values[index])
        yield depth
        yield per_model
        yield latency
