"""DICOM to model input: one path for training and use, whatever the source looks like."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from pacs_ai.registry.preprocess import (
    BRAIN_WINDOW,
    PreprocessError,
    apply_window,
    ct_head_input,
    ct_volume_hu,
    cxr_input,
    resample_mask,
    resample_volume,
)
from pacs_ai.registry.transforms import (
    LoadChestRadiographd,
    LoadCtHeadd,
    StudyScored,
    read_series,
    series_folders,
)
from pacs_ai.synth import generate_ct_head, generate_cxr, write_study

GRID = (16, 48, 48)


def test_slices_are_ordered_by_position_not_arrival() -> None:
    study = generate_ct_head(5, hemorrhage=True, slices=12, size=32)
    in_order = ct_volume_hu(study.datasets)
    shuffled = list(reversed(study.datasets))
    shuffled[0], shuffled[5] = shuffled[5], shuffled[0]
    np.testing.assert_array_equal(ct_volume_hu(shuffled), in_order)
    # Modality LUT: stored 0 is -1024 HU (RescaleIntercept), so air reads about -1000.
    assert in_order.min() < -900 and in_order.dtype == np.float32
    assert in_order.shape == (12, 32, 32)


def test_one_series_only() -> None:
    first = generate_ct_head(1, hemorrhage=False, slices=3, size=32).datasets
    second = generate_ct_head(2, hemorrhage=False, slices=3, size=32).datasets
    with pytest.raises(PreprocessError, match="expected one series, got 2"):
        ct_volume_hu([*first, *second])
    with pytest.raises(PreprocessError, match="no DICOM datasets"):
        ct_volume_hu([])


def test_windows_make_channels_in_unit_range() -> None:
    study = generate_ct_head(7, hemorrhage=True, slices=16, size=48)
    array = ct_head_input(study.datasets, shape=GRID, windows=(BRAIN_WINDOW, (100, 400)))
    assert array.shape == (2, *GRID) and array.dtype == np.float32
    assert array.min() >= 0.0 and array.max() <= 1.0
    hu = np.array([-20.0, 0.0, 40.0, 80.0, 200.0], dtype=np.float32)
    np.testing.assert_allclose(apply_window(hu, 40, 80), [0, 0, 0.5, 1, 1])
    # Blood (~70 HU) and bone (>700 HU) are alike in the brain window, apart in the wide one.
    mask = resample_mask(study.mask, GRID).astype(bool)  # type: ignore[arg-type]
    assert mask.any()
    assert array[1][mask].mean() < 0.6 < array[1].max()


def test_a_scanner_series_and_a_model_grid_series_look_alike() -> None:
    """Antialiased resampling: a 256-pixel series reduced to 48 keeps contrast, loses noise."""
    fine = ct_head_input(
        generate_ct_head(11, hemorrhage=False, slices=32, size=256).datasets, shape=GRID
    )
    coarse = ct_head_input(
        generate_ct_head(11, hemorrhage=False, slices=32, size=48).datasets, shape=GRID
    )
    # Same head (same seed and coverage): voxel by voxel within 1 HU in the brain window.
    assert float(np.abs(fine - coarse).mean()) < 0.0125


def test_resample_mask_keeps_half_covered_voxels() -> None:
    mask = np.zeros((4, 8, 8), dtype=np.uint8)
    mask[:, :4, :4] = 1
    small = resample_mask(mask, (2, 4, 4))
    assert small.sum() == 2 * 2 * 2 and small[:, :2, :2].all()
    same = resample_volume(mask.astype(np.float32), mask.shape)
    np.testing.assert_allclose(same, mask)


def test_monochrome1_and_2_give_the_same_input() -> None:
    m2 = generate_cxr(21, pneumothorax=True, size=256, photometric="MONOCHROME2")
    m1 = generate_cxr(21, pneumothorax=True, size=256, photometric="MONOCHROME1")
    a, b = cxr_input(m2.datasets, size=64), cxr_input(m1.datasets, size=64)
    assert a.shape == (1, 64, 64)
    assert float(np.abs(a - b).max()) < 0.02


def test_a_radiograph_is_padded_to_a_square() -> None:
    ds = copy.deepcopy(generate_cxr(3, pneumothorax=False, size=128).datasets[0])
    pixels = ds.pixel_array[:, 32:96].copy()  # a portrait crop, 128 x 64
    ds.Columns = 64
    ds.PixelData = pixels.tobytes()
    out = cxr_input([ds], size=32)
    assert out.shape == (1, 32, 32)
    assert float(out[0, :, :6].max()) == 0.0 and float(out[0, :, 10:22].max()) > 0.5
    with pytest.raises(PreprocessError, match="one image, got 2"):
        cxr_input([ds, ds], size=32)


def test_loaders_read_memory_folders_and_files_alike(tmp_path: Path) -> None:
    ct = generate_ct_head(4, hemorrhage=True, slices=8, size=32)
    cxr = generate_cxr(4, pneumothorax=True, size=128)
    ct_files = write_study(ct, tmp_path)
    write_study(cxr, tmp_path)
    folders = series_folders(tmp_path)
    assert len(folders) == 2 and str(ct_files[0].parent) in folders
    load_ct = LoadCtHeadd(keys="image", shape=(8, 16, 16))
    from_memory = load_ct({"image": ct.datasets})["image"]
    from_folder = load_ct({"image": str(ct_files[0].parent)})["image"]
    from_files = load_ct({"image": [str(p) for p in ct_files]})["image"]
    assert isinstance(from_memory, torch.Tensor) and from_memory.shape == (1, 8, 16, 16)
    torch.testing.assert_close(from_memory, from_folder)
    torch.testing.assert_close(from_memory, from_files)
    image = LoadChestRadiographd(keys="image", size=32)({"image": cxr.datasets})["image"]
    assert image.shape == (1, 32, 32)
    (tmp_path / "notes.txt").write_text("not DICOM")
    with pytest.raises(PreprocessError, match=r"notes\.txt is not a DICOM file"):
        read_series(tmp_path / "notes.txt")


def test_study_score_is_the_top_k_mean_of_the_channel() -> None:
    pred = torch.zeros(2, 4, 4)
    pred[1, 0, :3] = torch.tensor([0.9, 0.8, 0.7])
    scored = StudyScored(keys="pred", channel=1, k=2)({"pred": pred})
    assert scored["score"] == pytest.approx(0.85)
    vector = StudyScored(keys="pred", channel=1, k=16)({"pred": torch.tensor([0.3, 0.7])})
    assert vector["score"] == pytest.approx(0.7)
    with pytest.raises(ValueError, match="k must be at least 1"):
        StudyScored(keys="pred", k=0)
