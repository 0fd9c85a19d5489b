"""Geometry of a finding's mask: its volume, its key slice and its outline there.

Image coordinates follow SR SCOORD (PS3.3 C.18.6.1.2): ``(column, row)``, with ``(0, 0)`` the
top left corner of the top left pixel, so pixel ``(r, c)`` is the square from ``(c, r)`` to
``(c + 1, r + 1)``. Patient coordinates follow the Image Plane module (PS3.3 C.7.6.2).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydicom.dataset import Dataset

from pacs_ai.results.source import check_mask, check_source_images

_MM3_PER_ML = 1000.0
_PLANE_ATTRIBUTES = ("PixelSpacing", "ImagePositionPatient", "ImageOrientationPatient")
# Unit steps as (column, row) and the turn to the right of each, in image coordinates (row
# axis pointing down): east -> south -> west -> north -> east.
_RIGHT_TURN = {(1, 0): (0, 1), (0, 1): (-1, 0), (-1, 0): (0, -1), (0, -1): (1, 0)}
# 8-connectivity: a thin lesion (a pneumothorax rim) often hangs together only diagonally.
_NEIGHBOURS = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0)]


def has_volume_geometry(source_images: Sequence[Dataset]) -> bool:
    """Whether the images are slices of a volume: Image Plane attributes on every image.

    A projection radiograph (DX, CR) has no Image Plane module and hence no volume; a single
    slice needs a Slice Thickness.
    """
    if not all(all(name in ds for name in _PLANE_ATTRIBUTES) for ds in source_images):
        return False
    return len(source_images) > 1 or bool(source_images[0].get("SliceThickness"))


def volume_ml(mask: ArrayLike, source_images: Sequence[Dataset]) -> float:
    """Volume of a mask in millilitres (cm³).

    Each slice contributes its voxel count times its pixel area (PixelSpacing) times its
    extent along the slice normal: half the distance to each neighbouring slice position
    (ImagePositionPatient projected on the normal of ImageOrientationPatient), the gap to its
    one neighbour for an end slice, so a regular stack gives voxels x spacing. A single slice
    extends over its SliceThickness.

    Parameters
    ----------
    mask : array_like of bool
        ``(frames, rows, columns)``, frame ``i`` on ``source_images[i]``; 2-D for one image.
    source_images : sequence of pydicom.dataset.Dataset
        The slices, single-frame, of one series; any order.

    Raises
    ------
    ValueError
        When the images are no volume (see :func:`has_volume_geometry`), differ in
        orientation, share a slice position, or do not match the mask.
    """
    frames = _as_frames(mask)
    check_source_images(source_images)
    check_mask(frames, source_images)
    if not has_volume_geometry(source_images):
        raise ValueError("the source images are not slices of a volume (no Image Plane module)")
    areas = np.array(
        [float(ds.PixelSpacing[0]) * float(ds.PixelSpacing[1]) for ds in source_images]
    )
    counts = frames.reshape(len(source_images), -1).sum(axis=1)
    extents = _slice_extents(source_images)
    return float((counts * areas * extents).sum() / _MM3_PER_ML)


def _as_frames(mask: ArrayLike) -> NDArray[np.bool_]:
    frames = np.asarray(mask).astype(np.bool_, copy=False)
    return frames[np.newaxis] if frames.ndim == 2 else frames


def _slice_extents(source_images: Sequence[Dataset]) -> NDArray[np.float64]:
    """Thickness (mm) that each slice stands for along the slice normal."""
    if len(source_images) == 1:
        return np.array([float(source_images[0].SliceThickness)])
    orientation = np.array(source_images[0].ImageOrientationPatient, dtype=np.float64)
    for ds in source_images:
        if not np.allclose(np.array(ds.ImageOrientationPatient, dtype=np.float64), orientation):
            raise ValueError("source images differ in ImageOrientationPatient")
    normal = np.cross(orientation[:3], orientation[3:])
    positions = np.array(
        [
            np.dot(np.array(ds.ImagePositionPatient, dtype=np.float64), normal)
            for ds in source_images
        ]
    )
    order = np.argsort(positions)
    gaps = np.diff(positions[order])
    if not (gaps > 1e-3).all():
        raise ValueError("two source images share a slice position")
    sorted_extents = np.empty(len(positions))
    sorted_extents[0] = gaps[0]
    sorted_extents[-1] = gaps[-1]
    sorted_extents[1:-1] = (gaps[:-1] + gaps[1:]) / 2.0
    extents = np.empty(len(positions))
    extents[order] = sorted_extents
    return extents


def key_frame(mask: ArrayLike) -> int:
    """Index of the frame with the largest mask area (the first, on a tie).

    Raises
    ------
    ValueError
        When the mask is empty: there is no key slice.
    """
    frames = _as_frames(mask)
    areas = frames.reshape(frames.shape[0], -1).sum(axis=1)
    if not areas.any():
        raise ValueError("the mask is empty")
    return int(np.argmax(areas))


def image_outline(rows: int, columns: int) -> NDArray[np.float64]:
    """The border of a whole image as a closed polyline of ``(column, row)`` points."""
    return np.array([[0, 0], [columns, 0], [columns, rows], [0, rows], [0, 0]], dtype=np.float64)


def outline(frame: ArrayLike) -> NDArray[np.float64]:
    """Outer border of the largest 8-connected region of a 2-D mask, as a closed polyline.

    The polyline runs along pixel edges (vertices on pixel corners), clockwise on screen,
    first point repeated last, only corners kept. It encloses exactly the region's pixels
    and any holes in it; where two pixels of the region touch only at a corner, it passes
    that corner twice. Other, smaller regions of the frame are not outlined.

    Raises
    ------
    ValueError
        When the frame is not 2-D or is empty.
    """
    pixels = np.asarray(frame).astype(np.bool_, copy=False)
    if pixels.ndim != 2:
        raise ValueError("outline() takes one 2-D frame")
    region = _largest_region(pixels)
    loops = _boundary_loops(region)
    outer = max(loops, key=lambda loop: abs(_signed_area(loop)))
    corners = _corners(outer)
    return np.array([*corners, corners[0]], dtype=np.float64)


def _largest_region(pixels: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """The largest 8-connected region (the first found, on a tie)."""
    if not pixels.any():
        raise ValueError("the frame is empty")
    rows, columns = pixels.shape
    labels = np.zeros(pixels.shape, dtype=np.int32)
    best_label, best_size, label = 0, 0, 0
    for start_row, start_column in zip(*np.nonzero(pixels), strict=True):
        if labels[start_row, start_column]:
            continue
        label += 1
        labels[start_row, start_column] = label
        size = 0
        queue = deque([(int(start_row), int(start_column))])
        while queue:
            row, column = queue.popleft()
            size += 1
            for dr, dc in _NEIGHBOURS:
                r, c = row + dr, column + dc
                if 0 <= r < rows and 0 <= c < columns and pixels[r, c] and not labels[r, c]:
                    labels[r, c] = label
                    queue.append((r, c))
        if size > best_size:
            best_label, best_size = label, size
    return labels == best_label


def _boundary_loops(region: NDArray[np.bool_]) -> list[list[tuple[int, int]]]:
    """Closed loops of pixel edges between the region and the rest, inside on the right.

    Each edge is a start corner and a unit step. At a corner where two region pixels touch
    only diagonally, the walk turns left, on to the other pixel, so that every edge has
    exactly one successor and the loop of an 8-connected region stays one loop.
    """
    padded = np.pad(region, 1)
    steps_at: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for row, column in zip(*np.nonzero(region), strict=True):
        r, c = int(row), int(column)
        if not padded[r, c + 1]:  # nothing above: west to east along the top edge
            steps_at.setdefault((c, r), []).append((1, 0))
        if not padded[r + 1, c + 2]:  # nothing to the right: north to south
            steps_at.setdefault((c + 1, r), []).append((0, 1))
        if not padded[r + 2, c + 1]:  # nothing below: east to west
            steps_at.setdefault((c + 1, r + 1), []).append((-1, 0))
        if not padded[r + 1, c]:  # nothing to the left: south to north
            steps_at.setdefault((c, r + 1), []).append((0, -1))
    unvisited = {(point, step) for point, steps in steps_at.items() for step in steps}
    loops: list[list[tuple[int, int]]] = []
    while unvisited:
        first = min(unvisited)
        edge = first
        loop: list[tuple[int, int]] = []
        while True:
            unvisited.discard(edge)
            (x, y), step = edge
            loop.append((x, y))
            corner = (x + step[0], y + step[1])
            edge = (corner, _next_step(step, steps_at[corner]))
            if edge == first:
                break
        loops.append(loop)
    return loops


def _next_step(step: tuple[int, int], choices: list[tuple[int, int]]) -> tuple[int, int]:
    """The step to take at a corner: a left turn first, then straight on, then right."""
    right = _RIGHT_TURN[step]
    left = (-right[0], -right[1])
    return next(candidate for candidate in (left, step, right) if candidate in choices)


def _corners(loop: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The loop without the points that lie on a straight run."""
    count = len(loop)
    kept = []
    for i, (x, y) in enumerate(loop):
        px, py = loop[i - 1]
        nx, ny = loop[(i + 1) % count]
        if (x - px) * (ny - y) != (y - py) * (nx - x):
            kept.append((x, y))
    return kept


def _signed_area(loop: list[tuple[int, int]]) -> float:
    """Shoelace area; positive for a clockwise loop on screen (row axis down)."""
    xs = np.array([p[0] for p in loop], dtype=np.float64)
    ys = np.array([p[1] for p in loop], dtype=np.float64)
    return float((xs * np.roll(ys, -1) - np.roll(xs, -1) * ys).sum() / 2.0)
