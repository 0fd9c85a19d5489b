"""The source series a result is made from, and the checks both writers share.

The writers take the series as the model saw it: single-frame images of one series (a CT
stack, one radiograph), in the order of the mask's frames. Multi-frame (enhanced) images are
refused rather than half-supported.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset


def check_source_images(source_images: Sequence[Dataset]) -> None:
    """Refuse images a result cannot reference as one series.

    Raises
    ------
    ValueError
        When there is no image, the images come from more than one study or series, repeat a
        SOP Instance UID, hold more than one frame, or differ in rows or columns.
    """
    if not source_images:
        raise ValueError("at least one source image is required")
    first = source_images[0]
    for ds in source_images:
        if ds.StudyInstanceUID != first.StudyInstanceUID:
            raise ValueError("source images come from more than one study")
        if ds.SeriesInstanceUID != first.SeriesInstanceUID:
            raise ValueError("source images come from more than one series")
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            raise ValueError("multi-frame source images are not supported")
        if (ds.Rows, ds.Columns) != (first.Rows, first.Columns):
            raise ValueError("source images differ in rows or columns")
    if len({str(ds.SOPInstanceUID) for ds in source_images}) != len(source_images):
        raise ValueError("a source image is given twice")


def check_mask(mask: NDArray[np.bool_], source_images: Sequence[Dataset]) -> None:
    """Refuse a mask that is not one frame per source image, pixel for pixel.

    Raises
    ------
    ValueError
        When ``mask.shape`` is not ``(len(source_images), Rows, Columns)``.
    """
    first = source_images[0]
    expected = (len(source_images), int(first.Rows), int(first.Columns))
    if mask.shape != expected:
        raise ValueError(f"mask shape {mask.shape} does not match the source images {expected}")


def representative_index(source_images: Sequence[Dataset]) -> int:
    """Index of the image that stands for the whole series: the middle one, in given order."""
    return len(source_images) // 2
