"""Ray, the one distributed engine: an embedded local Ray by default, a cluster by address.

One actor per registered model version (more with ``inference_actors_per_model``), created
on first use with the resources its bundle declares. A model that wants a GPU asks Ray for
one when the cluster has one, so Ray places it on a GPU node; inside, it falls back to the
CPU when that process sees no CUDA device. Everything else asks for CPUs only and runs
anywhere.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import ray
from pydicom.dataset import Dataset

from pacs_ai.config import Settings
from pacs_ai.inference.actor import ModelActor, Placement

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelKey:
    """A registered model version and what its actor needs to load it."""

    name: str
    version: str
    bundle_path: str
    weights_sha256: str
    num_cpus: float
    num_gpus: float
    memory_mb: int


class InferenceRuntime:
    """Joins or starts Ray and keeps the model actors of this server."""

    def __init__(self, settings: Settings) -> None:
        self._started_ray = False
        if not ray.is_initialized():
            options: dict[str, Any] = {
                "include_dashboard": False,
                "logging_level": logging.WARNING,
                "log_to_driver": False,
            }
            if settings.ray_address:
                options["address"] = settings.ray_address
            elif settings.ray_num_cpus is not None:
                options["num_cpus"] = settings.ray_num_cpus
            ray.init(**options)
            self._started_ray = True
        self.actors_per_model = settings.inference_actors_per_model
        self._actors: dict[tuple[str, str], list[Any]] = {}
        self._next: dict[tuple[str, str], int] = {}
        self._placements: dict[tuple[str, str], Placement] = {}

    def _pool(self, model: ModelKey) -> list[Any]:
        key = (model.name, model.version)
        pool = self._actors.get(key)
        if pool is None:
            cluster_gpus = float(ray.cluster_resources().get("GPU", 0))
            wants_gpu = model.num_gpus > 0 and cluster_gpus >= model.num_gpus
            remote = ray.remote(ModelActor).options(
                num_cpus=model.num_cpus,
                num_gpus=model.num_gpus if wants_gpu else 0,
                memory=model.memory_mb * 1024 * 1024,
                max_restarts=1,
            )
            threads = max(1, int(model.num_cpus))
            pool = [
                remote.remote(model.bundle_path, model.weights_sha256, wants_gpu, threads)
                for _ in range(self.actors_per_model)
            ]
            self._actors[key] = pool
            log.info(
                "%d actor(s) for %s@%s (gpu=%s)", len(pool), model.name, model.version, wants_gpu
            )
        return pool

    def _actor(self, model: ModelKey) -> Any:
        """The model's actors in turn, so that batches spread over the pool."""
        pool = self._pool(model)
        key = (model.name, model.version)
        index = self._next.get(key, 0)
        self._next[key] = (index + 1) % len(pool)
        return pool[index]

    def submit(self, model: ModelKey, series: list[list[Dataset]]) -> Any:
        """Send a batch of series to the model's actor; returns the result's ObjectRef.

        Each series goes into the object store once and travels as a top-level argument, so
        Ray hands the actor the datasets themselves wherever it runs.
        """
        refs = [ray.put(datasets) for datasets in series]
        return self._actor(model).predict.remote(*refs)

    def placement(self, model: ModelKey, timeout_s: float = 60.0) -> Placement:
        """Where the model's actor runs (node id and device)."""
        key = (model.name, model.version)
        if key not in self._placements:
            first = self._pool(model)[0]
            placement: Placement = ray.get(first.placement.remote(), timeout=timeout_s)
            self._placements[key] = placement
        return self._placements[key]

    def drop(self, model: ModelKey) -> None:
        """Kill a model's actor (after a timeout, or when the version is retired)."""
        pool = self._actors.pop((model.name, model.version), [])
        self._placements.pop((model.name, model.version), None)
        for actor in pool:
            ray.kill(actor)

    def shutdown(self) -> None:
        """Kill our actors; stop Ray only if we started it."""
        for pool in self._actors.values():
            for actor in pool:
                ray.kill(actor)
        self._actors.clear()
        if self._started_ray:
            ray.shutdown()
