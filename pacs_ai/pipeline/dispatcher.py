"""The dispatcher: one thread per server that routes studies, runs jobs on Ray, and records.

Each loop: route stable (and early-complete) studies into jobs; collect finished inference
and write the results; renew the leases of running jobs; claim more jobs while actors have
room. All state is in the database, so any number of servers can run a dispatcher against
one PostgreSQL, and a restarted server picks up where a dead one left off.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import ray
from pydicom import dcmread
from pydicom.dataset import Dataset
from sqlalchemy import select
from sqlalchemy.orm import Session

from pacs_ai.archive.db import Database
from pacs_ai.archive.schema import Instance, Series, utcnow
from pacs_ai.archive.storage import Storage
from pacs_ai.config import Settings
from pacs_ai.inference.actor import Prediction, PredictionError
from pacs_ai.inference.runtime import InferenceRuntime, ModelKey
from pacs_ai.pipeline import queue
from pacs_ai.pipeline.definition import Pipeline
from pacs_ai.pipeline.recorder import Recorder, ResultError
from pacs_ai.pipeline.routing import ModelTarget, route_study, studies_to_route
from pacs_ai.pipeline.schema import Job
from pacs_ai.registry import service as registry
from pacs_ai.registry.bundle import read_bundle
from pacs_ai.registry.schema import ModelState

log = logging.getLogger(__name__)

ROUTE_BATCH = 50


class JobInputError(ValueError):
    """A job whose input cannot be read (files gone, undecodable): it fails for good."""


@dataclass
class _InFlight:
    """A batch of jobs sent to one model actor, waiting for its answer."""

    ref: Any
    model: ModelKey
    jobs: list[int]
    datasets: list[list[Dataset]]
    sent_at: float = field(default_factory=time.monotonic)


class Dispatcher:
    """Routes, claims, runs and records; start() and stop() from the composition root."""

    def __init__(
        self,
        *,
        settings: Settings,
        database: Database,
        storage: Storage,
        pipelines: Sequence[Pipeline],
        runtime: InferenceRuntime,
        recorder: Recorder,
    ) -> None:
        self.settings = settings
        self.database = database
        self.storage = storage
        self.pipelines = {p.name: p for p in pipelines}
        self.runtime = runtime
        self.recorder = recorder
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.lease = timedelta(seconds=settings.job_lease_s)
        self._in_flight: list[_InFlight] = []
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # -- life cycle --------------------------------------------------------------------
    def start(self) -> None:
        """Run the loop in a thread of its own."""
        self._thread = threading.Thread(target=self._run, name="pacs-ai-dispatcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish the current loop and stop; running jobs keep their lease until it expires."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None

    def wake(self) -> None:
        """Look for work now rather than at the next poll."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # the loop must outlive any single failure
                log.exception("dispatcher loop failed")
            self._wake.wait(self.settings.dispatcher_poll_s)
            self._wake.clear()

    def run_once(self, now: datetime | None = None) -> None:
        """One pass: route, collect, renew, claim."""
        now = now or utcnow()
        self.route(now)
        self.collect(now)
        self.renew(now)
        self.claim(now)

    # -- routing -----------------------------------------------------------------------
    def targets(self, session: Session) -> dict[str, list[ModelTarget]]:
        """The registered versions each model runs: active, and shadow."""
        found: dict[str, list[ModelTarget]] = {}
        for version in registry.list_running(session=session):
            found.setdefault(version.name, []).append(
                ModelTarget(version.name, version.version, version.state == ModelState.SHADOW)
            )
        return found

    def route(self, now: datetime) -> int:
        """Turn stable and early-complete study content into jobs; returns the new jobs."""
        stable_after = timedelta(seconds=self.settings.stable_after_seconds)
        created = 0
        pipelines = list(self.pipelines.values())
        early = any(p.complete_at_instances is not None for p in pipelines)
        for is_early in [False, True] if early else [False]:
            with self.database.write_sessions.begin() as session:
                targets = self.targets(session)
                studies = studies_to_route(
                    session=session,
                    now=now,
                    stable_after=stable_after,
                    early=is_early,
                    limit=ROUTE_BATCH,
                )
                for study in studies:
                    created += route_study(
                        session=session,
                        storage=self.storage,
                        study=study,
                        pipelines=pipelines,
                        targets=targets,
                        stable=not is_early,
                        now=now,
                    )
        if created:
            log.info("routing queued %d job(s)", created)
        return created

    # -- running -----------------------------------------------------------------------
    def model_key(self, session: Session, name: str, version: str) -> ModelKey:
        """What the runtime needs to run a registered version (raises when it is unusable)."""
        registered = registry.get_by_name_version_or_raise(
            session=session, name=name, version=version
        )
        bundle = read_bundle(registered.path)
        resources = bundle.extras.resources
        return ModelKey(
            name=name,
            version=version,
            bundle_path=str(bundle.path),
            weights_sha256=registered.weights_sha256,
            num_cpus=resources.num_cpus,
            num_gpus=resources.num_gpus,
            memory_mb=resources.memory_mb,
        )

    def read_series(self, session: Session, series_uid: str) -> list[Dataset]:
        """Every stored instance of a series, read; :class:`JobInputError` when one cannot be."""
        paths = session.execute(
            select(Instance.path)
            .join(Series, Instance.series_pk == Series.id)
            .where(Series.series_instance_uid == series_uid)
            .order_by(Instance.id)
        ).scalars()
        try:
            return [dcmread(self.storage.open(path)) for path in paths]
        except Exception as exc:
            raise JobInputError(f"cannot read series {series_uid}: {exc}") from exc

    def claim(self, now: datetime) -> int:
        """Claim jobs while fewer than two batches are in flight; send them to their models."""
        room = 2 * self.settings.inference_batch_size - sum(len(f.jobs) for f in self._in_flight)
        if room <= 0:
            return 0
        with self.database.write_sessions.begin() as session:
            jobs = queue.claim(
                session=session, owner=self.owner, now=now, lease=self.lease, limit=room
            )
            claimed = [
                (job.id, job.model_name, job.model_version, job.series_instance_uid) for job in jobs
            ]
        batches: dict[tuple[str, str], list[tuple[int, list[Dataset]]]] = {}
        for job_id, name, version, series_uid in claimed:
            try:
                with self.database.sessions() as session:
                    datasets = self.read_series(session, series_uid)
                if not datasets:
                    raise JobInputError(f"series {series_uid} has no instances")
            except JobInputError as exc:
                self._fail(job_id, str(exc), now, retryable=False)
                continue
            batches.setdefault((name, version), []).append((job_id, datasets))
        for (name, version), items in batches.items():
            try:
                with self.database.sessions() as session:
                    model = self.model_key(session, name, version)
            except Exception as exc:  # unregistered, bundle gone, weights changed
                for job_id, _ in items:
                    self._fail(
                        job_id, f"model {name}@{version} unusable: {exc}", now, retryable=False
                    )
                continue
            for start in range(0, len(items), self.settings.inference_batch_size):
                chunk = items[start : start + self.settings.inference_batch_size]
                ref = self.runtime.submit(model, [datasets for _, datasets in chunk])
                self._in_flight.append(
                    _InFlight(ref, model, [j for j, _ in chunk], [d for _, d in chunk])
                )
        return len(claimed)

    def renew(self, now: datetime) -> None:
        """Heartbeat: keep the leases of the jobs in flight."""
        job_ids = [job_id for flight in self._in_flight for job_id in flight.jobs]
        if job_ids:
            with self.database.write_sessions.begin() as session:
                queue.renew(
                    session=session, owner=self.owner, job_ids=job_ids, now=now, lease=self.lease
                )

    def collect(self, now: datetime) -> int:
        """Write the results of finished batches; fail the ones that timed out."""
        if not self._in_flight:
            return 0
        ready, _ = ray.wait(
            [f.ref for f in self._in_flight], num_returns=len(self._in_flight), timeout=0
        )
        ready_ids = {id(ref) for ref in ready}
        done = 0
        still: list[_InFlight] = []
        for flight in self._in_flight:
            if id(flight.ref) in ready_ids:
                self._finish(flight, now)
                done += len(flight.jobs)
            elif time.monotonic() - flight.sent_at > self.settings.inference_timeout_s:
                ray.cancel(flight.ref, force=True)
                self.runtime.drop(flight.model)
                for job_id in flight.jobs:
                    self._fail(job_id, "inference timed out", now, retryable=True)
                done += len(flight.jobs)
            else:
                still.append(flight)
        self._in_flight = still
        return done

    def _finish(self, flight: _InFlight, now: datetime) -> None:
        try:
            outcomes: list[Prediction | PredictionError] = ray.get(flight.ref)
        except Exception as exc:  # the actor died or raised
            for job_id in flight.jobs:
                self._fail(job_id, f"inference failed: {exc}", now, retryable=True)
            return
        placement = self.runtime.placement(flight.model)
        for job_id, datasets, outcome in zip(flight.jobs, flight.datasets, outcomes, strict=True):
            if isinstance(outcome, PredictionError):
                self._fail(
                    job_id,
                    f"the model cannot take this series: {outcome.reason}",
                    now,
                    retryable=False,
                )
                continue
            inferred_at = utcnow()
            with self.database.sessions() as session:
                job = session.get(Job, job_id)
            if job is None or job.lease_owner != self.owner:
                continue  # another dispatcher took it over
            try:
                results = self.recorder.store(
                    job=job,
                    pipeline=self.pipelines[job.pipeline],
                    model=flight.model,
                    prediction=outcome,
                    datasets=datasets,
                )
                self.recorder.forward(
                    pipeline=self.pipelines[job.pipeline],
                    sop_instance_uids=results.sop_instance_uids,
                )
                with self.database.write_sessions.begin() as session:
                    held = session.get(Job, job_id)
                    if held is None or held.lease_owner != self.owner:
                        continue
                    held.inferred_at = inferred_at
                    held.placement = f"{placement.device}@{placement.node_id[:12]}"
                    held.result_sop_uids = "\\".join(results.sop_instance_uids)
                    held.stored_at = utcnow()
                    self.recorder.record(session=session, job=held, results=results)
                    queue.complete(session=session, job_id=job_id, owner=self.owner, now=utcnow())
            except ResultError as exc:
                self._fail(job_id, str(exc), now, retryable=False)
            except Exception as exc:
                log.exception("writing the results of job %d failed", job_id)
                self._fail(job_id, f"writing results failed: {exc}", now, retryable=True)

    def _fail(self, job_id: int, reason: str, now: datetime, *, retryable: bool) -> None:
        log.warning("job %d: %s", job_id, reason)
        try:
            with self.database.write_sessions.begin() as session:
                queue.fail(
                    session=session,
                    job_id=job_id,
                    owner=self.owner,
                    error=reason,
                    now=now,
                    max_attempts=self.settings.job_max_attempts,
                    backoff=timedelta(seconds=self.settings.job_backoff_s),
                    retryable=retryable,
                )
        except queue.QueueError:
            log.info("job %d was taken over before it could be marked failed", job_id)
