"""A numerical head phantom in Hounsfield units, with intracranial hemorrhage on request.

The phantom is built in the head's own frame (millimetres; x to the patient's left, y
posterior, z superior, as LPS) and sampled on the scanner grid of an axial CT series, which
may be turned and shifted against it. The layers of the head (scalp, skull with its tables and
diploe, subarachnoid CSF, grey and white matter) all depend on one normalised radius of an
egg-shaped ellipsoid, so they come from a single look-up table indexed by that radius: one
gather for the whole volume instead of a cascade of masks. Small structures (ventricles, deep
grey nuclei, calcifications, hematomas) are drawn in their bounding boxes only.

Values come from the usual CT numbers of an unenhanced head: bone 700-1500 HU, grey matter
~38 HU, white matter ~28 HU, CSF 0-10 HU, air -1000 HU, acute blood 50-90 HU. Confounders a
detector must not call blood: calcified choroid plexus and pineal gland (100-300 HU), a
slightly dense falx, darkening of the brain next to the skull (beam hardening), and streaks
across the posterior fossa (added by :func:`acquire`, with the noise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pacs_ai.synth.shapes import FloatArray

AIR_HU = -1000.0
BLOOD_HU_RANGE = (50.0, 90.0)
CALCIFICATION_HU_RANGE = (100.0, 300.0)
HEMORRHAGE_KINDS = ("intraparenchymal", "subdural")
FIELD_OF_VIEW_MM = 250.0

_LUT_SIZE = 8192
_LUT_MAX_RADIUS = 1.6


@dataclass
class HeadGrid:
    """Sampling grid of the series and the pose of the head in it.

    ``hx``/``hy`` are the head-frame coordinates of every pixel centre of a slice (the same
    for all slices: the series is axial and the head is turned about the z axis only), ``z``
    the head-frame height of every slice.
    """

    rows: int
    columns: int
    pixel_spacing: float
    slice_spacing: float
    z: NDArray[np.float32]
    hx: FloatArray
    hy: FloatArray
    yaw: float
    offset: tuple[float, float]

    def to_pixel(self, x: float, y: float) -> tuple[float, float]:
        """Column and row of the head-frame point ``(x, y)``."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        sx = self.offset[0] + c * x - s * y
        sy = self.offset[1] + s * x + c * y
        col = sx / self.pixel_spacing + (self.columns - 1) / 2
        row = sy / self.pixel_spacing + (self.rows - 1) / 2
        return col, row

    def slice_of(self, z: float) -> float:
        """Fractional slice index of the head-frame height ``z``."""
        return float((z - float(self.z[0])) / self.slice_spacing)


@dataclass
class HeadAnatomy:
    """The drawn sizes of one head (millimetres) and its tissue values (HU)."""

    semi_axes: tuple[float, float, float]
    scalp: float
    skull: float
    csf_rim: float
    grey_hu: float
    white_hu: float
    ventricle_scale: float
    beam_hardening_hu: float
    mean_radius: float = field(init=False)

    def __post_init__(self) -> None:
        self.mean_radius = (self.semi_axes[0] + self.semi_axes[1]) / 2

    @property
    def r_inner_skull(self) -> float:
        """Normalised radius of the inner table of the skull."""
        return 1.0 - (self.scalp + self.skull) / self.mean_radius

    @property
    def r_brain(self) -> float:
        """Normalised radius of the brain surface (inside the subarachnoid CSF)."""
        return self.r_inner_skull - self.csf_rim / self.mean_radius


@dataclass
class CtHeadPhantom:
    """A clean (noise-free) head volume with its ground truth.

    Attributes
    ----------
    hu : numpy.ndarray of float32
        ``(slices, rows, columns)`` CT numbers, slice 0 the most inferior.
    mask : numpy.ndarray of uint8
        Same shape; 1 where there is blood.
    lesions : list of dict
        One JSON-ready entry per hemorrhage (kind, centre, size, HU, volume in ml).
    calcifications : list of dict
        The confounders that were drawn.
    grid : HeadGrid
        Where every voxel lies.
    anatomy : HeadAnatomy
        The drawn head.
    radius : numpy.ndarray of float32
        The normalised radius of every voxel (kept for :func:`acquire`).
    """

    hu: FloatArray
    mask: NDArray[np.uint8]
    lesions: list[dict[str, Any]]
    calcifications: list[dict[str, Any]]
    grid: HeadGrid
    anatomy: HeadAnatomy
    radius: FloatArray


def _draw_anatomy(rng: np.random.Generator) -> HeadAnatomy:
    return HeadAnatomy(
        semi_axes=(
            float(rng.uniform(70.0, 78.0)),
            float(rng.uniform(90.0, 100.0)),
            float(rng.uniform(86.0, 96.0)),
        ),
        scalp=float(rng.uniform(5.0, 7.0)),
        skull=float(rng.uniform(6.0, 9.0)),
        csf_rim=float(rng.uniform(1.0, 3.5)),
        grey_hu=float(rng.uniform(36.0, 40.0)),
        white_hu=float(rng.uniform(26.0, 30.0)),
        ventricle_scale=float(rng.uniform(0.8, 1.5)),
        beam_hardening_hu=float(rng.uniform(3.0, 8.0)),
    )


def _make_grid(
    rng: np.random.Generator, anatomy: HeadAnatomy, *, slices: int, size: int, spacing: float
) -> HeadGrid:
    """Axial grid of ``slices`` x ``size`` x ``size`` voxels over a 250 mm field of view.

    The stack is centred between the skull base and the vertex (so a short stack still holds
    the ventricles); the head is shifted a few millimetres and turned a few degrees.
    """
    pixel = FIELD_OF_VIEW_MM / size
    height = anatomy.semi_axes[2]
    centre = 0.5 * (0.95 * height - 0.5 * height)
    z = (centre + (np.arange(slices, dtype=np.float64) - (slices - 1) / 2) * spacing).astype(
        np.float32
    )
    yaw = math.radians(float(rng.uniform(-6.0, 6.0)))
    offset = (float(rng.uniform(-5.0, 5.0)), float(rng.uniform(-8.0, 4.0)))
    axis = (np.arange(size, dtype=np.float32) - (size - 1) / 2) * np.float32(pixel)
    sx = axis[None, :] - np.float32(offset[0])
    sy = axis[:, None] - np.float32(offset[1])
    c, s = np.float32(math.cos(yaw)), np.float32(math.sin(yaw))
    hx = (c * sx + s * sy).astype(np.float32)
    hy = (-s * sx + c * sy).astype(np.float32)
    return HeadGrid(size, size, pixel, spacing, z, hx, hy, yaw, offset)


def _radial_lut(anatomy: HeadAnatomy, pixel: float) -> FloatArray:
    """HU as a function of the normalised radius: brain, CSF, skull, scalp, air.

    The profile is smoothed by about half a pixel, which gives the partial-volume edges a
    reconstructed image has.
    """
    r = np.linspace(0.0, _LUT_MAX_RADIUS, _LUT_SIZE, dtype=np.float64)
    depth = (1.0 - r) * anatomy.mean_radius  # millimetres below the skin
    scalp, skull = anatomy.scalp, anatomy.skull
    hu = np.full_like(r, AIR_HU)
    hu[depth >= 0] = 45.0  # skin
    hu[depth >= 1.5] = -90.0  # subcutaneous fat
    hu[depth >= scalp - 1.5] = 40.0  # galea and muscle
    in_skull = (depth >= scalp) & (depth < scalp + skull)
    t = (depth - scalp) / skull
    table = 1450.0 - 700.0 * np.exp(-(((t - 0.5) / 0.22) ** 2))
    hu[in_skull] = table[in_skull]
    inner = scalp + skull
    hu[depth >= inner] = 6.0  # subarachnoid CSF
    brain = depth >= inner + anatomy.csf_rim
    below_bone = depth - inner - anatomy.csf_rim
    darkening = anatomy.beam_hardening_hu * np.exp(-below_bone / 6.0)
    hu[brain] = (anatomy.grey_hu - darkening)[brain]
    sigma = max(0.5 * pixel / anatomy.mean_radius, 1e-4)
    step = _LUT_MAX_RADIUS / (_LUT_SIZE - 1)
    half = int(3 * sigma / step) + 1
    kernel = np.exp(-0.5 * ((np.arange(-half, half + 1) * step) / sigma) ** 2)
    kernel /= kernel.sum()
    smooth = np.convolve(np.pad(hu, half, mode="edge"), kernel, mode="valid")
    return smooth.astype(np.float32)


def _radius(grid: HeadGrid, anatomy: HeadAnatomy, rng: np.random.Generator) -> FloatArray:
    """Normalised radius of every voxel of an egg-shaped, slightly irregular ellipsoid."""
    a, b, c = anatomy.semi_axes
    hx, hy = grid.hx, grid.hy
    a_of_y = np.float32(a) * (1.0 + 0.06 * hy / np.float32(b))  # wider at the back
    theta = np.arctan2(hy, hx)
    phases = rng.uniform(0, 2 * np.pi, size=2)
    wobble = 1.0 + 0.012 * np.cos(2 * theta + phases[0]) + 0.008 * np.cos(3 * theta + phases[1])
    rho2 = ((hx / a_of_y) ** 2 + (hy / np.float32(b)) ** 2) * (wobble * wobble)
    rz2 = (grid.z / np.float32(c)) ** 2
    r = rho2.astype(np.float32)[None, :, :] + rz2[:, None, None]
    np.sqrt(r, out=r)
    return r


def _wave(
    theta: FloatArray, z: NDArray[np.float32], k: int, omega: float, phase: float
) -> FloatArray:
    """``sin(k * theta + omega * z + phase)`` over (z, rows, columns), from 2-D and 1-D parts."""
    a = k * theta + np.float32(phase)
    sin_a, cos_a = np.sin(a).astype(np.float32), np.cos(a).astype(np.float32)
    b = np.float32(omega) * z
    cos_b, sin_b = np.cos(b).astype(np.float32), np.sin(b).astype(np.float32)
    out = sin_a[None] * cos_b[:, None, None]
    out += cos_a[None] * sin_b[:, None, None]
    return out


def _cortex(
    hu: FloatArray, r: FloatArray, grid: HeadGrid, anatomy: HeadAnatomy, rng: np.random.Generator
) -> None:
    """Gyri and sulci, in place: white matter below a folded boundary, CSF in the sulci.

    Only the box that holds the brain is touched, which halves the work on a 512 grid.
    """
    a, b, _ = anatomy.semi_axes
    footprint = (grid.hx / a) ** 2 + (grid.hy / b) ** 2 < (anatomy.r_brain * 1.05) ** 2
    rows, cols = np.nonzero(footprint)
    if rows.size == 0:
        return
    box = (slice(None), slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    theta = np.arctan2(grid.hy[box[1:]], grid.hx[box[1:]]).astype(np.float32)
    z = grid.z
    r_box = r[box]
    hu_box = hu[box]
    folds = _wave(theta, z, int(rng.integers(7, 12)), rng.uniform(0.06, 0.12), rng.uniform(0, 6.3))
    folds += 0.6 * _wave(
        theta, z, int(rng.integers(15, 22)), -rng.uniform(0.1, 0.2), rng.uniform(0, 6.3)
    )
    folds *= np.float32(0.03 * anatomy.r_brain)
    folds += np.float32(0.84 * anatomy.r_brain)
    hu_box -= (r_box < folds) * np.float32(anatomy.grey_hu - anatomy.white_hu)
    del folds
    sulci = _wave(theta, z, int(rng.integers(24, 34)), rng.uniform(0.1, 0.2), rng.uniform(0, 6.3))
    np.abs(sulci, out=sulci)
    width = 0.05 + 0.08 * (anatomy.ventricle_scale - 0.8)
    in_sulcus = sulci < np.float32(width)
    in_sulcus &= r_box > np.float32(0.86 * anatomy.r_brain)
    in_sulcus &= r_box < np.float32(anatomy.r_brain)
    hu_box[in_sulcus] = 8.0


Box = tuple[slice, slice, slice]


def _ellipsoid(
    grid: HeadGrid,
    centre: tuple[float, float, float],
    semi: tuple[float, float, float],
    yaw_deg: float = 0.0,
) -> tuple[Box, FloatArray] | None:
    """Bounding box of an ellipsoid and its normalised squared radius ``q`` there (q < 1 inside).

    The ellipsoid is given in the head frame, turned by ``yaw_deg`` about its own z axis.
    """
    reach = max(semi)
    col, row = grid.to_pixel(centre[0], centre[1])
    half = reach / grid.pixel_spacing + 1.5
    c0, c1 = max(int(col - half), 0), min(int(col + half) + 2, grid.columns)
    r0, r1 = max(int(row - half), 0), min(int(row + half) + 2, grid.rows)
    s_lo = grid.slice_of(centre[2] - reach) - 1
    s_hi = grid.slice_of(centre[2] + reach) + 1
    z0, z1 = max(math.floor(s_lo), 0), min(math.ceil(s_hi) + 1, len(grid.z))
    if c0 >= c1 or r0 >= r1 or z0 >= z1:
        return None
    yaw = math.radians(yaw_deg)
    cy, sy = np.float32(math.cos(yaw)), np.float32(math.sin(yaw))
    dx = grid.hx[r0:r1, c0:c1] - np.float32(centre[0])
    dy = grid.hy[r0:r1, c0:c1] - np.float32(centre[1])
    lx = cy * dx + sy * dy
    ly = -sy * dx + cy * dy
    q2d = (lx / np.float32(semi[0])) ** 2 + (ly / np.float32(semi[1])) ** 2
    dz = (grid.z[z0:z1] - np.float32(centre[2])) / np.float32(semi[2])
    q = q2d[None, :, :] + (dz * dz)[:, None, None]
    return (slice(z0, z1), slice(r0, r1), slice(c0, c1)), q.astype(np.float32)


def _fill(
    hu: FloatArray,
    r: FloatArray,
    shape: tuple[Box, FloatArray] | None,
    value: float,
    r_limit: float,
) -> int:
    """Set ``value`` inside the shape where the voxel is within ``r_limit``; voxels set."""
    if shape is None:
        return 0
    box, q = shape
    inside = (q < 1.0) & (r[box] < r_limit)
    hu[box][inside] = value
    return int(inside.sum())


def _deep_structures(hu: FloatArray, r: FloatArray, grid: HeadGrid, anatomy: HeadAnatomy) -> None:
    """Basal ganglia and thalami (grey), then the ventricles (CSF) over them."""
    limit = anatomy.r_brain
    grey = anatomy.grey_hu - 2.0
    v = anatomy.ventricle_scale
    for side in (-1.0, 1.0):
        _fill(hu, r, _ellipsoid(grid, (side * 15, -15, 12), (5, 8, 8)), grey, limit)
        _fill(hu, r, _ellipsoid(grid, (side * 23, -3, 5), (6, 14, 9), side * 8), grey, limit)
        _fill(hu, r, _ellipsoid(grid, (side * 10, 10, 4), (8, 12, 8)), grey, limit)
    csf = 4.0
    for side in (-1.0, 1.0):
        gap = 1.5 + 2.5 * v
        body = _ellipsoid(grid, (side * (gap + 3), -2, 18), (4.0 * v, 26, 7 * v), -side * 4)
        _fill(hu, r, body, csf, limit)
        frontal = _ellipsoid(grid, (side * (gap + 4), -24, 13), (4.5 * v, 10, 8 * v), side * 20)
        _fill(hu, r, frontal, csf, limit)
        atrium = _ellipsoid(grid, (side * 19, 24, 9), (6 * v, 12, 8 * v), -side * 25)
        _fill(hu, r, atrium, csf, limit)
        temporal = _ellipsoid(grid, (side * 28, 4, -14), (2.5 * v, 10, 3.5 * v), side * 10)
        _fill(hu, r, temporal, csf, limit)
    _fill(hu, r, _ellipsoid(grid, (0, 2, 3), (1.2 * v, 12, 8)), csf, limit)
    _fill(hu, r, _ellipsoid(grid, (0, 38, -35), (5, 3.5, 6)), csf, limit)


def _falx(hu: FloatArray, r: FloatArray, grid: HeadGrid, anatomy: HeadAnatomy) -> None:
    """A thin, slightly dense midline sheet between the hemispheres (45-55 HU)."""
    half_width = max(0.7, 0.5 * grid.pixel_spacing)
    rr, cc = np.nonzero(np.abs(grid.hx) < half_width)
    if rr.size == 0:
        return
    above = np.nonzero(grid.z > 8.0)[0]
    if above.size == 0:
        return
    zs = slice(int(above[0]), len(grid.z))
    rad = r[zs][:, rr, cc]
    band = (rad < anatomy.r_brain) & (rad > 0.45 * anatomy.r_brain)
    values = hu[zs][:, rr, cc]
    values[band] = 50.0
    hu[zs, rr, cc] = values


def _calcifications(
    hu: FloatArray,
    r: FloatArray,
    grid: HeadGrid,
    anatomy: HeadAnatomy,
    rng: np.random.Generator,
) -> list[dict[str, Any]]:
    """Physiological calcifications: choroid plexus, pineal, falx, basal ganglia."""
    sites: list[tuple[str, tuple[float, float, float], float, float]] = [
        ("choroid plexus left", (20.0, 26.0, 9.0), 0.8, 3.5),
        ("choroid plexus right", (-20.0, 26.0, 9.0), 0.8, 3.5),
        ("pineal", (0.0, 22.0, 5.0), 0.7, 3.0),
        ("falx", (0.0, float(rng.uniform(-50, 50)), float(rng.uniform(30, 55))), 0.25, 2.5),
        ("globus pallidus left", (19.0, -2.0, 3.0), 0.15, 2.5),
        ("globus pallidus right", (-19.0, -2.0, 3.0), 0.15, 2.5),
    ]
    drawn: list[dict[str, Any]] = []
    for name, centre, chance, largest in sites:
        if rng.random() >= chance:
            continue
        semi = tuple(float(rng.uniform(1.5, largest)) for _ in range(3))
        value = float(rng.uniform(*CALCIFICATION_HU_RANGE))
        shape = _ellipsoid(grid, centre, (semi[0], semi[1], semi[2]))
        if _fill(hu, r, shape, value, anatomy.r_brain) > 0:
            where = [round(c, 1) for c in centre]
            drawn.append({"site": name, "centre_mm": where, "hu": round(value, 1)})
    return drawn


def _pick_centre(
    rng: np.random.Generator, grid: HeadGrid, anatomy: HeadAnatomy, depth: float
) -> tuple[float, float, float]:
    """A voxel centre within the covered slices at normalised radius below ``depth``."""
    a, b, c = anatomy.semi_axes
    for _ in range(100):
        z = float(grid.z[int(rng.integers(len(grid.z)))])
        rz = (z / c) ** 2
        if rz > (depth * 0.9) ** 2:
            continue
        ring = math.sqrt(depth * depth - rz) * math.sqrt(rng.random())
        angle = float(rng.uniform(0, 2 * np.pi))
        x, y = ring * a * math.cos(angle), ring * b * math.sin(angle)
        col, row = grid.to_pixel(x, y)
        row_i = min(max(round(row), 0), grid.rows - 1)
        col_i = min(max(round(col), 0), grid.columns - 1)
        return float(grid.hx[row_i, col_i]), float(grid.hy[row_i, col_i]), z
    z = float(grid.z[len(grid.z) // 2])
    return 0.0, 0.0, z


def _blood_value(rng: np.random.Generator) -> float:
    return float(rng.uniform(55.0, 85.0))


def _intraparenchymal(
    hu: FloatArray,
    mask: NDArray[np.uint8],
    r: FloatArray,
    grid: HeadGrid,
    anatomy: HeadAnatomy,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """A lobulated hematoma (union of 1-3 ellipsoids) with a rim of oedema."""
    centre = _pick_centre(rng, grid, anatomy, 0.6 * anatomy.r_brain)
    value = _blood_value(rng)
    size = float(rng.uniform(5.0, 22.0))
    parts: list[tuple[tuple[float, float, float], tuple[float, float, float], float]] = []
    for index in range(int(rng.integers(1, 4))):
        shift = (0.0, 0.0, 0.0) if index == 0 else tuple(rng.normal(0, size * 0.4, 3))
        part_centre = (centre[0] + shift[0], centre[1] + shift[1], centre[2] + shift[2])
        semi = tuple(size * float(rng.uniform(0.5, 1.0)) for _ in range(3))
        parts.append((part_centre, (semi[0], semi[1], semi[2]), float(rng.uniform(0, 180))))
    oedema = float(rng.uniform(4.0, 9.0))
    for part_centre, semi, yaw in parts:
        grown = (semi[0] * 1.5 + 2, semi[1] * 1.5 + 2, semi[2] * 1.5 + 2)
        shape = _ellipsoid(grid, part_centre, grown, yaw)
        if shape is not None:
            box, q = shape
            region = (q < 1.0) & (r[box] < anatomy.r_brain)
            hu[box] -= region * np.float32(oedema)
    voxels = 0
    for part_centre, semi, yaw in parts:
        shape = _ellipsoid(grid, part_centre, semi, yaw)
        if shape is None:
            continue
        box, q = shape
        inside = (q < 1.0) & (r[box] < anatomy.r_brain)
        # Denser where the cells settle (posterior, dependent in a supine patient).
        dy = (grid.hy[box[1], box[2]] - np.float32(part_centre[1])) / np.float32(semi[1])
        layered = np.clip(value + 4.0 * dy, *BLOOD_HU_RANGE).astype(np.float32)
        target = hu[box]
        target[inside] = np.broadcast_to(layered[None], inside.shape)[inside]
        mask[box][inside] = 1
        voxels += int(inside.sum())
    return {
        "kind": "intraparenchymal",
        "centre_mm": [round(v, 2) for v in centre],
        "size_mm": round(2 * size, 1),
        "hu": round(value, 1),
        "voxels": voxels,
    }


def _subdural(
    hu: FloatArray,
    mask: NDArray[np.uint8],
    r: FloatArray,
    grid: HeadGrid,
    anatomy: HeadAnatomy,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """A crescent along the inner table, thickest in its middle, tapering to nothing."""
    a, b, _ = anatomy.semi_axes
    side = float(rng.choice([-1.0, 1.0]))
    theta0 = float(rng.uniform(-1.1, 1.1)) + (0.0 if side > 0 else np.pi)
    half_angle = float(rng.uniform(0.5, 1.1))
    z0 = float(grid.z[int(rng.integers(len(grid.z) // 5, max(len(grid.z) * 4 // 5, 1)))])
    half_height = float(rng.uniform(15.0, 40.0))
    thickness = float(rng.uniform(3.0, 15.0))
    value = _blood_value(rng)
    zs = np.nonzero(np.abs(grid.z - z0) < half_height)[0]
    theta = np.arctan2(grid.hy / np.float32(b), grid.hx / np.float32(a))
    wrapped = np.angle(np.exp(1j * (theta - theta0))).astype(np.float32)
    w_theta = 1.0 - (wrapped / np.float32(half_angle)) ** 2
    rows, cols = np.nonzero(w_theta > 0)
    voxels = 0
    if zs.size and rows.size:
        z_slab = slice(int(zs[0]), int(zs[-1]) + 1)
        w_z = 1.0 - ((grid.z[z_slab] - np.float32(z0)) / np.float32(half_height)) ** 2
        depth = np.sqrt(np.clip(w_theta[rows, cols][None, :] + w_z[:, None] - 1.0, 0.0, None))
        depth *= np.float32(thickness / anatomy.mean_radius)
        rad = r[z_slab][:, rows, cols]
        inner = np.float32(anatomy.r_inner_skull)
        inside = (rad < inner) & (rad > inner - depth) & (depth > 0)
        values = hu[z_slab][:, rows, cols]
        values[inside] = value
        hu[z_slab, rows, cols] = values
        marks = mask[z_slab][:, rows, cols]
        marks[inside] = 1
        mask[z_slab, rows, cols] = marks
        voxels = int(inside.sum())
    return {
        "kind": "subdural",
        "side": "left" if side > 0 else "right",
        "z_mm": round(z0, 2),
        "angle_deg": round(math.degrees(theta0), 1),
        "thickness_mm": round(thickness, 1),
        "hu": round(value, 1),
        "voxels": voxels,
    }


def build_ct_head_phantom(
    rng: np.random.Generator,
    *,
    hemorrhage: bool,
    slices: int,
    size: int,
    slice_thickness: float,
    kinds: tuple[str, ...] = HEMORRHAGE_KINDS,
) -> CtHeadPhantom:
    """Build the clean head volume, its hemorrhage mask and the truth about both.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random choice.
    hemorrhage : bool
        Whether to draw 1-2 hemorrhages (of ``kinds``); a negative study gets none.
    slices, size : int
        Volume shape ``(slices, size, size)``.
    slice_thickness : float
        Thickness and spacing of the contiguous axial slices, millimetres.
    kinds : tuple of str
        Hemorrhage kinds to choose from (:data:`HEMORRHAGE_KINDS`).

    Returns
    -------
    CtHeadPhantom
        ``hu`` inside the mask lies within :data:`BLOOD_HU_RANGE` (blood is drawn last).
    """
    unknown = set(kinds) - set(HEMORRHAGE_KINDS)
    if unknown or not kinds:
        raise ValueError(f"hemorrhage kinds must be among {HEMORRHAGE_KINDS}, got {kinds}")
    anatomy = _draw_anatomy(rng)
    grid = _make_grid(rng, anatomy, slices=slices, size=size, spacing=slice_thickness)
    r = _radius(grid, anatomy, rng)
    lut = _radial_lut(anatomy, grid.pixel_spacing)
    index = r * np.float32((_LUT_SIZE - 1) / _LUT_MAX_RADIUS)
    index_int = index.astype(np.int32)
    del index
    np.minimum(index_int, _LUT_SIZE - 1, out=index_int)
    hu = lut[index_int]
    del index_int
    _cortex(hu, r, grid, anatomy, rng)
    _deep_structures(hu, r, grid, anatomy)
    _falx(hu, r, grid, anatomy)
    calcifications = _calcifications(hu, r, grid, anatomy, rng)
    mask = np.zeros(hu.shape, dtype=np.uint8)
    lesions: list[dict[str, Any]] = []
    if hemorrhage:
        count = int(rng.integers(1, 3))
        for _ in range(count):
            kind = str(kinds[int(rng.integers(len(kinds)))])
            draw = _intraparenchymal if kind == "intraparenchymal" else _subdural
            lesions.append(draw(hu, mask, r, grid, anatomy, rng))
        if not mask.any():  # a lesion fell between voxels: mark its centre, never lose it
            centre = _pick_centre(rng, grid, anatomy, 0.5 * anatomy.r_brain)
            col, row = grid.to_pixel(centre[0], centre[1])
            index3 = (
                round(grid.slice_of(centre[2])),
                min(max(round(row), 0), grid.rows - 1),
                min(max(round(col), 0), grid.columns - 1),
            )
            hu[index3] = _blood_value(rng)
            mask[index3] = 1
            lesions.append({"kind": "intraparenchymal", "centre_mm": list(centre), "voxels": 1})
    voxel_ml = grid.pixel_spacing**2 * grid.slice_spacing / 1000.0
    for lesion in lesions:
        lesion["volume_ml"] = round(lesion["voxels"] * voxel_ml, 3)
    return CtHeadPhantom(hu, mask, lesions, calcifications, grid, anatomy, r)


def acquire(phantom: CtHeadPhantom, rng: np.random.Generator, *, noise_hu: float) -> FloatArray:
    """Add what the scanner adds, in place: posterior-fossa streaks and Gaussian noise.

    Streaks from the petrous bones are dark bands across the lower slices (the "Hounsfield
    bar") fading upwards; the noise is white and Gaussian with ``noise_hu`` standard deviation.
    Returns ``phantom.hu``, now noisy.
    """
    grid, anatomy = phantom.grid, phantom.anatomy
    hu = phantom.hu
    streaks = np.zeros((grid.rows, grid.columns), dtype=np.float32)
    for _ in range(int(rng.integers(2, 6))):
        x0 = float(rng.uniform(-35.0, 35.0))
        y0 = float(rng.uniform(0.0, 40.0))
        angle = float(rng.uniform(-0.35, 0.35)) + (0.0 if rng.random() < 0.7 else np.pi / 2)
        width = float(rng.uniform(2.0, 6.0))
        amplitude = float(rng.uniform(-25.0, -8.0)) if rng.random() < 0.8 else 10.0
        distance = (grid.hx - x0) * np.float32(math.sin(angle)) - (grid.hy - y0) * np.float32(
            math.cos(angle)
        )
        streaks += np.float32(amplitude) * np.exp(-((distance / np.float32(width)) ** 2))
    a, b, _ = anatomy.semi_axes
    footprint = ((grid.hx / a) ** 2 + (grid.hy / b) ** 2) < 1.0
    streaks *= footprint
    base = -0.45 * anatomy.semi_axes[2]
    weight = 0.1 + 0.9 * np.exp(-(((grid.z - base) / 25.0) ** 2))
    hu += weight.astype(np.float32)[:, None, None] * streaks[None]
    hu += rng.standard_normal(hu.shape, dtype=np.float32) * np.float32(noise_hu)
    return hu
