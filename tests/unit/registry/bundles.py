"""Bundle folders for the registry tests: a Model Zoo bundle as published, and tiny ones.

:func:`make_spleen_bundle` lays out ``spleen_ct_segmentation`` as the MONAI Model Zoo ships it
(version 0.5.9: metadata, inference config with LoadImaged/Invertd/SaveImaged and an ignite
evaluator, logging.conf, docs/README.md, LICENSE, large_files.yml), with random weights in
place of the trained ones (the real file is downloaded through large_files.yml). Nothing in
it is adapted to pacs-ai: the registry must take it as it is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from monai.networks.nets import UNet

SPLEEN_METADATA: dict[str, Any] = {
    "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20220324.json",
    "version": "0.5.9",
    "changelog": {
        "0.5.9": "use monai 1.4 and update large files",
        "0.5.8": "update to use monai 1.3.2",
        "0.1.0": "complete the model package",
        "0.0.1": "initialize the model package structure",
    },
    "monai_version": "1.4.0",
    "pytorch_version": "2.4.0",
    "numpy_version": "1.24.4",
    "optional_packages_version": {"nibabel": "5.2.1", "pytorch-ignite": "0.4.11"},
    "name": "Spleen CT segmentation",
    "task": "Decathlon spleen segmentation",
    "description": (
        "A pre-trained model for volumetric (3D) segmentation of the spleen from CT image"
    ),
    "authors": "MONAI team",
    "copyright": "Copyright (c) MONAI Consortium",
    "data_source": "Task09_Spleen.tar from http://medicaldecathlon.com/",
    "data_type": "nibabel",
    "image_classes": "single channel data, intensity scaled to [0, 1]",
    "label_classes": "single channel data, 1 is spleen, 0 is everything else",
    "pred_classes": "2 channels OneHot data, channel 1 is spleen, channel 0 is background",
    "eval_metrics": {"mean_dice": 0.961},
    "intended_use": "This is an example, not to be used for diagnostic purposes",
    "references": [
        "Xia, Yingda, et al. '3D Semi-Supervised Learning with Uncertainty-Aware Multi-View "
        "Co-Training. arXiv preprint arXiv:1811.12506 (2018)."
    ],
    "network_data_format": {
        "inputs": {
            "image": {
                "type": "image",
                "format": "hounsfield",
                "modality": "CT",
                "num_channels": 1,
                "spatial_shape": [96, 96, 96],
                "dtype": "float32",
                "value_range": [0, 1],
                "is_patch_data": True,
                "channel_def": {"0": "image"},
            }
        },
        "outputs": {
            "pred": {
                "type": "image",
                "format": "segmentation",
                "num_channels": 2,
                "spatial_shape": [96, 96, 96],
                "dtype": "float32",
                "value_range": [0, 1],
                "is_patch_data": True,
                "channel_def": {"0": "background", "1": "spleen"},
            }
        },
    },
}

SPLEEN_NETWORK_DEF: dict[str, Any] = {
    "_target_": "UNet",
    "spatial_dims": 3,
    "in_channels": 1,
    "out_channels": 2,
    "channels": [16, 32, 64, 128, 256],
    "strides": [2, 2, 2, 2],
    "num_res_units": 2,
    "norm": "batch",
}

SPLEEN_INFERENCE: dict[str, Any] = {
    "imports": ["$import glob", "$import numpy", "$import os"],
    "bundle_root": ".",
    "image_key": "image",
    "output_dir": "$@bundle_root + '/eval'",
    "output_ext": ".nii.gz",
    "output_dtype": "$numpy.float32",
    "output_postfix": "trans",
    "separate_folder": True,
    "load_pretrain": True,
    "dataset_dir": "/workspace/data/Task09_Spleen",
    "datalist": "$list(sorted(glob.glob(@dataset_dir + '/imagesTs/*.nii.gz')))",
    "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
    "network_def": SPLEEN_NETWORK_DEF,
    "network": "$@network_def.to(@device)",
    "preprocessing": {
        "_target_": "Compose",
        "transforms": [
            {"_target_": "LoadImaged", "keys": "@image_key"},
            {"_target_": "EnsureChannelFirstd", "keys": "@image_key"},
            {"_target_": "Orientationd", "keys": "@image_key", "axcodes": "RAS"},
            {
                "_target_": "Spacingd",
                "keys": "@image_key",
                "pixdim": [1.5, 1.5, 2.0],
                "mode": "bilinear",
            },
            {
                "_target_": "ScaleIntensityRanged",
                "keys": "@image_key",
                "a_min": -57,
                "a_max": 164,
                "b_min": 0,
                "b_max": 1,
                "clip": True,
            },
            {"_target_": "EnsureTyped", "keys": "@image_key"},
        ],
    },
    "dataset": {
        "_target_": "Dataset",
        "data": "$[{'image': i} for i in @datalist]",
        "transform": "@preprocessing",
    },
    "dataloader": {
        "_target_": "DataLoader",
        "dataset": "@dataset",
        "batch_size": 1,
        "shuffle": False,
        "num_workers": 4,
    },
    "inferer": {
        "_target_": "SlidingWindowInferer",
        "roi_size": [96, 96, 96],
        "sw_batch_size": 4,
        "overlap": 0.5,
    },
    "postprocessing": {
        "_target_": "Compose",
        "transforms": [
            {"_target_": "Activationsd", "keys": "pred", "softmax": True},
            {
                "_target_": "Invertd",
                "keys": "pred",
                "transform": "@preprocessing",
                "orig_keys": "@image_key",
                "nearest_interp": False,
                "to_tensor": True,
            },
            {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
            {
                "_target_": "SaveImaged",
                "keys": "pred",
                "output_dir": "@output_dir",
                "output_ext": "@output_ext",
                "output_dtype": "@output_dtype",
                "output_postfix": "@output_postfix",
                "separate_folder": "@separate_folder",
            },
        ],
    },
    "handlers": [{"_target_": "StatsHandler", "iteration_log": False}],
    "evaluator": {
        "_target_": "SupervisedEvaluator",
        "device": "@device",
        "val_data_loader": "@dataloader",
        "network": "@network",
        "inferer": "@inferer",
        "postprocessing": "@postprocessing",
        "val_handlers": "@handlers",
        "amp": True,
    },
    "checkpointloader": {
        "_target_": "CheckpointLoader",
        "load_path": "$@bundle_root + '/models/model.pt'",
        "load_dict": {"model": "@network"},
    },
    "initialize": [
        "$monai.utils.set_determinism(seed=123)",
        "$@checkpointloader(@evaluator) if @load_pretrain else None",
    ],
    "run": ["$@evaluator.run()"],
}

LOGGING_CONF = """[loggers]
keys=root

[handlers]
keys=consoleHandler

[formatters]
keys=fullFormatter

[logger_root]
level=INFO
handlers=consoleHandler

[handler_consoleHandler]
class=StreamHandler
level=INFO
formatter=fullFormatter
args=(sys.stdout,)

[formatter_fullFormatter]
format=%(asctime)s - %(name)s - %(levelname)s - %(message)s
"""

LARGE_FILES = """large_files:
  - path: "models/model.pt"
    url: "https://developer.download.nvidia.com/assets/Clara/monai/tutorials/model_zoo/model_spleen_ct_segmentation_v1.pt"
    hash_val: ""
    hash_type: ""
"""


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as the Model Zoo formats its JSON (4 spaces)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4) + "\n")


def make_spleen_bundle(root: Path) -> Path:
    """``root/spleen_ct_segmentation`` as the Model Zoo publishes it, random weights."""
    bundle = root / "spleen_ct_segmentation"
    write_json(bundle / "configs" / "metadata.json", SPLEEN_METADATA)
    write_json(bundle / "configs" / "inference.json", SPLEEN_INFERENCE)
    (bundle / "configs" / "logging.conf").write_text(LOGGING_CONF)
    (bundle / "docs").mkdir()
    (bundle / "docs" / "README.md").write_text(
        "# Model Overview\nA pre-trained model for spleen.\n"
    )
    (bundle / "LICENSE").write_text("Apache License\nVersion 2.0, January 2004\n")
    (bundle / "large_files.yml").write_text(LARGE_FILES)
    (bundle / "models").mkdir()
    torch.manual_seed(0)
    network = UNet(3, 1, 2, (16, 32, 64, 128, 256), (2, 2, 2, 2), num_res_units=2, norm="batch")
    torch.save(network.state_dict(), bundle / "models" / "model.pt")
    return bundle


TINY_NETWORK_DEF: dict[str, Any] = {
    "_target_": "UNet",
    "spatial_dims": 3,
    "in_channels": 1,
    "out_channels": 2,
    "channels": [4, 8],
    "strides": [2],
    "num_res_units": 0,
}


def make_tiny_bundle(
    root: Path, *, name: str = "tiny-seg", version: str = "1.0.0", seed: int = 0
) -> Path:
    """A small segmentation bundle with our ``pacs_ai.json``: fast to validate and register."""
    bundle = root / f"{name}-{version}"
    metadata = json.loads(json.dumps(SPLEEN_METADATA))
    metadata["version"] = version
    for entry in metadata["network_data_format"].values():
        for spec in entry.values():
            spec["spatial_shape"] = ["16*n", "16*n", "16*n"]
            spec["is_patch_data"] = False
    write_json(bundle / "configs" / "metadata.json", metadata)
    write_json(
        bundle / "configs" / "inference.json",
        {
            "network_def": TINY_NETWORK_DEF,
            "inferer": {"_target_": "SimpleInferer"},
            "postprocessing": {
                "_target_": "Compose",
                "transforms": [{"_target_": "Activationsd", "keys": "pred", "softmax": True}],
            },
        },
    )
    write_json(
        bundle / "configs" / "pacs_ai.json",
        {
            "name": name,
            "finding": {"code_value": "1386000", "code_meaning": "Intracranial hemorrhage"},
            "resources": {"num_cpus": 1, "num_gpus": 0, "memory_mb": 256},
            "operating_point": {"threshold": 0.5},
            "segmentation": {"key": "pred", "channel": 1, "label": "hemorrhage"},
        },
    )
    (bundle / "models").mkdir(parents=True)
    torch.manual_seed(seed)
    network = UNet(3, 1, 2, (4, 8), (2,), num_res_units=0)
    torch.save(network.state_dict(), bundle / "models" / "model.pt")
    return bundle


def edit_json(path: Path, change: Any) -> None:
    """Load a JSON file, let ``change`` edit the object in place, write it back."""
    data = json.loads(path.read_text())
    change(data)
    write_json(path, data)
