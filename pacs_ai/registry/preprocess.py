"""From DICOM datasets to the arrays our demo models take, the same in training and in use.

A model sees its study through one function here: the training scripts under ``models/``
call it on the synthetic studies they learn from, and the bundle's ``preprocessing`` (through
:mod:`pacs_ai.registry.transforms`) calls it on the studies the archive receives. Keeping a
single path is what makes a metric measured at training time hold in the pipeline.

Grey levels come from the DICOM pixel module as the standard defines them: the Modality LUT
(RescaleSlope/RescaleIntercept, PS3.3 C.11.1) gives Hounsfield units for CT, and
MONOCHROME1 images (PS3.3 C.7.6.3.1.2) are inverted so that bright means dense for every
radiograph.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from pydicom.dataset import Dataset

#: Brain window (centre, width) in HU: the grey levels a reader of a head CT looks at.
BRAIN_WINDOW = (40.0, 80.0)


class PreprocessError(ValueError):
    """The datasets cannot be made into the model's input; the message says why."""


def _one_series(datasets: Sequence[Dataset]) -> None:
    if not datasets:
        raise PreprocessError("no DICOM datasets to read")
    series = {str(ds.get("SeriesInstanceUID", "")) for ds in datasets}
    if len(series) > 1:
        raise PreprocessError(f"expected one series, got {len(series)}: {sorted(series)}")
    shapes = {(int(ds.Rows), int(ds.Columns)) for ds in datasets}
    if len(shapes) > 1:
        raise PreprocessError(f"slices of different sizes in one series: {sorted(shapes)}")


def slice_position(ds: Dataset) -> float:
    """Distance of a slice along the normal of its plane (PS3.3 C.7.6.2.1.1)."""
    orientation = ds.get("ImageOrientationPatient")
    position = ds.get("ImagePositionPatient")
    if orientation is None or position is None:
        return float(ds.get("InstanceNumber", 0) or 0)
    row = np.asarray([float(v) for v in orientation[:3]])
    column = np.asarray([float(v) for v in orientation[3:]])
    return float(np.dot(np.cross(row, column), [float(v) for v in position]))


def _modality_lut(ds: Dataset) -> NDArray[np.float32]:
    """Stored values through the linear Modality LUT (PS3.3 C.11.1.1.2)."""
    pixels = ds.pixel_array.astype(np.float32)
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    return pixels * np.float32(slope) + np.float32(intercept)


def ct_volume_hu(datasets: Sequence[Dataset]) -> NDArray[np.float32]:
    """Stack one axial CT series into Hounsfield units, ``(slices, rows, columns)``.

    Slices are ordered by their position along the normal of the image plane, inferior to
    superior for an axial series, so arrival order and InstanceNumber gaps do not matter.

    Raises
    ------
    PreprocessError
        When the datasets are not one series of equally sized slices.
    """
    _one_series(datasets)
    ordered = sorted(datasets, key=slice_position)
    return np.stack([_modality_lut(ds) for ds in ordered]).astype(np.float32, copy=False)


def resample_volume(volume: NDArray[np.float32], shape: Sequence[int]) -> NDArray[np.float32]:
    """Resample ``(slices, rows, columns)`` to ``shape`` with antialiased linear filters.

    Each axis is resampled with a triangle filter widened by the reduction factor (what
    :func:`torch.nn.functional.interpolate` calls ``antialias``), so a 512-pixel slice
    reduced to 96 averages its pixels instead of sampling every fifth one: the noise and
    partial volume the model sees at its own resolution do not depend on the source size.
    """
    depth, rows, columns = (int(v) for v in shape)
    tensor = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))
    in_plane = F.interpolate(
        tensor[:, None], size=(rows, columns), mode="bilinear", antialias=True, align_corners=False
    )[:, 0]
    # Along the slices: the same filter, on (rows, 1, slices, columns) images.
    stacked = in_plane.permute(1, 0, 2).unsqueeze(1)
    resampled = F.interpolate(
        stacked, size=(depth, columns), mode="bilinear", antialias=True, align_corners=False
    )
    return resampled[:, 0].permute(1, 0, 2).contiguous().numpy()


def resample_mask(mask: NDArray[np.uint8], shape: Sequence[int]) -> NDArray[np.uint8]:
    """A label mask on the model's grid: the voxels at least half covered by the label."""
    fraction = resample_volume(mask.astype(np.float32), shape)
    return (fraction >= 0.5).astype(np.uint8)


def apply_window(values: NDArray[np.float32], centre: float, width: float) -> NDArray[np.float32]:
    """Map a VOI window to [0, 1], clipping outside it (linear function, PS3.3 C.11.2.1.2)."""
    low = centre - width / 2
    return np.clip((values - np.float32(low)) / np.float32(width), 0.0, 1.0).astype(np.float32)


def ct_head_input(
    datasets: Sequence[Dataset],
    *,
    shape: Sequence[int],
    windows: Sequence[Sequence[float]] = (BRAIN_WINDOW,),
) -> NDArray[np.float32]:
    """The CT head model's input: windowed HU on a fixed grid, one channel per window.

    Parameters
    ----------
    datasets : sequence of pydicom.dataset.Dataset
        One axial CT series, any slice count and matrix size.
    shape : sequence of int
        ``(slices, rows, columns)`` of the model grid; the whole series is resampled to it,
        so the slice count of the scan does not change what the model is shown.
    windows : sequence of (centre, width)
        VOI windows in HU, each giving one channel; the brain window alone by default.

    Returns
    -------
    numpy.ndarray of float32
        ``(len(windows), *shape)``, values in [0, 1].
    """
    resampled = resample_volume(ct_volume_hu(datasets), shape)
    return np.stack([apply_window(resampled, float(c), float(w)) for c, w in windows])


def radiograph_pixels(ds: Dataset) -> NDArray[np.float32]:
    """A projection radiograph's grey levels with bright meaning dense (MONOCHROME1 inverted)."""
    pixels = _modality_lut(ds)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if photometric == "MONOCHROME1":
        pixels = np.float32(pixels.max() + pixels.min()) - pixels
    elif photometric != "MONOCHROME2":
        raise PreprocessError(f"a radiograph must be MONOCHROME1 or 2, not {photometric}")
    return pixels


def cxr_input(
    datasets: Sequence[Dataset],
    *,
    size: int,
    percentiles: Sequence[float] = (0.5, 99.5),
) -> NDArray[np.float32]:
    """The chest radiograph model's input: ``(1, size, size)`` grey levels in [0, 1].

    Contrast is normalised between two percentiles of the image itself, since detectors,
    bit depths and VOI windows differ between vendors; the image is padded to a square
    (with 0, which is air after normalisation) so that the anatomy keeps its proportions,
    then reduced with an antialiased filter.

    Raises
    ------
    PreprocessError
        When ``datasets`` is not exactly one single-frame image.
    """
    if len(datasets) != 1:
        raise PreprocessError(f"a chest radiograph is one image, got {len(datasets)}")
    pixels = radiograph_pixels(datasets[0])
    if pixels.ndim != 2:
        raise PreprocessError(f"expected one 2-D frame, got pixel data of shape {pixels.shape}")
    low, high = (float(v) for v in np.percentile(pixels, [percentiles[0], percentiles[1]]))
    scaled = np.clip((pixels - low) / max(high - low, 1e-6), 0.0, 1.0).astype(np.float32)
    rows, columns = scaled.shape
    side = max(rows, columns)
    top, left = (side - rows) // 2, (side - columns) // 2
    square = np.zeros((side, side), dtype=np.float32)
    square[top : top + rows, left : left + columns] = scaled
    tensor = torch.from_numpy(square)[None, None]
    resized = F.interpolate(
        tensor, size=(size, size), mode="bilinear", antialias=True, align_corners=False
    )
    return resized[0].numpy()
