"""Train the CT head hemorrhage bundle on synthetic studies, on the CPU.

    python models/ct-head-hemorrhage/train.py            # the shipped weights (~15 min, 2 cores)
    python models/ct-head-hemorrhage/train.py --smoke --output-dir /tmp/ct   # seconds, for CI

The network, the preprocessing and the input grid come from the bundle's own
``configs/inference.json`` and ``configs/metadata.json``: what is trained here is what the
registry and the pipeline load. Studies come from ``pacs_ai.synth.generate_ct_head`` with
seeds from ``TRAIN_SEEDS`` and ``VALIDATION_SEEDS``; the held-out evaluation
(``evaluate.py``) uses yet another range. Half the studies are generated directly at the model's
grid (fast); the other half at scanner-like matrix sizes and slice counts goes through the same
resampling as real studies, so the model does not learn one source resolution.

The operating point (the threshold at which the study score calls a bleed) is chosen on the
validation studies, at the maximal Youden index, and written to ``configs/pacs_ai.json``.
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
from monai.losses import DiceCELoss
from monai.utils import set_determinism

from pacs_ai.registry.metrics import auc_delong, threshold_youden
from pacs_ai.registry.preprocess import resample_mask
from pacs_ai.registry.training import save_training_result
from pacs_ai.registry.transforms import top_k_mean
from pacs_ai.synth import generate_ct_head

BUNDLE = Path(__file__).resolve().parent
TRAIN_SEEDS = 1_000_000
VALIDATION_SEEDS = 2_000_000
#: Source geometries besides the model grid: (matrix size, slice count).
SCANNER_GEOMETRIES = ((256, 40), (512, 40), (256, 28), (192, 48))
#: Share of the studies generated at one of those geometries.
SCANNER_SHARE = 0.5


def bundle_parts() -> tuple[ConfigParser, tuple[int, ...]]:
    """The bundle's parsed config and the input (channels, *grid) its metadata declares."""
    parser = ConfigParser()
    parser.read_config(BUNDLE / "configs" / "inference.json")
    parser.read_meta(BUNDLE / "configs" / "metadata.json")
    parser["bundle_root"] = str(BUNDLE)
    image = parser["_meta_#network_data_format#inputs#image"]
    return parser, (int(image["num_channels"]), *(int(v) for v in image["spatial_shape"]))


def make_set(
    parser: ConfigParser,
    input_shape: tuple[int, ...],
    first_seed: int,
    count: int,
    scanner_share: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images (float16), masks (uint8) on the model grid and study labels, for ``count`` seeds."""
    preprocessing = parser.get_parsed_content("preprocessing")
    shape = input_shape[1:]
    images = np.zeros((count, *input_shape), dtype=np.float16)
    masks = np.zeros((count, 1, *shape), dtype=np.uint8)
    labels = np.zeros(count, dtype=bool)
    rng = np.random.default_rng(first_seed)
    for index in range(count):
        seed = first_seed + index
        positive = index % 2 == 1
        if rng.random() < scanner_share:
            size, slices = SCANNER_GEOMETRIES[int(rng.integers(len(SCANNER_GEOMETRIES)))]
        else:
            size, slices = shape[1], shape[0]
        study = generate_ct_head(seed, hemorrhage=positive, slices=slices, size=size)
        images[index] = preprocessing({"image": study.datasets})["image"].numpy()
        assert study.mask is not None
        masks[index, 0] = resample_mask(study.mask, shape)
        labels[index] = positive
    return images, masks, labels


def study_scores(network: torch.nn.Module, images: np.ndarray, k: int) -> np.ndarray:
    """The bundle's study score (top-k mean of the hemorrhage probability) for each image."""
    network.eval()
    scores = []
    with torch.no_grad():
        for image in images:
            probabilities = torch.softmax(network(torch.from_numpy(image[None]).float()), dim=1)
            scores.append(top_k_mean(probabilities[0, 1], k))
    return np.asarray(scores)


def main() -> int:
    parser_args = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser_args.add_argument("--smoke", action="store_true", help="a few steps, for CI")
    parser_args.add_argument(
        "--output-dir", type=Path, help="default: the bundle itself (and its operating point)"
    )
    parser_args.add_argument("--train-studies", type=int, default=720)
    parser_args.add_argument("--validation-studies", type=int, default=120)
    parser_args.add_argument("--steps", type=int, default=2400)
    parser_args.add_argument("--batch-size", type=int, default=2)
    parser_args.add_argument("--lr", type=float, default=2e-3)
    parser_args.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser_args.parse_args()
    if args.smoke:
        args.train_studies, args.validation_studies, args.steps = 4, 4, 3
        args.output_dir = args.output_dir or Path(tempfile.mkdtemp(prefix="ct-smoke-"))
    output_dir = args.output_dir or BUNDLE
    torch.set_num_threads(args.threads)
    set_determinism(seed=0)
    started = time.perf_counter()

    config, input_shape = bundle_parts()
    k = int(config["postprocessing#transforms#1#k"])
    network = config.get_parsed_content("network_def")
    train_x, train_y, _ = make_set(
        config, input_shape, TRAIN_SEEDS, args.train_studies, SCANNER_SHARE
    )
    val_x, _, val_labels = make_set(
        config, input_shape, VALIDATION_SEEDS, args.validation_studies, SCANNER_SHARE
    )
    generated = time.perf_counter() - started
    print(f"generated {len(train_x)} + {len(val_x)} studies in {generated:.0f} s", flush=True)

    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, batch=True)
    optimiser = torch.optim.AdamW(network.parameters(), lr=args.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, args.lr, total_steps=args.steps)
    rng = np.random.default_rng(1)
    network.train()
    running = 0.0
    for step in range(1, args.steps + 1):
        batch = rng.choice(len(train_x), size=args.batch_size, replace=False)
        x = torch.from_numpy(train_x[batch]).float()
        y = torch.from_numpy(train_y[batch]).long()
        if rng.random() < 0.5:  # left-right mirror: bleeds and heads occur on both sides
            x, y = x.flip(-1), y.flip(-1)
        optimiser.zero_grad()
        loss = loss_fn(network(x), y)
        loss.backward()
        optimiser.step()
        schedule.step()
        running = 0.98 * running + 0.02 * loss.item() if step > 1 else loss.item()
        if step % 100 == 0 or step == args.steps:
            elapsed = time.perf_counter() - started
            print(f"step {step}/{args.steps} loss {running:.4f} ({elapsed:.0f} s)", flush=True)

    scores = study_scores(network, val_x, k)
    auc = auc_delong(val_labels, scores)
    threshold = threshold_youden(val_labels, scores)
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
