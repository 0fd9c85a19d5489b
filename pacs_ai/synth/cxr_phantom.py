"""A numerical PA chest radiograph, with a pneumothorax on request.

The image is a projection: each structure adds (bone, soft tissue, vessels) or removes
(aerated lung, gastric gas) attenuation along the beam, and the sum is mapped to a
for-presentation grey level, bright where attenuation is high (MONOCHROME2). Coordinates are
normalised, ``u`` from -1 (left of the image, the patient's right) to 1 and ``v`` from -1
(top, superior) to 1, so every size of image shows the same chest.

The lungs carry a branching tree of vessels (the "lung markings"), thinning towards the
periphery. A pneumothorax is drawn as the radiologist reads it: the lung collapsed towards
the hilum, a thin bright visceral pleural line at its edge, and lateral to it a lucent space
without markings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pacs_ai.synth.shapes import FloatArray, box_blur, draw_segments, smoothstep

DETECTOR_MM = 430.0
#: BTS 2010 guideline: a rim of air of 2 cm or more at the level of the hilum is "large".
LARGE_RIM_MM = 20.0
SIDES = ("right", "left")


@dataclass
class ChestAnatomy:
    """The drawn sizes of one chest, in normalised image units."""

    shift: float
    apex: float
    lateral: float
    domes: tuple[float, float]
    heart_centre: tuple[float, float]
    heart_semi: tuple[float, float]
    heart_angle: float
    female: bool


@dataclass
class CxrPhantom:
    """A noise-free projection with its ground truth.

    Attributes
    ----------
    density : numpy.ndarray of float32
        Summed attenuation, ``(rows, columns)``.
    mask : numpy.ndarray of uint8
        1 in the pneumothorax (the air space lateral to the pleural line), else 0.
    markings : numpy.ndarray of float32
        The vessel (lung marking) part of ``density``, kept to check where markings are.
    truth : dict
        JSON-ready: ``pneumothorax``, and for a positive ``side``, ``size``,
        ``collapse_fraction`` and ``rim_mm``.
    """

    density: FloatArray
    mask: NDArray[np.uint8]
    markings: FloatArray
    truth: dict[str, Any]


@dataclass(frozen=True)
class _Collapse:
    """Lung shrunk towards an anchor near the hilum: ``w`` by ``1 - f``, ``v`` by less."""

    fraction: float
    anchor_w: float
    anchor_v: float

    @property
    def scale_w(self) -> float:
        return 1.0 - self.fraction

    @property
    def scale_v(self) -> float:
        return 1.0 - 0.6 * self.fraction

    def undo(self, w: FloatArray, v: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Coordinates in the uncollapsed lung of the points ``(w, v)``."""
        return (
            np.float32(self.anchor_w) + (w - np.float32(self.anchor_w)) / np.float32(self.scale_w),
            np.float32(self.anchor_v) + (v - np.float32(self.anchor_v)) / np.float32(self.scale_v),
        )

    def apply(self, w: float, v: float) -> tuple[float, float]:
        """Where the uncollapsed lung point ``(w, v)`` goes."""
        return (
            self.anchor_w + (w - self.anchor_w) * self.scale_w,
            self.anchor_v + (v - self.anchor_v) * self.scale_v,
        )


def _draw_anatomy(rng: np.random.Generator, female: bool) -> ChestAnatomy:
    dome_right = float(rng.uniform(0.22, 0.36))
    return ChestAnatomy(
        shift=float(rng.uniform(-0.03, 0.03)),
        apex=float(rng.uniform(-0.8, -0.7)),
        lateral=float(rng.uniform(0.74, 0.82)),
        domes=(dome_right, dome_right + float(rng.uniform(0.02, 0.08))),
        heart_centre=(float(rng.uniform(0.06, 0.12)), dome_right + float(rng.uniform(-0.1, -0.06))),
        heart_semi=(float(rng.uniform(0.25, 0.31)), float(rng.uniform(0.16, 0.2))),
        heart_angle=math.radians(float(rng.uniform(15.0, 35.0))),
        female=female,
    )


def _medial(v: FloatArray, side: int) -> FloatArray:
    """Medial lung border (mediastinum), as lateral distance ``w`` from the midline."""
    lower = 0.05 if side < 0 else 0.02
    return (0.085 + lower * smoothstep(-0.35, 0.05, v)).astype(np.float32)


def _lateral(v: FloatArray, anatomy: ChestAnatomy) -> FloatArray:
    """Lateral lung border: narrow at the apex, widest from the hilum down."""
    t = np.clip((v - np.float32(anatomy.apex)) / np.float32(0.05 - anatomy.apex), 0.0, 1.0)
    return (0.085 + (anatomy.lateral - 0.085) * np.sqrt(t) * (2.0 - t) ** 0.3 / 2**0.3).astype(
        np.float32
    )


def _base(w: FloatArray, dome: float, lateral: float) -> FloatArray:
    """Diaphragm: the dome is highest mid-hemithorax, lower at the costophrenic angle."""
    peak = 0.45 * lateral
    t = (w - np.float32(peak)) / np.float32(lateral - peak)
    curve = np.where(t > 0, np.float32(0.26), np.float32(0.1))
    return (np.float32(dome) + curve * t * t).astype(np.float32)


def _lung(w: FloatArray, v: FloatArray, side: int, anatomy: ChestAnatomy) -> FloatArray:
    """Thickness of aerated lung (0-1) at ``(w, v)``; ``w`` is the distance from the midline."""
    medial = _medial(v, side)
    lateral = _lateral(v, anatomy)
    width = np.maximum(lateral - medial, np.float32(1e-3))
    s = (w - medial) / width
    across = smoothstep(0.0, 0.05, s) * smoothstep(1.0, 0.96, s) * (0.8 + 0.2 * np.sin(np.pi * s))
    dome = anatomy.domes[0] if side < 0 else anatomy.domes[1]
    base = _base(w, dome, anatomy.lateral)
    down = smoothstep(0.0, 0.015, base - v) * smoothstep(anatomy.apex, anatomy.apex + 0.12, v)
    return (across * down * (s > 0) * (s < 1)).astype(np.float32)


def _ellipse(
    u: FloatArray,
    v: FloatArray,
    centre: tuple[float, float],
    semi: tuple[float, float],
    angle: float = 0.0,
) -> FloatArray:
    """Projected thickness (0-1) of an ellipsoid: ``sqrt(1 - q)`` inside, 0 outside.

    ``angle`` (radians) turns the first semi-axis from the ``u`` direction towards ``v``.
    """
    du = u - np.float32(centre[0])
    dv = v - np.float32(centre[1])
    if angle:
        c, s = np.float32(math.cos(angle)), np.float32(math.sin(angle))
        du, dv = c * du + s * dv, -s * du + c * dv
    q = (du / np.float32(semi[0])) ** 2
    q += (dv / np.float32(semi[1])) ** 2
    return np.sqrt(np.clip(1.0 - q, 0.0, None)).astype(np.float32)


def _band(v: FloatArray, centre: FloatArray, half: float) -> FloatArray:
    """A bone seen edge-on: a soft band, brighter at its cortices."""
    d = np.abs(v - centre) / np.float32(half)
    body = smoothstep(1.0, 0.75, d)
    cortex = np.exp(-(((d - 0.85) / 0.12) ** 2)).astype(np.float32)
    return (0.7 * body + 0.5 * cortex * (d < 1.1)).astype(np.float32)


def _body_half_width(v: FloatArray) -> FloatArray:
    """Half-width of the trunk per row: neck, shoulders, chest, abdomen."""
    knots_v = np.array([-1.0, -0.9, -0.84, -0.74, -0.6, 0.2, 1.0], dtype=np.float32)
    knots_w = np.array([0.22, 0.24, 0.6, 0.98, 0.92, 0.88, 0.82], dtype=np.float32)
    return np.interp(v, knots_v, knots_w).astype(np.float32)


def _ribs(
    density: FloatArray,
    u: FloatArray,
    v: FloatArray,
    anatomy: ChestAnatomy,
    rng: np.random.Generator,
) -> None:
    """Posterior ribs (arching out and down from the spine) and fainter anterior ribs."""
    v_col = v[:, 0]
    first = anatomy.apex - 0.08
    spacing = float(rng.uniform(0.125, 0.14))
    for side in (-1, 1):
        cols = np.nonzero(side * (u[0] - anatomy.shift) > 0)[0]
        col_slice = slice(int(cols[0]), int(cols[-1]) + 1)
        for k in range(10):
            v_k = first + k * spacing + float(rng.normal(0, 0.008))
            half = 0.022 + 0.002 * k
            lo, hi = v_k - 0.1, v_k + 0.55
            row_idx = np.nonzero((v_col > lo) & (v_col < hi))[0]
            if row_idx.size == 0:
                continue
            box = (slice(int(row_idx[0]), int(row_idx[-1]) + 1), col_slice)
            w = side * (u[box] - np.float32(anatomy.shift))
            vv = v[box]
            reach = 0.55 + 0.3 * min(k, 3) / 3
            t = (w - 0.06) / np.float32(reach - 0.06)
            posterior = np.float32(v_k) - 0.1 * t + 0.28 * t * t
            along = smoothstep(0.0, 0.06, t) * smoothstep(1.05, 0.95, t)
            density[box] += 1.8 * along * _band(vv, posterior, half)
            end = v_k + 0.18
            anterior = np.float32(end) + 0.22 * (np.float32(reach) - w) / np.float32(reach - 0.3)
            along_a = smoothstep(0.28, 0.4, w) * smoothstep(reach + 0.02, reach - 0.05, w)
            if k < 7:
                density[box] += 0.6 * along_a * _band(vv, anterior, half * 0.8)


def _clavicles_and_shoulders(
    density: FloatArray, u: FloatArray, v: FloatArray, anatomy: ChestAnatomy
) -> None:
    """S-shaped clavicles and the humeral heads, drawn in the top rows only."""
    top = slice(0, int(np.searchsorted(v[:, 0], -0.55)))
    uu, vv, dens = u[top], v[top], density[top]
    for side in (-1, 1):
        w = side * (uu - np.float32(anatomy.shift))
        t = (w - 0.05) / 0.5
        centre = -0.74 - 0.09 * t + 0.03 * np.sin(2 * np.pi * t)
        along = smoothstep(-0.02, 0.05, t) * smoothstep(1.05, 0.95, t)
        dens += 2.2 * along * _band(vv, centre.astype(np.float32), 0.03)
        dens += 3.0 * _ellipse(w, vv, (0.86, -0.7), (0.09, 0.09))


def _spine(density: FloatArray, u: FloatArray, v: FloatArray, shift: float) -> None:
    """Vertebral bodies with darker disc spaces, over the whole height."""
    across = smoothstep(0.06, 0.045, np.abs(u[:1] - np.float32(shift)))
    column = v[:, :1]
    discs = 0.75 + 0.25 * np.cos(2 * np.pi * (column + 1) / 0.13) ** 8
    density += 2.0 * across * (1.0 - 0.35 * discs).astype(np.float32)


def _vessel_tree(
    rng: np.random.Generator,
    side: int,
    anatomy: ChestAnatomy,
    collapse: _Collapse | None,
    pixels: int,
) -> NDArray[np.float64]:
    """Segments of the pulmonary vessels of one lung, as ``draw_segments`` rows (pixels).

    Five trunks leave the hilum (up, out and down), each branching in two six times, the
    branches shorter and thinner each time. With a collapse, the tree shrinks with the lung.
    """
    hilum = (0.14, -0.05 if side < 0 else -0.09)
    half = pixels / 2.0
    out: list[tuple[float, float, float, float, float, float]] = []
    stack: list[tuple[float, float, float, float, float, int]] = []
    for angle in (-80.0, -40.0, 0.0, 40.0, 75.0):
        heading = math.radians(angle + float(rng.normal(0, 8)))
        stack.append((hilum[0], hilum[1], heading, 0.13, 0.0085, 0))
    while stack:
        w0, v0, heading, length, radius, depth = stack.pop()
        w1 = w0 + length * math.cos(heading)
        v1 = v0 + length * math.sin(heading)
        a = (w0, v0) if collapse is None else collapse.apply(w0, v0)
        b = (w1, v1) if collapse is None else collapse.apply(w1, v1)
        scale = 1.0 if collapse is None else collapse.scale_w
        px_radius = max(radius * scale * half, 0.7)
        amplitude = radius * scale * 160.0
        x0 = (side * a[0] + anatomy.shift + 1.0) * half - 0.5
        x1 = (side * b[0] + anatomy.shift + 1.0) * half - 0.5
        y0 = (a[1] + 1.0) * half - 0.5
        y1 = (b[1] + 1.0) * half - 0.5
        out.append((x0, y0, x1, y1, px_radius, amplitude))
        if depth < 6:
            for sign in (-1.0, 1.0):
                turn = math.radians(float(rng.uniform(15.0, 32.0))) * sign
                stack.append(
                    (
                        w1,
                        v1,
                        heading + turn,
                        length * float(rng.uniform(0.7, 0.85)),
                        radius * 0.72,
                        depth + 1,
                    )
                )
    return np.asarray(out, dtype=np.float64)


def _texture(rng: np.random.Generator, size: int) -> FloatArray:
    """Smooth noise of unit spread with blobs of ~1/30 of the image (parenchyma, overlap).

    Coarse noise is enlarged with Gaussian interpolation weights, two small matrix products
    instead of a blur at full resolution.
    """
    coarse = max(size // 32, 4)
    small = rng.standard_normal((coarse, coarse)).astype(np.float32)
    centres = (np.arange(coarse) + 0.5) / coarse
    positions = (np.arange(size) + 0.5) / size
    weights = np.exp(-0.5 * ((positions[:, None] - centres[None, :]) * coarse / 0.8) ** 2)
    weights /= weights.sum(axis=1, keepdims=True)
    weights32 = weights.astype(np.float32)
    out: FloatArray = (weights32 @ small @ weights32.T).astype(np.float32, copy=False)
    out /= np.float32(max(float(out.std()), 1e-6))
    return out


def _rim_mm(anatomy: ChestAnatomy, collapse: _Collapse) -> float:
    """Interpleural distance at the hilum level, as the BTS guideline measures it."""
    v = np.float32(-0.05)
    lateral = float(_lateral(np.array([v], dtype=np.float32), anatomy)[0])
    v_source = collapse.anchor_v + (float(v) - collapse.anchor_v) / collapse.scale_v
    source_lateral = float(_lateral(np.array([v_source], dtype=np.float32), anatomy)[0])
    collapsed_lateral = collapse.apply(source_lateral, v_source)[0]
    return max(lateral - collapsed_lateral, 0.0) * DETECTOR_MM / 2


def build_cxr_phantom(
    rng: np.random.Generator, *, pneumothorax: bool, size: int, female: bool
) -> CxrPhantom:
    """Build the chest projection and its pneumothorax truth.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random choice.
    pneumothorax : bool
        Whether one lung is partly collapsed (side and size drawn from ``rng``).
    size : int
        Rows and columns of the image.
    female : bool
        Adds breast shadows over the lower zones, a common confounder of lung density.
    """
    anatomy = _draw_anatomy(rng, female)
    axis = ((np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0).astype(np.float32)
    u = np.broadcast_to(axis[None, :], (size, size))
    v = np.broadcast_to(axis[:, None], (size, size))
    x = (u - np.float32(anatomy.shift)).astype(np.float32)

    body_w = _body_half_width(axis)[:, None]
    trunk = np.sqrt(np.clip(1.0 - (x / body_w) ** 2, 0.0, None)).astype(np.float32)
    density = 10.0 * trunk
    density += 3.0 * smoothstep(0.12, 0.07, np.abs(x)) * smoothstep(0.25, 0.1, v)  # mediastinum
    density += 1.6 * _ellipse(x, v, (0.11, -0.3), (0.07, 0.06))  # aortic knob
    heart = _ellipse(x, v, anatomy.heart_centre, anatomy.heart_semi, anatomy.heart_angle)
    density += 4.0 * heart
    _spine(density, u, v, anatomy.shift)

    side_ptx = int(rng.choice([-1, 1])) if pneumothorax else 0
    fraction = float(math.exp(rng.uniform(math.log(0.05), math.log(0.45)))) if pneumothorax else 0.0
    vessels = np.zeros((size, size), dtype=np.float32)
    lungs = np.zeros((size, size), dtype=np.float32)
    mask = np.zeros((size, size), dtype=np.uint8)
    truth: dict[str, Any] = {"pneumothorax": pneumothorax}
    split = int(np.searchsorted(x[0], 0.0))
    for side in (-1, 1):
        # Each lung is drawn in its own half of the image only.
        cs = slice(0, split) if side < 0 else slice(split, size)
        w = (side * x[:, cs]).astype(np.float32)
        vs = v[:, cs]
        heart_s = heart[:, cs]
        lung = _lung(w, vs, side, anatomy) * (1.0 - 0.7 * heart_s)
        dome = anatomy.domes[0] if side < 0 else anatomy.domes[1]
        abdomen = smoothstep(-0.01, 0.03, vs - _base(w, dome, anatomy.lateral))
        dens = density[:, cs]
        dens += 3.0 * abdomen * trunk[:, cs]
        collapse = None
        if side == side_ptx:
            collapse = _Collapse(fraction, anchor_w=0.12, anchor_v=dome)
            source_w, source_v = collapse.undo(w, vs)
            collapsed = _lung(source_w, source_v, side, anatomy) * (1.0 - 0.7 * heart_s)
            inside = collapsed > 0.02
            space = (lung > 0.02) & ~inside
            mask[:, cs][space] = 1
            dens -= 6.0 * collapsed + 6.6 * lung * space
            dens += 0.8 * fraction * collapsed
            radius = max(1, size // 600)
            edge = box_blur(inside.astype(np.float32), radius, passes=1)
            line = 4.0 * edge * (1.0 - edge)
            near_space = box_blur(space.astype(np.float32), 4 * radius, passes=1) > 0.02
            dens += 1.0 * line * near_space
            presence = collapsed
            truth.update(
                side=SIDES[0] if side < 0 else SIDES[1],
                collapse_fraction=round(fraction, 3),
                rim_mm=round(_rim_mm(anatomy, collapse), 1),
            )
            truth["size"] = "large" if truth["rim_mm"] >= LARGE_RIM_MM else "small"
        else:
            dens -= 6.0 * lung
            presence = lung
        lungs[:, cs] = presence
        tree = np.zeros((size, size), dtype=np.float32)
        draw_segments(tree, _vessel_tree(rng, side, anatomy, collapse, size))
        vessels[:, cs] += tree[:, cs] * np.clip(presence * 3.0, 0.0, 1.0)
        hilum_v = -0.05 if side < 0 else -0.09
        dens += 1.2 * _ellipse(w, vs, (0.15, hilum_v), (0.05, 0.08))
    density += vessels
    density += 0.5 * _texture(rng, size) * lungs
    gastric = (0.3, anatomy.domes[1] + 0.1)
    density -= 2.5 * _ellipse(x, v, gastric, (0.09, 0.06))
    if female:
        for side in (-1, 1):
            density += 2.0 * _ellipse(side * x, v, (0.45, 0.42), (0.32, 0.2))
    _ribs(density, u, v, anatomy, rng)
    _clavicles_and_shoulders(density, u, v, anatomy)
    np.clip(density, 0.0, None, out=density)
    truth["pixels_in_mask"] = int(mask.sum())
    return CxrPhantom(density.astype(np.float32), mask, vessels, truth)


def expose(phantom: CxrPhantom, rng: np.random.Generator, *, bits: int) -> NDArray[np.uint16]:
    """Map attenuation to for-presentation grey levels, as a DR system's processing does.

    Log-like compression of the attenuation, mild unsharp masking (edge enhancement) and
    quantum noise; bright is dense (MONOCHROME2).
    """
    density = phantom.density
    size = density.shape[0]
    grey = 1.0 - np.exp(-density / np.float32(11.0))
    blurred = box_blur(grey, max(2, size // 128))
    grey += 0.6 * (grey - blurred)
    grey += rng.standard_normal(grey.shape, dtype=np.float32) * np.float32(0.008)
    top = (1 << bits) - 1
    np.clip(grey * np.float32(top * 0.95) + np.float32(top * 0.03), 0, top, out=grey)
    return np.rint(grey).astype(np.uint16)
