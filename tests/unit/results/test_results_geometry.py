"""Mask geometry: volume against an independent count, key slice, outline along pixel edges."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
from numpy.typing import NDArray

from pacs_ai.results import volume_ml
from pacs_ai.results.geometry import has_volume_geometry, image_outline, key_frame, outline
from pacs_ai.synth import SyntheticStudy


def _shoelace(polyline: NDArray[np.float64]) -> float:
    x, y = polyline[:-1, 0], polyline[:-1, 1]
    return float((x * np.roll(y, -1) - np.roll(x, -1) * y).sum() / 2.0)


def _rasterise(polyline: NDArray[np.float64], shape: tuple[int, int]) -> NDArray[np.bool_]:
    """Pixels whose centre lies inside the polyline (even-odd rule)."""
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]] + 0.5
    inside = np.zeros(shape, dtype=bool)
    for (x0, y0), (x1, y1) in itertools.pairwise(polyline):
        if y0 == y1:
            continue  # a horizontal edge never crosses a pixel centre's row
        crosses = ((y0 > y) != (y1 > y)) & (x < x0 + (y - y0) * (x1 - x0) / (y1 - y0))
        inside ^= crosses
    return inside


def test_volume_is_voxels_times_voxel_size(ct_positive: SyntheticStudy) -> None:
    assert ct_positive.mask is not None
    first = ct_positive.datasets[0]
    voxel_mm3 = (
        float(first.PixelSpacing[0])
        * float(first.PixelSpacing[1])
        * float(first.SpacingBetweenSlices)
    )
    expected = int(ct_positive.mask.sum()) * voxel_mm3 / 1000.0
    assert expected > 0
    assert volume_ml(ct_positive.mask, ct_positive.datasets) == pytest.approx(expected, rel=1e-6)


def test_volume_does_not_depend_on_slice_order(ct_positive: SyntheticStudy) -> None:
    assert ct_positive.mask is not None
    order = np.random.default_rng(0).permutation(len(ct_positive.datasets))
    shuffled = [ct_positive.datasets[i] for i in order]
    assert volume_ml(ct_positive.mask[order], shuffled) == pytest.approx(
        volume_ml(ct_positive.mask, ct_positive.datasets), rel=1e-9
    )


def test_volume_of_an_irregular_stack_uses_the_gaps_around_each_slice(
    ct_positive: SyntheticStudy,
) -> None:
    images = [copy.deepcopy(ds) for ds in ct_positive.datasets[:3]]
    for ds, z in zip(images, (0.0, 2.0, 6.0), strict=True):
        ds.ImagePositionPatient = [0.0, 0.0, z]
    mask = np.zeros((3, int(images[0].Rows), int(images[0].Columns)), dtype=bool)
    mask[:, 0, :10] = True  # 10 pixels on each slice
    pixel_mm2 = float(images[0].PixelSpacing[0]) * float(images[0].PixelSpacing[1])
    # extents: 2 mm (end), (2 + 4) / 2 = 3 mm, 4 mm (end)
    assert volume_ml(mask, images) == pytest.approx(10 * pixel_mm2 * (2 + 3 + 4) / 1000.0)


def test_volume_of_a_single_slice_uses_its_thickness(ct_positive: SyntheticStudy) -> None:
    image = ct_positive.datasets[0]
    mask = np.zeros((int(image.Rows), int(image.Columns)), dtype=bool)
    mask[:2, :2] = True
    pixel_mm2 = float(image.PixelSpacing[0]) * float(image.PixelSpacing[1])
    expected = 4 * pixel_mm2 * float(image.SliceThickness) / 1000.0
    assert volume_ml(mask, [image]) == pytest.approx(expected)


def test_volume_refuses_a_radiograph_and_a_mismatched_mask(
    cxr_positive: SyntheticStudy, ct_positive: SyntheticStudy
) -> None:
    assert cxr_positive.mask is not None and ct_positive.mask is not None
    assert not has_volume_geometry(cxr_positive.datasets)
    assert has_volume_geometry(ct_positive.datasets)
    with pytest.raises(ValueError, match="volume"):
        volume_ml(cxr_positive.mask, cxr_positive.datasets)
    with pytest.raises(ValueError, match="shape"):
        volume_ml(ct_positive.mask[:-1], ct_positive.datasets)


def test_volume_refuses_two_images_at_one_position(ct_positive: SyntheticStudy) -> None:
    twin = copy.deepcopy(ct_positive.datasets[0])
    twin.SOPInstanceUID = "1.2.3.4"
    images = [ct_positive.datasets[0], twin]
    with pytest.raises(ValueError, match="position"):
        volume_ml(np.zeros((2, int(twin.Rows), int(twin.Columns)), dtype=bool), images)


def test_key_frame_is_the_largest_slice(ct_positive: SyntheticStudy) -> None:
    assert ct_positive.mask is not None
    areas = ct_positive.mask.reshape(len(ct_positive.datasets), -1).sum(axis=1)
    assert key_frame(ct_positive.mask) == int(np.argmax(areas))
    with pytest.raises(ValueError, match="empty"):
        key_frame(np.zeros((2, 3, 3), dtype=bool))


def test_outline_of_a_hemorrhage_encloses_exactly_its_pixels(ct_positive: SyntheticStudy) -> None:
    assert ct_positive.mask is not None
    frame = ct_positive.mask[key_frame(ct_positive.mask)].astype(bool)
    polyline = outline(frame)
    assert (polyline[0] == polyline[-1]).all()
    assert _shoelace(polyline) == pytest.approx(frame.sum())
    assert (_rasterise(polyline, frame.shape) == frame).all()


def test_outline_of_a_pneumothorax_rim_covers_its_main_region(
    cxr_positive: SyntheticStudy,
) -> None:
    assert cxr_positive.mask is not None
    frame = cxr_positive.mask.astype(bool)
    polyline = outline(frame)
    inside = _rasterise(polyline, frame.shape)
    # the rim, joined by 8-connectivity; stray pixels of the synthetic mask stay outside
    assert not (inside & ~frame).any()
    assert inside.sum() == pytest.approx(_shoelace(polyline))
    assert inside.sum() >= 0.95 * frame.sum()


def test_outline_takes_the_largest_region_and_encloses_its_holes() -> None:
    frame = np.zeros((12, 12), dtype=bool)
    frame[1:8, 1:8] = True
    frame[4, 4] = False  # a hole
    frame[10, 10] = True  # a smaller region
    polyline = outline(frame)
    assert _shoelace(polyline) == pytest.approx(49.0)
    assert polyline[:-1].tolist() == [[1, 1], [8, 1], [8, 8], [1, 8]]


def test_outline_joins_diagonal_neighbours_into_one_region() -> None:
    frame = np.zeros((6, 6), dtype=bool)
    frame[1, 1] = frame[1, 2] = frame[2, 2] = True  # an L of 3 pixels
    frame[3, 3] = True  # touches the L at a corner only
    frame[5, 0] = True  # a region of its own
    polyline = outline(frame)
    assert _shoelace(polyline) == pytest.approx(4.0)
    expected = frame.copy()
    expected[5, 0] = False
    assert (_rasterise(polyline, frame.shape) == expected).all()
    assert polyline.tolist().count([3.0, 3.0]) == 2  # the pinch at the shared corner


def test_outline_refuses_empty_or_3d_frames() -> None:
    with pytest.raises(ValueError, match="empty"):
        outline(np.zeros((3, 3), dtype=bool))
    with pytest.raises(ValueError, match="2-D"):
        outline(np.ones((2, 3, 3), dtype=bool))


def test_image_outline_is_the_image_border() -> None:
    border = image_outline(rows=4, columns=6)
    assert border.tolist() == [[0, 0], [6, 0], [6, 4], [0, 4], [0, 0]]
    assert _shoelace(border) == pytest.approx(24.0)
