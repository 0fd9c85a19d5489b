"""A Ray cluster of two nodes on this machine: the GPU-wanting model lands on the GPU node.

The test starts ``ray start --head`` and a second node with ``--num-gpus 1`` (there is no real
GPU: Ray only counts the resource), then, in a separate driver process (a process holds one
Ray), asks pacs-ai's runtime where each model's actor was placed. The GPU model's actor must
be on the GPU node and fall back to the CPU device inside; the CPU model may run anywhere.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.integration.conftest import free_port
from tests.integration.pipeline_support import MODELS

pytestmark = pytest.mark.integration

RAY = str(Path(sys.executable).with_name("ray"))
# A throw-away cluster on loopback: Ray's token authentication is off for it (production
# clusters keep it on and hand the workers the token, RAY_AUTH_TOKEN).
CLUSTER_ENV = {**os.environ, "RAY_AUTH_MODE": "disabled"}

DRIVER = """
import json, sys
import ray
from pacs_ai.config import Settings
from pacs_ai.inference.runtime import InferenceRuntime, ModelKey
from pacs_ai.registry.bundle import read_bundle, sha256_file

address, gpu_bundle, cpu_bundle = sys.argv[1:4]
runtime = InferenceRuntime(Settings(ray_address=address))
placements = {}
for label, path in (("gpu", gpu_bundle), ("cpu", cpu_bundle)):
    bundle = read_bundle(path)
    resources = bundle.extras.resources
    key = ModelKey(bundle.name, bundle.version, str(bundle.path), sha256_file(bundle.weights_file),
                   resources.num_cpus, resources.num_gpus, resources.memory_mb)
    placement = runtime.placement(key)
    placements[label] = {"node_id": placement.node_id, "device": placement.device}
gpu_nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("GPU", 0) > 0]
runtime.shutdown()
print(json.dumps({"placements": placements, "gpu_nodes": gpu_nodes}))
"""


def own_ports() -> list[str]:
    """Free ports for every service of a node: another Ray on this machine (the test session's)
    holds Ray's default agent ports, and a node that cannot bind them never runs an actor."""
    options = [
        "--node-manager-port",
        "--object-manager-port",
        "--metrics-export-port",
        "--dashboard-agent-listen-port",
        "--dashboard-agent-grpc-port",
        "--runtime-env-agent-port",
    ]
    return [f"{option}={free_port()}" for option in options]


def kill_cluster(temp_dir: str) -> None:
    """Stop this cluster's processes only (``ray stop`` would stop every Ray on the machine)."""
    for process in psutil.process_iter(["cmdline"]):
        try:
            if any(temp_dir in part for part in process.info["cmdline"] or []):
                process.send_signal(signal.SIGKILL)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue


@pytest.fixture
def cluster() -> Iterator[str]:
    temp_dir = tempfile.mkdtemp(prefix="rc-", dir="/tmp")
    port = free_port()
    env = CLUSTER_ENV
    common = ["--temp-dir", temp_dir, "--disable-usage-stats"]
    try:
        subprocess.run(
            [
                RAY,
                "start",
                "--head",
                f"--port={port}",
                "--num-cpus=1",
                "--num-gpus=0",
                "--include-dashboard=false",
                *own_ports(),
                *common,
            ],
            check=True,
            capture_output=True,
            env=env,
            timeout=120,
        )
        subprocess.run(
            [
                RAY,
                "start",
                f"--address=127.0.0.1:{port}",
                "--num-cpus=1",
                "--num-gpus=1",
                *own_ports(),
                *common,
            ],
            check=True,
            capture_output=True,
            env=env,
            timeout=120,
        )
        yield f"127.0.0.1:{port}"
    finally:
        kill_cluster(temp_dir)
        time.sleep(1)
        shutil.rmtree(temp_dir, ignore_errors=True)


def gpu_copy(source: Path, target: Path) -> Path:
    """The same bundle, asking for one GPU in its pacs-ai resources."""
    shutil.copytree(source, target)
    extras_file = target / "configs" / "pacs_ai.json"
    extras = json.loads(extras_file.read_text())
    extras["resources"]["num_gpus"] = 1
    extras_file.write_text(json.dumps(extras))
    return target


def test_gpu_model_is_placed_on_the_gpu_node(cluster: str, tmp_path: Path) -> None:
    gpu_bundle = gpu_copy(MODELS / "cxr-pneumothorax", tmp_path / "gpu-bundle")
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            DRIVER,
            cluster,
            str(gpu_bundle),
            str(MODELS / "ct-head-hemorrhage"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=CLUSTER_ENV,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    (gpu_node,) = report["gpu_nodes"]
    assert report["placements"]["gpu"]["node_id"] == gpu_node
    assert report["placements"]["gpu"]["device"] == "cpu"  # no CUDA here: the CPU inside
    assert report["placements"]["cpu"]["device"] == "cpu"
