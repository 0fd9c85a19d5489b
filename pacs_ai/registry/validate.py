"""Try a bundle on synthetic input shaped as it declares, and measure what it costs.

``pacs-ai models validate`` and ``register`` run this before a version reaches the registry:
the network is built from ``network_def``, the weights are loaded, and a random input of the
declared channels, spatial shape, dtype and value range goes through the bundle's inferer.
Each declared output is then checked: channels, spatial shape (for image outputs), dtype,
finite values, and the value range after the activation the bundle's postprocessing applies
(a Model Zoo segmentation bundle declares probabilities in [0, 1] for a network that returns
logits and a postprocessing that applies softmax).

Latency is wall time per forward pass after one warm-up. Peak memory is the resident set
high-water mark of the process during the passes: Linux lets a process reset its own mark
(``/proc/self/clear_refs``, value 5), so the figure belongs to inference alone; elsewhere the
process's lifetime peak (``getrusage``) is reported, and says so.
"""

from __future__ import annotations

import math
import resource
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pacs_ai.registry.bundle import Bundle, sha256_file
from pacs_ai.registry.errors import BundleError
from pacs_ai.registry.runner import BundleModel, activate
from pacs_ai.registry.spec import SpecError, TensorSpec

CLEAR_REFS = Path("/proc/self/clear_refs")
STATUS = Path("/proc/self/status")
#: Slack on declared value ranges, for float rounding of probabilities.
RANGE_TOLERANCE = 1e-4


@dataclass(frozen=True)
class TensorCheck:
    """What a checked tensor looked like."""

    key: str
    shape: tuple[int, ...]
    dtype: str
    minimum: float
    maximum: float


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of a successful validation (failures raise :class:`BundleError`)."""

    name: str
    version: str
    path: Path
    weights_sha256: str
    inputs: tuple[TensorCheck, ...]
    outputs: tuple[TensorCheck, ...]
    activation: str | None
    load_s: float
    latencies_ms: tuple[float, ...]
    rss_after_load_mb: float
    peak_rss_mb: float
    peak_is_lifetime: bool

    @property
    def latency_p50_ms(self) -> float:
        """Median forward-pass time."""
        return percentile(self.latencies_ms, 50)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile by linear interpolation between order statistics."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def rss_mb() -> float:
    """Current resident set size in MiB (0 where /proc is not available)."""
    if STATUS.is_file():
        for line in STATUS.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def reset_peak_rss() -> bool:
    """Reset the process's resident-set high-water mark; False where the OS cannot."""
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mb() -> float:
    """Resident-set high-water mark in MiB (since the last reset where one was possible)."""
    if STATUS.is_file():
        for line in STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def synthetic_input(spec: TensorSpec, generator: torch.Generator) -> torch.Tensor:
    """A batch of one random tensor as ``spec`` declares it (uniform in its value range)."""
    try:
        shape = (1, spec.num_channels, *spec.concrete_shape())
    except SpecError as exc:
        raise BundleError(f"input {spec.key!r}: {exc}") from exc
    low, high = spec.value_range or (0.0, 1.0)
    dtype = spec.torch_dtype()
    if dtype.is_floating_point:
        values = torch.rand(shape, generator=generator) * (high - low) + low
        return values.to(dtype)
    return torch.randint(int(low), int(high) + 1, shape, generator=generator, dtype=dtype)


def _named_outputs(raw: Any, specs: Mapping[str, TensorSpec]) -> dict[str, torch.Tensor]:
    """Pair the network's outputs with the declared ones: by key, by order, or the only one."""
    if isinstance(raw, torch.Tensor):
        values: dict[str, Any] = {next(iter(specs)): raw} if len(specs) == 1 else {}
        if not values:
            raise BundleError(f"network returned one tensor but {len(specs)} outputs are declared")
    elif isinstance(raw, Mapping):
        values = {str(k): v for k, v in raw.items() if str(k) in specs}
    elif isinstance(raw, list | tuple):
        if len(raw) != len(specs):
            raise BundleError(f"network returned {len(raw)} outputs, {len(specs)} are declared")
        values = dict(zip(specs, raw, strict=True))
    else:
        raise BundleError(f"network returned a {type(raw).__name__}, not tensors")
    missing = [key for key in specs if key not in values]
    if missing:
        raise BundleError(f"declared outputs {missing} are not among the network's outputs")
    for key, value in values.items():
        if not isinstance(value, torch.Tensor):
            raise BundleError(f"output {key!r} is a {type(value).__name__}, not a tensor")
    return values


def check_output(
    spec: TensorSpec, raw: torch.Tensor, activation: str | None, input_spatial: tuple[int, ...]
) -> TensorCheck:
    """Hold one output to its declaration; :class:`BundleError` says which part it breaks."""
    where = f"output {spec.key!r}"
    shape = tuple(raw.shape)
    if raw.ndim < 2 or shape[0] != 1:
        raise BundleError(f"{where} has shape {shape}: expected a batch of 1 with channels first")
    if shape[1] != spec.num_channels:
        raise BundleError(f"{where} has {shape[1]} channels, {spec.num_channels} are declared")
    if spec.is_vector:
        if raw.ndim != 2:
            raise BundleError(f"{where} is declared a vector ({spec.type}) but has shape {shape}")
    else:
        try:
            expected = spec.concrete_shape()
        except SpecError as exc:
            raise BundleError(f"{where}: {exc}") from exc
        if any(isinstance(v, str) for v in spec.spatial_shape):
            expected = input_spatial  # a size pattern: the output follows the input
        if shape[2:] != expected:
            raise BundleError(f"{where} has spatial shape {shape[2:]}, {expected} is declared")
    if raw.dtype != spec.torch_dtype():
        raise BundleError(
            f"{where} has dtype {str(raw.dtype).removeprefix('torch.')}, {spec.dtype} is declared"
        )
    values = activate(raw, activation)
    if not bool(torch.isfinite(values).all()):
        raise BundleError(f"{where} holds NaN or infinite values")
    low, high = float(values.min()), float(values.max())
    if spec.value_range is not None:
        lo, hi = spec.value_range
        if low < lo - RANGE_TOLERANCE or high > hi + RANGE_TOLERANCE:
            after = f" after {activation}" if activation else ""
            raise BundleError(
                f"{where} spans [{low:.4g}, {high:.4g}]{after}, outside the declared "
                f"value_range [{lo:g}, {hi:g}]"
            )
    return TensorCheck(spec.key, shape, spec.dtype, low, high)


def validate_bundle(
    bundle: Bundle, *, expected_sha256: str | None = None, runs: int = 3, seed: int = 0
) -> ValidationReport:
    """Load a bundle, run it on synthetic input, check its outputs, measure it.

    Parameters
    ----------
    bundle : Bundle
        The bundle as read from disk.
    expected_sha256 : str, optional
        The registered digest of its weights; other weights are refused.
    runs : int
        Timed forward passes after the warm-up.
    seed : int
        Seed of the synthetic input.

    Raises
    ------
    BundleError
        Naming the problem: changed weights, a network that cannot be built or does not take
        the declared input, or an output that differs from its declaration.
    """
    if len(bundle.inputs) != 1:
        raise BundleError(
            f"{bundle.path}: {len(bundle.inputs)} inputs declared; pacs-ai runs one-input networks"
        )
    digest = sha256_file(bundle.weights_file)
    started = time.perf_counter()
    model = BundleModel(bundle, expected_sha256=expected_sha256)
    load_s = time.perf_counter() - started
    spec = next(iter(bundle.inputs.values()))
    fake = synthetic_input(spec, torch.Generator().manual_seed(seed))
    rss_after_load = rss_mb()
    exact_peak = reset_peak_rss()
    latencies = []
    raw: Any = None
    for index in range(runs + 1):
        tick = time.perf_counter()
        try:
            raw = model.forward(fake)
        except Exception as exc:  # whatever the network raises on an input it cannot take
            raise BundleError(
                f"{bundle.path}: the network cannot take the declared input {spec.key!r} of shape "
                f"{tuple(fake.shape)} ({spec.dtype}): {exc}"
            ) from exc
        if index:
            latencies.append((time.perf_counter() - tick) * 1000)
    peak = peak_rss_mb()
    outputs = _named_outputs(raw, bundle.outputs)
    checks = []
    for key, output_spec in bundle.outputs.items():
        try:
            checks.append(
                check_output(output_spec, outputs[key], model.activation, tuple(fake.shape[2:]))
            )
        except BundleError as exc:
            raise BundleError(f"{bundle.path}: {exc}") from exc
    return ValidationReport(
        name=bundle.name,
        version=bundle.version,
        path=bundle.path,
        weights_sha256=digest,
        inputs=(
            TensorCheck(
                spec.key, tuple(fake.shape), spec.dtype, float(fake.min()), float(fake.max())
            ),
        ),
        outputs=tuple(checks),
        activation=model.activation,
        load_s=load_s,
        latencies_ms=tuple(latencies),
        rss_after_load_mb=rss_after_load,
        peak_rss_mb=peak,
        peak_is_lifetime=not exact_peak,
    )
