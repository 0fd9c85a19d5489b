"""CT head generator: geometry, pixel values, hemorrhage truth, read-back with pydicom."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.uid import CTImageStorage

from pacs_ai.synth import SyntheticStudy, generate_ct_head, write_study
from pacs_ai.synth.ct_phantom import BLOOD_HU_RANGE, build_ct_head_phantom
from pacs_ai.synth.seeding import rng_for

SLICES, SIZE = 8, 64


@pytest.fixture(scope="module")
def positive() -> SyntheticStudy:
    return generate_ct_head(11, hemorrhage=True, slices=SLICES, size=SIZE)


def _volume_hu(study: SyntheticStudy) -> np.ndarray:
    frames = [ds.pixel_array.astype(np.float32) for ds in study.datasets]
    ds = study.datasets[0]
    return np.stack(frames) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


@pytest.mark.parametrize("seed", range(6))
def test_phantom_blood_lies_in_the_mask_within_50_to_90_hu(seed: int) -> None:
    phantom = build_ct_head_phantom(
        rng_for(seed, "test"), hemorrhage=True, slices=12, size=96, slice_thickness=5.0
    )
    inside = phantom.mask.astype(bool)
    assert inside.any()
    low, high = BLOOD_HU_RANGE
    assert phantom.hu[inside].min() >= low
    assert phantom.hu[inside].max() <= high
    assert phantom.lesions and all(lesion["kind"] for lesion in phantom.lesions)


@pytest.mark.parametrize("seed", range(4))
def test_phantom_negative_has_an_empty_mask_and_normal_tissue(seed: int) -> None:
    phantom = build_ct_head_phantom(
        rng_for(seed, "test"), hemorrhage=False, slices=12, size=96, slice_thickness=5.0
    )
    assert not phantom.mask.any()
    assert phantom.lesions == []
    assert phantom.hu.min() == pytest.approx(-1000.0, abs=1.0)  # air
    assert 700.0 <= float(np.percentile(phantom.hu, 99.5)) <= 1500.0  # skull


@pytest.mark.parametrize("kind", ["intraparenchymal", "subdural"])
def test_each_hemorrhage_kind_can_be_asked_for(kind: str) -> None:
    for seed in range(3):
        phantom = build_ct_head_phantom(
            rng_for(seed, kind),
            hemorrhage=True,
            slices=12,
            size=96,
            slice_thickness=5.0,
            kinds=(kind,),
        )
        assert {lesion["kind"] for lesion in phantom.lesions} == {kind}
        assert phantom.mask.any()


def test_unknown_hemorrhage_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="hemorrhage kinds"):
        generate_ct_head(1, hemorrhage=True, slices=2, size=32, kinds=("epidural",))


def test_study_mask_and_label_agree(positive: SyntheticStudy) -> None:
    negative = generate_ct_head(12, hemorrhage=False, slices=SLICES, size=SIZE)
    assert positive.label is True and positive.mask is not None and positive.mask.any()
    assert negative.label is False and negative.mask is not None and not negative.mask.any()
    assert positive.mask.shape == (SLICES, SIZE, SIZE)
    assert positive.mask.dtype == np.uint8
    assert positive.truth["mask_voxels"] == int(positive.mask.sum())


def test_noisy_blood_still_reads_as_blood(positive: SyntheticStudy) -> None:
    hu = _volume_hu(positive)
    assert positive.mask is not None
    mean_in_blood = float(hu[positive.mask.astype(bool)].mean())
    assert 45.0 <= mean_in_blood <= 95.0


def test_series_geometry_is_consistent(positive: SyntheticStudy) -> None:
    datasets = positive.datasets
    assert len(datasets) == SLICES
    assert {ds.SeriesInstanceUID for ds in datasets} == {datasets[0].SeriesInstanceUID}
    assert len({ds.SOPInstanceUID for ds in datasets}) == SLICES
    assert [ds.InstanceNumber for ds in datasets] == list(range(1, SLICES + 1))
    spacing = float(datasets[0].SpacingBetweenSlices)
    assert float(datasets[0].SliceThickness) == spacing
    assert 2.5 <= spacing <= 5.0
    z = [float(ds.ImagePositionPatient[2]) for ds in datasets]
    assert np.allclose(np.diff(z), spacing)
    assert [float(ds.SliceLocation) for ds in datasets] == z
    pixel = float(datasets[0].PixelSpacing[0])
    assert pixel * SIZE == pytest.approx(250.0)
    x0 = float(datasets[0].ImagePositionPatient[0])
    assert x0 == pytest.approx(-(SIZE - 1) / 2 * pixel, abs=1e-4)
    assert {ds.FrameOfReferenceUID for ds in datasets} == {datasets[0].FrameOfReferenceUID}
    assert [float(v) for v in datasets[0].ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]


def test_ct_pixel_module_and_windows(positive: SyntheticStudy) -> None:
    ds = positive.datasets[0]
    assert ds.SOPClassUID == CTImageStorage
    assert ds.Modality == "CT"
    assert ds.BodyPartExamined == "HEAD"
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (16, 12, 11, 0)
    assert (float(ds.RescaleIntercept), float(ds.RescaleSlope)) == (-1024.0, 1.0)
    assert (float(ds.WindowCenter[0]), float(ds.WindowWidth[0])) == (40.0, 80.0)
    assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "AXIAL"]


def test_written_files_read_back(positive: SyntheticStudy, tmp_path: Path) -> None:
    paths = write_study(positive, tmp_path)
    assert len(paths) == SLICES
    first = dcmread(paths[0])
    assert first.pixel_array.shape == (SIZE, SIZE)
    assert first.file_meta.MediaStorageSOPInstanceUID == first.SOPInstanceUID
    back = np.stack([dcmread(p).pixel_array for p in paths])
    original = np.stack([ds.pixel_array for ds in positive.datasets])
    assert np.array_equal(back, original)
    mask = np.load(tmp_path / positive.study_instance_uid / "mask.npy")
    assert positive.mask is not None and np.array_equal(mask, positive.mask)


def test_default_size_is_512() -> None:
    study = generate_ct_head(5, hemorrhage=False, slices=1)
    ds = study.datasets[0]
    assert (ds.Rows, ds.Columns) == (512, 512)
    assert ds.pixel_array.shape == (512, 512)
    assert float(ds.PixelSpacing[0]) == pytest.approx(250.0 / 512)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        generate_ct_head(1, hemorrhage=False, slices=0, size=64)
    with pytest.raises(ValueError):
        generate_ct_head(1, hemorrhage=False, slices=4, size=64, slice_thickness=20.0)
