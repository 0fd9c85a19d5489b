"""The Ray actor that holds one model version: loaded once, then fed batches of series.

The actor gets its input through the Ray object store (pydicom datasets the dispatcher read
and put there), so a worker on another machine needs nothing of the server's disk.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset


@dataclass(frozen=True)
class Prediction:
    """What one series gave: the study score and, for segmentation models, the probability
    map of the finding's channel on the model's grid (the pipeline maps it to the source)."""

    score: float
    probability_map: NDArray[np.float32] | None
    seconds: float


@dataclass(frozen=True)
class PredictionError:
    """A series the model could not take; the reason ends up on the job."""

    reason: str


@dataclass(frozen=True)
class Placement:
    """Where an actor runs: the Ray node and the torch device."""

    node_id: str
    device: str


class ModelActor:
    """Loads a registered bundle once (weights checked against the registry) and predicts.

    Parameters
    ----------
    bundle_path : str
        The bundle folder, as the registry recorded it.
    weights_sha256 : str
        The digest registered for the weights; other weights are refused.
    wants_gpu : bool
        The bundle asked for a GPU: use CUDA when this process has one, else the CPU.
    threads : int
        torch threads, from the bundle's ``num_cpus``.
    """

    def __init__(
        self, bundle_path: str, weights_sha256: str, wants_gpu: bool, threads: int
    ) -> None:
        import ray
        import torch

        from pacs_ai.registry.bundle import read_bundle
        from pacs_ai.registry.runner import BundleModel

        torch.set_num_threads(max(1, threads))
        device = "cuda" if wants_gpu and torch.cuda.is_available() else "cpu"
        self.bundle = read_bundle(bundle_path)
        self.model = BundleModel(self.bundle, expected_sha256=weights_sha256, device=device)
        self.placement_info = Placement(ray.get_runtime_context().get_node_id(), device)

    def placement(self) -> Placement:
        """Where this actor runs."""
        return self.placement_info

    def predict(self, *series: Sequence[Dataset]) -> list[Prediction | PredictionError]:
        """One result per series, in order; a failing series does not spoil the batch."""
        extras = self.bundle.extras
        score_key = extras.operating_point.score_key if extras.operating_point else "score"
        results: list[Prediction | PredictionError] = []
        for datasets in series:
            started = time.perf_counter()
            try:
                output = self.model.predict(list(datasets))
                results.append(
                    Prediction(
                        score=float(_scalar(output[score_key])),
                        probability_map=_channel(output, extras.segmentation),
                        seconds=time.perf_counter() - started,
                    )
                )
            except Exception as exc:  # any failure of one series is reported, not raised
                results.append(PredictionError(f"{type(exc).__name__}: {exc}"))
        return results


def _scalar(value: Any) -> float:
    array = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value, dtype=float)
    if array.size != 1:
        raise ValueError(f"the study score has {array.size} values, one expected")
    return float(array.reshape(()))


def _channel(output: dict[Any, Any], segmentation: Any) -> NDArray[np.float32] | None:
    if segmentation is None:
        return None
    probabilities = output[segmentation.key]
    array = np.asarray(
        probabilities.detach().cpu() if hasattr(probabilities, "detach") else probabilities,
        dtype=np.float32,
    )
    return array[segmentation.channel]
