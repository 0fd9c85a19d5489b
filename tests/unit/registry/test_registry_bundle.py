"""Reading bundle folders: complete ones are read, broken ones are refused by name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from pacs_ai.config import Settings
from pacs_ai.registry.bundle import discover, read_bundle, sha256_file, verify_weights
from pacs_ai.registry.errors import BundleError
from tests.unit.registry.bundles import edit_json, make_spleen_bundle, make_tiny_bundle

REPO = Path(__file__).resolve().parents[3]


def test_the_shipped_bundles_read_with_their_codes() -> None:
    ct = read_bundle(REPO / "models" / "ct-head-hemorrhage")
    cxr = read_bundle(REPO / "models" / "cxr-pneumothorax")
    assert (ct.name, cxr.name) == ("ct-head-hemorrhage", "cxr-pneumothorax")
    assert ct.extras.finding is not None and cxr.extras.finding is not None
    assert (ct.extras.finding.code_value, ct.extras.finding.coding_scheme) == ("1386000", "SCT")
    assert ct.extras.finding.code_meaning == "Intracranial hemorrhage"
    assert (cxr.extras.finding.code_value, cxr.extras.finding.code_meaning) == (
        "36118008",
        "Pneumothorax",
    )
    assert ct.extras.not_for_clinical_use and cxr.extras.not_for_clinical_use
    assert ct.inputs["image"].num_channels == 2 and ct.outputs["pred"].num_channels == 2
    assert cxr.outputs["pred"].is_vector
    for bundle in (ct, cxr):
        assert bundle.extras.operating_point is not None
        assert bundle.weights_file.stat().st_size < 5 * 1024 * 1024


def test_a_model_zoo_bundle_reads_without_pacs_ai_file(tmp_path: Path) -> None:
    bundle = read_bundle(make_spleen_bundle(tmp_path))
    assert bundle.name == "spleen_ct_segmentation"  # the Model Zoo names bundles by folder
    assert bundle.version == "0.5.9"
    assert bundle.extras.finding is None and bundle.extras.resources.num_gpus == 0
    assert bundle.inputs["image"].concrete_shape() == (96, 96, 96)
    assert bundle.describe()["weights_file"] == "models/model.pt"


@pytest.mark.parametrize(
    ("remove", "named"),
    [
        ("configs/metadata.json", "configs/metadata.json"),
        ("configs/inference.json", "configs/inference.json"),
        ("models/model.pt", "models/model.pt"),
    ],
)
def test_missing_files_are_named(tmp_path: Path, remove: str, named: str) -> None:
    bundle = make_tiny_bundle(tmp_path)
    (bundle / remove).unlink()
    with pytest.raises(BundleError, match="missing") as caught:
        read_bundle(bundle)
    assert named in str(caught.value)


def test_a_config_that_does_not_parse_is_refused_with_its_line(tmp_path: Path) -> None:
    bundle = make_tiny_bundle(tmp_path)
    config = bundle / "configs" / "inference.json"
    config.write_text(config.read_text().replace('"network_def": {', '"network_def": {,', 1))
    with pytest.raises(BundleError, match=r"inference\.json is not valid JSON.*line 2"):
        read_bundle(bundle)


def test_metadata_without_data_format_is_refused(tmp_path: Path) -> None:
    bundle = make_tiny_bundle(tmp_path)
    edit_json(bundle / "configs" / "metadata.json", lambda m: m.pop("network_data_format"))
    with pytest.raises(BundleError, match="no network_data_format"):
        read_bundle(bundle)


def test_an_output_without_channels_is_refused(tmp_path: Path) -> None:
    bundle = make_tiny_bundle(tmp_path)
    edit_json(
        bundle / "configs" / "metadata.json",
        lambda m: m["network_data_format"]["outputs"]["pred"].pop("num_channels"),
    )
    with pytest.raises(BundleError, match="'pred' has no 'num_channels'"):
        read_bundle(bundle)


def test_config_without_network_def_is_refused(tmp_path: Path) -> None:
    bundle = make_tiny_bundle(tmp_path)
    edit_json(bundle / "configs" / "inference.json", lambda c: c.pop("network_def"))
    with pytest.raises(BundleError, match="defines no network_def"):
        read_bundle(bundle)


def test_our_settings_file_is_checked(tmp_path: Path) -> None:
    bundle = make_tiny_bundle(tmp_path)
    edit_json(bundle / "configs" / "pacs_ai.json", lambda e: e.update(gpus=1))
    with pytest.raises(BundleError, match=r"pacs_ai\.json is invalid: gpus"):
        read_bundle(bundle)
    edit_json(
        bundle / "configs" / "pacs_ai.json",
        lambda e: (e.pop("gpus"), e["operating_point"].update(threshold=1.5)),
    )
    with pytest.raises(BundleError, match=r"operating_point\.threshold"):
        read_bundle(bundle)


def test_a_yaml_config_is_read(tmp_path: Path) -> None:
    bundle = make_tiny_bundle(tmp_path)
    json_config = bundle / "configs" / "inference.json"
    (bundle / "configs" / "inference.yaml").write_text(
        yaml.safe_dump(json.loads(json_config.read_text()))
    )
    json_config.unlink()
    assert read_bundle(bundle).config_file.name == "inference.yaml"


def test_changed_weights_are_detected(tmp_path: Path) -> None:
    bundle = read_bundle(make_tiny_bundle(tmp_path))
    digest = sha256_file(bundle.weights_file)
    verify_weights(bundle, digest)
    with bundle.weights_file.open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(BundleError, match="changed since registration"):
        verify_weights(bundle, digest)


def test_discover_finds_bundles_at_any_depth_but_not_inside_one(tmp_path: Path) -> None:
    first = make_tiny_bundle(tmp_path / "team-a", name="a")
    second = make_spleen_bundle(tmp_path / "zoo" / "nested")
    shutil.copytree(first, first / "docs" / "copy")  # a bundle inside a bundle is not another
    (tmp_path / "empty").mkdir()
    assert discover([tmp_path, tmp_path / "missing"]) == sorted([first, second])
    assert discover([first]) == [first]


def test_models_dirs_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PACS_AI_MODELS_DIRS", "/srv/models, ./more")
    assert Settings(_env_file=None).models_dirs == [Path("/srv/models"), Path("./more")]
    monkeypatch.delenv("PACS_AI_MODELS_DIRS")
    assert Settings(_env_file=None).models_dirs == [Path("models")]
