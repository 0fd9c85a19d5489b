"""What every training script of ours does at the end: weights, a training log, the threshold.

The shipped bundles record how their weights were made (``models/training_log.json``) and carry
the operating point chosen on the validation set in ``configs/pacs_ai.json``; a run into another
folder (``--output-dir``, the smoke mode of the tests) never touches the shipped bundle.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch


def save_training_result(
    *,
    network: torch.nn.Module,
    output_dir: Path,
    bundle_dir: Path,
    log: dict[str, Any],
    threshold: float,
) -> Path:
    """Write ``models/model.pt`` and ``models/training_log.json`` under ``output_dir``.

    When ``output_dir`` is the shipped bundle itself, its operating point threshold is updated
    too. Returns the weights file.
    """
    models = output_dir / "models"
    models.mkdir(parents=True, exist_ok=True)
    weights = models / "model.pt"
    torch.save(network.state_dict(), weights)
    (models / "training_log.json").write_text(json.dumps(log, indent=2) + "\n")
    if output_dir.resolve() == bundle_dir.resolve():
        extras_file = bundle_dir / "configs" / "pacs_ai.json"
        extras = json.loads(extras_file.read_text())
        extras["operating_point"]["threshold"] = round(threshold, 4)
        extras_file.write_text(json.dumps(extras, indent=4) + "\n")
    return weights
