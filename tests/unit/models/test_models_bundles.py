"""The shipped model bundles: they train (smoke), run as MONAI bundles, and keep their card.

The card's metrics (``eval_metrics`` of each ``configs/metadata.json``, written by
``evaluate.py --update-metadata``) are re-checked on a small, freshly generated part of the
same held-out seed range, at the model's own resolution so that it stays fast. Tolerances,
stated in the model cards: on 10 CT studies the AUC is at least the card's lower 95% bound
minus 0.05 and the mean Dice within 0.1 of the card's; on 20 radiographs the AUC is at least
the card's lower bound minus 0.05; every positive at the operating point is found when the
card's sensitivity lower bound is above 0.9.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
from monai.bundle import ConfigParser, run

from pacs_ai.registry.bundle import read_bundle, sha256_file
from pacs_ai.registry.runner import BundleModel
from pacs_ai.registry.transforms import series_folders
from pacs_ai.registry.validate import validate_bundle
from pacs_ai.synth import generate_ct_head, generate_cxr, write_study

REPO = Path(__file__).resolve().parents[3]
MODELS = REPO / "models"
NAMES = ("ct-head-hemorrhage", "cxr-pneumothorax")


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def load_script(name: str, script: str) -> ModuleType:
    """A model's script as a module (the folders have hyphens, so no plain import)."""
    spec = importlib.util.spec_from_file_location(f"{name}_{script}", MODELS / name / script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", NAMES)
def test_training_smoke_writes_loadable_weights(name: str, tmp_path: Path) -> None:
    before = sha256_file(MODELS / name / "models" / "model.pt")
    extras_before = (MODELS / name / "configs" / "pacs_ai.json").read_text()
    command = [sys.executable, str(MODELS / name / "train.py"), "--smoke", "--threads", "1"]
    done = subprocess.run(
        [*command, "--output-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    log = json.loads((tmp_path / "models" / "training_log.json").read_text())
    assert log["steps"] == 3 and log["final_loss"] > 0
    parser = ConfigParser()
    parser.read_config(MODELS / name / "configs" / "inference.json")
    network = parser.get_parsed_content("network_def")
    network.load_state_dict(torch.load(tmp_path / "models" / "model.pt", weights_only=True))
    # The smoke run leaves the shipped bundle alone.
    assert sha256_file(MODELS / name / "models" / "model.pt") == before
    assert (MODELS / name / "configs" / "pacs_ai.json").read_text() == extras_before


@pytest.mark.parametrize("name", NAMES)
def test_shipped_bundles_are_small_and_valid(name: str) -> None:
    bundle = read_bundle(MODELS / name)
    assert bundle.weights_file.stat().st_size < 5 * 1024 * 1024
    report = validate_bundle(bundle, runs=1)
    assert report.activation == "softmax"
    assert 0.0 <= report.outputs[0].minimum <= report.outputs[0].maximum <= 1.0
    for document in ("MODEL_CARD.md", "docs/README.md", "LICENSE"):
        assert (MODELS / name / document).is_file()
    card = (MODELS / name / "MODEL_CARD.md").read_text()
    assert "NOT for clinical use" in card and "synthetic" in card


def test_monai_bundle_run_scores_a_folder_as_the_pipeline_does(tmp_path: Path) -> None:
    """``monai.bundle.run`` (what ``python -m monai.bundle run`` calls) on our config."""
    for seed in (1, 2):
        write_study(generate_cxr(seed, pneumothorax=seed == 2, size=256), tmp_path / "data")
    bundle = MODELS / "cxr-pneumothorax"
    run(
        config_file=str(bundle / "configs" / "inference.json"),
        meta_file=str(bundle / "configs" / "metadata.json"),
        bundle_root=str(bundle),
        dataset_dir=str(tmp_path / "data"),
        output_dir=str(tmp_path / "eval"),
    )
    rows = json.loads((tmp_path / "eval" / "predictions.json").read_text())
    model = BundleModel(read_bundle(bundle))
    expected = {folder: model.predict(folder)["score"] for folder in series_folders(tmp_path)}
    assert {row["source"]: row["score"] for row in rows} == pytest.approx(expected)


def test_ct_bundle_predicts_from_datasets() -> None:
    model = BundleModel(read_bundle(MODELS / "ct-head-hemorrhage"))
    study = generate_ct_head(9_000_001, hemorrhage=True, slices=24, size=128)
    result = model.predict(study.datasets)
    assert result["pred"].shape == (2, 32, 96, 96)
    assert 0.0 <= result["score"] <= 1.0
    torch.testing.assert_close(result["pred"].sum(0), torch.ones(32, 96, 96))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "studies"), [("ct-head-hemorrhage", 10), ("cxr-pneumothorax", 20)]
)
def test_shipped_weights_reproduce_the_model_card(name: str, studies: int) -> None:
    card = read_bundle(MODELS / name).metadata["eval_metrics"]["model_geometry"]
    report = load_script(name, "evaluate.py").evaluate(studies, "model")
    assert report["seeds"][0] == card["seeds"][0]  # the same held-out range
    assert report["auc"]["value"] >= card["auc"]["low"] - 0.05
    if card["sensitivity"]["low"] > 0.9:
        assert report["confusion"]["fn"] == 0
    if "mean_dice" in card:
        assert abs(report["mean_dice"]["value"] - card["mean_dice"]["value"]) <= 0.1
