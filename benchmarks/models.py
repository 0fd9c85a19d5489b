"""CPU latency and memory of the bundled models, per study, as the pipeline runs them.

One command: ``.venv/bin/python benchmarks/models.py``. It prints a table with, for each
bundle under ``models/``: the latency per study from DICOM files on disk to the study score
(read, preprocess, network, postprocess; p50 and p95 over ``--studies`` studies after one
warm-up), the network's own forward time, and the resident memory of the process after the
model is loaded and at its peak while studies run.

Studies are synthetic at the sizes a scanner and a detector send (CT head 512 x 512 x 40, chest
radiograph 1024 x 1024) and are written to a temporary folder first. Each model is measured in
a process of its own, so one model's memory does not count against another's; torch uses as
many threads as the machine has cores (``--threads`` to change it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from pacs_ai.registry.bundle import read_bundle
from pacs_ai.registry.runner import BundleModel
from pacs_ai.registry.transforms import read_series, series_folders
from pacs_ai.registry.validate import peak_rss_mb, percentile, reset_peak_rss, rss_mb
from pacs_ai.synth import generate_ct_head, generate_cxr, write_study

REPO = Path(__file__).resolve().parents[1]
BENCHMARK_SEEDS = 7_000_000
console = Console(width=132)


def write_studies(model: str, count: int, folder: Path) -> None:
    """``count`` studies (half positive) for ``model`` at scanner / detector size."""
    for index in range(count):
        positive = index % 2 == 1
        if model == "ct-head-hemorrhage":
            study = generate_ct_head(BENCHMARK_SEEDS + index, hemorrhage=positive)
        else:
            study = generate_cxr(BENCHMARK_SEEDS + index, pneumothorax=positive)
        write_study(study, folder)


def measure(bundle_dir: Path, folder: Path, threads: int) -> dict[str, object]:
    """In this process: load the bundle, run every series under ``folder``, time and weigh."""
    torch.set_num_threads(threads)
    baseline = rss_mb()
    started = time.perf_counter()
    model = BundleModel(read_bundle(bundle_dir))
    load_s = time.perf_counter() - started
    series = series_folders(folder)
    model.predict(read_series(series[0]))  # warm-up: lazy transforms, allocator, kernels
    after_load = rss_mb()
    exact = reset_peak_rss()
    latencies, forwards = [], []
    for path in series[1:]:
        tick = time.perf_counter()
        item = model.preprocessing({model.image_key: read_series(path)})
        forward_tick = time.perf_counter()
        item["pred"] = model.forward(torch.as_tensor(item[model.image_key])[None])[0]
        forwards.append((time.perf_counter() - forward_tick) * 1000)
        model.postprocessing(item)
        latencies.append((time.perf_counter() - tick) * 1000)
    return {
        "model": model.bundle.name,
        "version": model.bundle.version,
        "studies": len(latencies),
        "threads": threads,
        "load_s": round(load_s, 2),
        "latency_p50_ms": round(percentile(latencies, 50), 1),
        "latency_p95_ms": round(percentile(latencies, 95), 1),
        "network_p50_ms": round(percentile(forwards, 50), 1),
        "rss_before_load_mb": round(baseline),
        "rss_after_load_mb": round(after_load),
        "peak_rss_mb": round(peak_rss_mb()),
        "peak_is_lifetime": not exact,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--studies", type=int, default=20, help="studies per model")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--worker", nargs=2, metavar=("BUNDLE", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(Path(args.worker[0]), Path(args.worker[1]), args.threads)))
        return 0

    rows = []
    for name in ("ct-head-hemorrhage", "cxr-pneumothorax"):
        with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
            write_studies(name, args.studies + 1, Path(tmp))
            worker = [sys.executable, __file__, "--threads", str(args.threads), "--worker"]
            done = subprocess.run(
                [*worker, str(REPO / "models" / name), tmp],
                check=True,
                capture_output=True,
                text=True,
            )
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))

    table = Table(
        "model",
        "version",
        "studies",
        "threads",
        "p50 ms",
        "p95 ms",
        "network p50 ms",
        "RSS MiB",
        "peak MiB",
        title=f"CPU inference per study ({os.cpu_count()} cores, torch {torch.__version__}); "
        "RSS after load, peak while running",
    )
    for row in rows:
        table.add_row(
            *(
                str(row[key])
                for key in (
                    "model",
                    "version",
                    "studies",
                    "threads",
                    "latency_p50_ms",
                    "latency_p95_ms",
                    "network_p50_ms",
                    "rss_after_load_mb",
                    "peak_rss_mb",
                )
            )
        )
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
