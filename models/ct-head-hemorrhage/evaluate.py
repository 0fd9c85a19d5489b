"""Measure the CT head hemorrhage bundle on held-out synthetic studies.

    python models/ct-head-hemorrhage/evaluate.py                      # scanner geometry
    python models/ct-head-hemorrhage/evaluate.py --geometry model     # the model's own grid
    python models/ct-head-hemorrhage/evaluate.py --update-metadata    # write eval_metrics

Held-out studies come from seeds ``HELD_OUT_SEEDS`` onwards, a range neither training nor
validation touched; odd offsets are positive. Each study goes through the bundle exactly as
the pipeline runs it (``BundleModel.predict`` on the pydicom datasets). Reported: AUC of the
study score with its DeLong 95% interval, sensitivity and specificity at the bundle's
operating point (Wilson intervals), and Dice of the hemorrhage segmentation on the positive
studies, measured on the grid of the source series (the probability map is resampled back to
it and cut at 0.5).

``--geometry scanner`` generates 512 x 512 x 40 series, as a scanner sends them;
``--geometry model`` generates them directly on the model's 96 x 96 x 32 grid (fast; what the
test suite re-checks against the card).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from pacs_ai.registry.bundle import read_bundle
from pacs_ai.registry.metrics import dice, study_level_report, summary
from pacs_ai.registry.preprocess import resample_volume
from pacs_ai.registry.runner import BundleModel
from pacs_ai.synth import generate_ct_head

BUNDLE = Path(__file__).resolve().parent
HELD_OUT_SEEDS = 9_000_000
GEOMETRIES = {"scanner": (512, 40), "model": (96, 32)}


def evaluate(studies: int, geometry: str, first_seed: int = HELD_OUT_SEEDS) -> dict[str, object]:
    """Run the bundle on ``studies`` held-out studies and compute the card's metrics."""
    bundle = read_bundle(BUNDLE)
    model = BundleModel(bundle)
    assert bundle.extras.operating_point is not None
    threshold = bundle.extras.operating_point.threshold
    size, slices = GEOMETRIES[geometry]
    labels, scores, dices = [], [], []
    for offset in range(studies):
        positive = offset % 2 == 1
        study = generate_ct_head(first_seed + offset, hemorrhage=positive, slices=slices, size=size)
        result = model.predict(study.datasets)
        labels.append(positive)
        scores.append(float(result["score"]))
        if positive:
            assert study.mask is not None
            probability = torch.as_tensor(result["pred"])[1].numpy()
            on_source = resample_volume(probability, study.mask.shape) >= 0.5
            dices.append(dice(on_source, study.mask))
    report = study_level_report(labels, scores, threshold)
    mean_dice = summary(dices)
    report.update(
        geometry=f"{size}x{size}x{slices}",
        seeds=[first_seed, first_seed + studies - 1],
        mean_dice={
            "value": round(mean_dice.value, 4),
            "low": round(mean_dice.low, 4),
            "high": round(mean_dice.high, 4),
        },
        median_dice=round(float(np.median(dices)), 4),
    )
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--studies", type=int, default=200)
    parser.add_argument("--geometry", choices=sorted(GEOMETRIES), default="scanner")
    parser.add_argument("--first-seed", type=int, default=HELD_OUT_SEEDS)
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument(
        "--update-metadata", action="store_true", help="write eval_metrics into metadata.json"
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    report = evaluate(args.studies, args.geometry, args.first_seed)
    report["wall_time_s"] = round(time.perf_counter() - started, 1)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    if args.update_metadata:
        metadata_file = BUNDLE / "configs" / "metadata.json"
        metadata = json.loads(metadata_file.read_text())
        metrics = metadata.setdefault("eval_metrics", {})
        metrics[f"{args.geometry}_geometry"] = {
            key: report[key]
            for key in ("geometry", "seeds", "studies", "auc", "sensitivity", "specificity")
        } | {"mean_dice": report["mean_dice"], "threshold": report["threshold"]}
        if args.geometry == "scanner":
            metrics["auc"] = report["auc"]["value"]  # type: ignore[index]
            metrics["mean_dice"] = report["mean_dice"]["value"]  # type: ignore[index]
        metadata_file.write_text(json.dumps(metadata, indent=4) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
