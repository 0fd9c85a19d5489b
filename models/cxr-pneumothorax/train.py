"""Train the chest radiograph pneumothorax bundle on synthetic studies, on the CPU.

    python models/cxr-pneumothorax/train.py              # the shipped weights (~6 min, 2 cores)
    python models/cxr-pneumothorax/train.py --smoke --output-dir /tmp/cxr   # seconds, for CI

The network and the preprocessing come from the bundle's own ``configs/inference.json``:
what is trained here is what the registry and the pipeline load. Images come from
``pacs_ai.synth.generate_cxr`` with seeds from ``TRAIN_SEEDS`` and ``VALIDATION_SEEDS``; the
held-out evaluation (``evaluate.py``) uses yet another range. Most images are generated at the
model's size (fast); a share at detector sizes, and a share stored MONOCHROME1, go through the
same normalisation and resizing as real images.

The operating point is chosen on the validation images, at the maximal Youden index, and
written to ``configs/pacs_ai.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.utils import set_determinism

from pacs_ai.registry.metrics import auc_delong, threshold_youden
from pacs_ai.registry.training import save_training_result
from pacs_ai.synth import generate_cxr

BUNDLE = Path(__file__).resolve().parent
TRAIN_SEEDS = 3_000_000
VALIDATION_SEEDS = 4_000_000
#: Detector matrix sizes besides the model's own.
DETECTOR_SIZES = (512, 1024)


def bundle_parts() -> tuple[ConfigParser, int]:
    """The bundle's parsed config and the input size its metadata declares."""
    parser = ConfigParser()
    parser.read_config(BUNDLE / "configs" / "inference.json")
    parser.read_meta(BUNDLE / "configs" / "metadata.json")
    parser["bundle_root"] = str(BUNDLE)
    shape = parser["_meta_#network_data_format#inputs#image#spatial_shape"]
    return parser, int(shape[0])


def make_set(
    parser: ConfigParser, size: int, first_seed: int, count: int, detector_share: float
) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs (float16) and labels for ``count`` seeds, half of them positive."""
    preprocessing = parser.get_parsed_content("preprocessing")
    images = np.zeros((count, 1, size, size), dtype=np.float16)
    labels = np.zeros(count, dtype=bool)
    rng = np.random.default_rng(first_seed)
    for index in range(count):
        positive = index % 2 == 1
        source = size
        if rng.random() < detector_share:
            source = DETECTOR_SIZES[int(rng.integers(len(DETECTOR_SIZES)))]
        photometric = "MONOCHROME1" if rng.random() < 0.2 else "MONOCHROME2"
        study = generate_cxr(
            first_seed + index, pneumothorax=positive, size=source, photometric=photometric
        )
        images[index] = preprocessing({"image": study.datasets})["image"].numpy()
        labels[index] = positive
    return images, labels


def probabilities(network: torch.nn.Module, images: np.ndarray) -> np.ndarray:
    """Pneumothorax probability of each image (softmax channel 1, as the bundle scores)."""
    network.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(images), 64):
            batch = torch.from_numpy(images[start : start + 64]).float()
            out.append(torch.softmax(network(batch), dim=1)[:, 1].numpy())
    return np.concatenate(out)


def main() -> int:
    parser_args = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser_args.add_argument("--smoke", action="store_true", help="a few steps, for CI")
    parser_args.add_argument(
        "--output-dir", type=Path, help="default: the bundle itself (and its operating point)"
    )
    parser_args.add_argument("--train-studies", type=int, default=1600)
    parser_args.add_argument("--validation-studies", type=int, default=400)
    parser_args.add_argument("--steps", type=int, default=1000)
    parser_args.add_argument("--batch-size", type=int, default=16)
    parser_args.add_argument("--lr", type=float, default=3e-3)
    parser_args.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser_args.parse_args()
    if args.smoke:
        args.train_studies, args.validation_studies, args.steps, args.batch_size = 8, 4, 3, 4
        args.output_dir = args.output_dir or Path(tempfile.mkdtemp(prefix="cxr-smoke-"))
    output_dir = args.output_dir or BUNDLE
    torch.set_num_threads(args.threads)
    set_determinism(seed=0)
    started = time.perf_counter()

    config, size = bundle_parts()
    network = config.get_parsed_content("network_def")
    train_x, train_y = make_set(config, size, TRAIN_SEEDS, args.train_studies, 0.25)
    val_x, val_y = make_set(config, size, VALIDATION_SEEDS, args.validation_studies, 0.25)
    generated = time.perf_counter() - started
    print(f"generated {len(train_x)} + {len(val_x)} images in {generated:.0f} s", flush=True)

    loss_fn = torch.nn.CrossEntropyLoss()
    optimiser = torch.optim.AdamW(network.parameters(), lr=args.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, args.lr, total_steps=args.steps)
    rng = np.random.default_rng(1)
    network.train()
    running = 0.0
    for step in range(1, args.steps + 1):
        batch = rng.choice(len(train_x), size=args.batch_size, replace=False)
        x = torch.from_numpy(train_x[batch]).float()
        y = torch.from_numpy(train_y[batch].astype(np.int64))
        optimiser.zero_grad()
        loss = loss_fn(network(x), y)
        loss.backward()
        optimiser.step()
        schedule.step()
        running = 0.98 * running + 0.02 * loss.item() if step > 1 else loss.item()
        if step % 100 == 0 or step == args.steps:
            elapsed = time.perf_counter() - started
            print(f"step {step}/{args.steps} loss {running:.4f} ({elapsed:.0f} s)", flush=True)

    scores = probabilities(network, val_x)
    auc = auc_delong(val_y, scores)
    threshold = threshold_youden(val_y, scores)
    wall = time.perf_counter() - started
    print(
        f"validation AUC {auc.value:.3f} ({auc.low:.3f}-{auc.high:.3f}); threshold {threshold:.4f}"
    )

    log = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "train_seeds": [TRAIN_SEEDS, TRAIN_SEEDS + args.train_studies - 1],
        "validation_seeds": [VALIDATION_SEEDS, VALIDATION_SEEDS + args.validation_studies - 1],
        "steps": args.steps,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "final_loss": round(running, 4),
        "validation_auc": round(auc.value, 4),
        "threshold": round(threshold, 4),
        "wall_time_s": round(wall, 1),
    }
    weights = save_training_result(
        network=network, output_dir=output_dir, bundle_dir=BUNDLE, log=log, threshold=threshold
    )
    print(f"wrote {weights} in {wall:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
