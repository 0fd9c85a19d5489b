"""Measure the chest radiograph pneumothorax bundle on held-out synthetic images.

    python models/cxr-pneumothorax/evaluate.py                      # detector size (1024)
    python models/cxr-pneumothorax/evaluate.py --geometry model     # the model's 256 x 256
    python models/cxr-pneumothorax/evaluate.py --update-metadata    # write eval_metrics

Held-out images come from seeds ``HELD_OUT_SEEDS`` onwards, a range neither training nor
validation touched; odd offsets are positive. Each image goes through the bundle exactly as
the pipeline runs it (``BundleModel.predict`` on the pydicom dataset). Reported: AUC with its
DeLong 95% interval, sensitivity and specificity at the bundle's operating point (Wilson
intervals), and the AUC on the small pneumothoraces alone (rim under 2 cm, BTS 2010).
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
from pacs_ai.registry.metrics import auc_delong, study_level_report
from pacs_ai.registry.runner import BundleModel
from pacs_ai.synth import generate_cxr

BUNDLE = Path(__file__).resolve().parent
HELD_OUT_SEEDS = 9_500_000
GEOMETRIES = {"detector": 1024, "model": 256}


def evaluate(studies: int, geometry: str, first_seed: int = HELD_OUT_SEEDS) -> dict[str, object]:
    """Run the bundle on ``studies`` held-out images and compute the card's metrics."""
    bundle = read_bundle(BUNDLE)
    model = BundleModel(bundle)
    assert bundle.extras.operating_point is not None
    threshold = bundle.extras.operating_point.threshold
    labels, scores, small = [], [], []
    for offset in range(studies):
        positive = offset % 2 == 1
        study = generate_cxr(first_seed + offset, pneumothorax=positive, size=GEOMETRIES[geometry])
        labels.append(positive)
        scores.append(float(model.predict(study.datasets)["score"]))
        small.append(not positive or study.truth.get("size") == "small")
    report = study_level_report(labels, scores, threshold)
    keep = np.asarray(small)
    small_auc = auc_delong(np.asarray(labels)[keep], np.asarray(scores)[keep])
    report.update(
        geometry=f"{GEOMETRIES[geometry]}x{GEOMETRIES[geometry]}",
        seeds=[first_seed, first_seed + studies - 1],
        small_pneumothorax_auc={
            "value": round(small_auc.value, 4),
            "low": round(small_auc.low, 4),
            "high": round(small_auc.high, 4),
            "positives": int(keep.sum() - (~np.asarray(labels)).sum()),
        },
    )
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--studies", type=int, default=400)
    parser.add_argument("--geometry", choices=sorted(GEOMETRIES), default="detector")
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
        } | {"threshold": report["threshold"]}
        if args.geometry == "detector":
            metrics["auc"] = report["auc"]["value"]  # type: ignore[index]
        metadata_file.write_text(json.dumps(metadata, indent=4) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
