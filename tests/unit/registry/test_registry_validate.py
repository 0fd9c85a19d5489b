"""Validation: a bundle runs on synthetic input of its declared shape, or is refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from monai.networks.nets import DenseNet, UNet

from pacs_ai.registry.bundle import read_bundle, sha256_file
from pacs_ai.registry.errors import BundleError
from pacs_ai.registry.spec import SpecError, TensorSpec
from pacs_ai.registry.validate import percentile, validate_bundle
from tests.unit.registry.bundles import edit_json, make_spleen_bundle, make_tiny_bundle


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def test_a_model_zoo_bundle_validates_as_published(tmp_path: Path) -> None:
    bundle = read_bundle(make_spleen_bundle(tmp_path))
    report = validate_bundle(bundle, runs=1)
    assert report.inputs[0].shape == (1, 1, 96, 96, 96)
    (pred,) = report.outputs
    assert pred.shape == (1, 2, 96, 96, 96) and pred.dtype == "float32"
    # The network returns logits; the postprocessing's Activationsd(softmax) makes them [0, 1].
    assert report.activation == "softmax"
    assert 0.0 <= pred.minimum <= pred.maximum <= 1.0
    assert report.weights_sha256 == sha256_file(bundle.weights_file)
    assert len(report.latencies_ms) == 1 and report.latency_p50_ms > 0
    assert report.peak_rss_mb >= report.rss_after_load_mb * 0.5 > 0


def test_size_patterns_are_tried_at_their_smallest(tmp_path: Path) -> None:
    report = validate_bundle(read_bundle(make_tiny_bundle(tmp_path)), runs=2)
    assert report.inputs[0].shape == (1, 1, 16, 16, 16)
    assert report.outputs[0].shape == (1, 2, 16, 16, 16)
    assert len(report.latencies_ms) == 2


def test_an_input_the_network_cannot_take_is_refused(tmp_path: Path) -> None:
    bundle = make_tiny_bundle(tmp_path)
    edit_json(
        bundle / "configs" / "metadata.json",
        lambda m: m["network_data_format"]["inputs"]["image"].update(num_channels=3),
    )
    with pytest.raises(
        BundleError, match=r"cannot take the declared input 'image' of shape \(1, 3"
    ):
        validate_bundle(read_bundle(bundle), runs=1)


def test_an_input_size_the_network_cannot_take_is_refused(tmp_path: Path) -> None:
    bundle = make_tiny_bundle(tmp_path)
    edit_json(
        bundle / "configs" / "metadata.json",
        lambda m: m["network_data_format"]["inputs"]["image"].update(spatial_shape=[15, 15, 15]),
    )
    with pytest.raises(BundleError, match="spatial shape"):
        validate_bundle(read_bundle(bundle), runs=1)


def test_output_channels_must_match(tmp_path: Path) -> None:
    bundle = make_tiny_bundle(tmp_path)
    edit_json(
        bundle / "configs" / "metadata.json",
        lambda m: m["network_data_format"]["outputs"]["pred"].update(num_channels=3),
    )
    with pytest.raises(BundleError, match="'pred' has 2 channels, 3 are declared"):
        validate_bundle(read_bundle(bundle), runs=1)


def test_output_value_range_is_checked_after_the_declared_activation(tmp_path: Path) -> None:
    bundle = make_tiny_bundle(tmp_path)
    torch.manual_seed(1)
    network = UNet(3, 1, 2, (4, 8), (2,), num_res_units=0)
    with torch.no_grad():
        network.model[-1].conv.bias.fill_(5.0)  # type: ignore[union-attr,index,operator]
    torch.save(network.state_dict(), bundle / "models" / "model.pt")
    edit_json(bundle / "configs" / "inference.json", lambda c: c.pop("postprocessing"))
    with pytest.raises(BundleError, match=r"outside the declared value_range \[0, 1\]"):
        validate_bundle(read_bundle(bundle), runs=1)


def test_weights_of_another_network_are_refused(tmp_path: Path) -> None:
    bundle = make_tiny_bundle(tmp_path)
    torch.save(UNet(3, 1, 2, (8, 16), (2,)).state_dict(), bundle / "models" / "model.pt")
    with pytest.raises(BundleError, match="do not load into network_def"):
        validate_bundle(read_bundle(bundle), runs=1)


def test_weights_changed_since_registration_are_refused(tmp_path: Path) -> None:
    bundle = read_bundle(make_tiny_bundle(tmp_path))
    registered = sha256_file(bundle.weights_file)
    torch.save(UNet(3, 1, 2, (4, 8), (2,), num_res_units=0).state_dict(), bundle.weights_file)
    with pytest.raises(BundleError, match=f"changed since registration.*registered {registered}"):
        validate_bundle(bundle, expected_sha256=registered, runs=1)


def test_a_network_def_that_cannot_be_built_is_refused(tmp_path: Path) -> None:
    bundle = make_tiny_bundle(tmp_path)
    edit_json(
        bundle / "configs" / "inference.json", lambda c: c["network_def"].update(_target_="NoNet")
    )
    with pytest.raises(BundleError, match="cannot build 'network_def'"):
        validate_bundle(read_bundle(bundle), runs=1)


def test_torchscript_weights_are_accepted(tmp_path: Path) -> None:
    bundle = make_tiny_bundle(tmp_path)
    network = UNet(3, 1, 2, (4, 8), (2,), num_res_units=0).eval()
    torch.jit.script(network).save(str(bundle / "models" / "model.ts"))
    (bundle / "models" / "model.pt").unlink()
    report = validate_bundle(read_bundle(bundle), runs=1)
    assert report.outputs[0].shape == (1, 2, 16, 16, 16)


def test_vector_outputs_check_channels_only(tmp_path: Path) -> None:
    bundle = make_tiny_bundle(tmp_path)
    edit_json(
        bundle / "configs" / "inference.json",
        lambda c: c.update(
            network_def={
                "_target_": "DenseNet",
                "spatial_dims": 2,
                "in_channels": 1,
                "out_channels": 2,
                "init_features": 4,
                "growth_rate": 4,
                "block_config": [1],
            }
        ),
    )

    def classification(metadata: dict[str, object]) -> None:
        data_format = metadata["network_data_format"]
        assert isinstance(data_format, dict)
        data_format["inputs"]["image"]["spatial_shape"] = [32, 32]
        # As the Model Zoo's classification bundles write it: [1, 2] for a 2-vector.
        data_format["outputs"]["pred"].update(
            type="probabilities", format="classes", spatial_shape=[1, 2]
        )

    edit_json(bundle / "configs" / "metadata.json", classification)
    network = DenseNet(2, 1, 2, init_features=4, growth_rate=4, block_config=(1,))
    torch.save(network.state_dict(), bundle / "models" / "model.pt")
    report = validate_bundle(read_bundle(bundle), runs=1)
    assert report.outputs[0].shape == (1, 2)


def test_size_expressions_are_evaluated_safely() -> None:
    def spec(shape: list[object]) -> TensorSpec:
        return TensorSpec.from_metadata(
            "image", {"num_channels": 1, "spatial_shape": shape, "dtype": "float32"}
        )

    assert spec([96, "32*n", "2**p", "*", "16 * n + 8"]).concrete_shape(n=2, p=3) == (
        96,
        64,
        8,
        32,
        40,
    )
    with pytest.raises(SpecError, match="unsupported spatial size"):
        spec(["__import__('os').getpid()"]).concrete_shape()
    with pytest.raises(SpecError, match="unsupported spatial size"):
        spec(["m*32"]).concrete_shape()
    with pytest.raises(SpecError, match="exponent too large"):
        spec(["2**99"]).concrete_shape()
    with pytest.raises(SpecError, match="unsupported dtype"):
        TensorSpec.from_metadata("x", {"num_channels": 1, "spatial_shape": [1], "dtype": "c64"})


def test_percentile_interpolates() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 95) == 5.0
    assert json.loads(json.dumps(percentile([1.0, 3.0], 100))) == 3.0
