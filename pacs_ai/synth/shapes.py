"""Small vectorised drawing helpers shared by the phantoms.

Benchmarks generate hundreds of 512x512x40 volumes, so no helper loops over voxels: shapes
are drawn in the bounding box that holds them, with numpy broadcasting, and smoothing is a
running mean made from cumulative sums (no SciPy in the runtime dependencies).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float32]


def smoothstep(edge0: float, edge1: float, x: FloatArray) -> FloatArray:
    """Hermite step from 0 at ``edge0`` to 1 at ``edge1`` (either order), clipped.

    Soft edges instead of boolean masks keep high-resolution images free of stair-steps.
    """
    t = np.subtract(x, np.float32(edge0), dtype=np.float32)
    t *= np.float32(1.0 / (edge1 - edge0))
    np.maximum(t, np.float32(0.0), out=t)
    np.minimum(t, np.float32(1.0), out=t)
    out = np.multiply(t, np.float32(-2.0))
    out += np.float32(3.0)
    out *= t
    out *= t
    return out


def _running_mean(img: FloatArray, radius: int, axis: int) -> FloatArray:
    """Mean over a window of ``2 * radius + 1`` samples along ``axis`` (edges replicated)."""
    pad = [(0, 0)] * img.ndim
    pad[axis] = (radius + 1, radius)
    padded = np.pad(img, pad, mode="edge")
    csum = np.cumsum(padded, axis=axis, dtype=np.float32)
    n = img.shape[axis]
    upper = np.take(csum, np.arange(2 * radius + 1, 2 * radius + 1 + n), axis=axis)
    lower = np.take(csum, np.arange(0, n), axis=axis)
    upper -= lower
    upper *= np.float32(1.0 / (2 * radius + 1))
    return upper


def box_blur(img: FloatArray, radius: int, passes: int = 2) -> FloatArray:
    """Separable running-mean blur of a 2-D image; two passes approximate a Gaussian."""
    out = img.astype(np.float32, copy=True)
    if radius <= 0:
        return out
    for _ in range(passes):
        out = _running_mean(out, radius, axis=0)
        out = _running_mean(out, radius, axis=1)
    return out


def draw_segments(canvas: FloatArray, segments: NDArray[np.float64]) -> None:
    """Draw tubes (line segments with a cylinder's projected profile) into ``canvas``.

    Parameters
    ----------
    canvas : numpy.ndarray
        2-D float image, changed in place; overlapping tubes keep the larger value, so a
        branching tree stays continuous without bright knots at the joints.
    segments : numpy.ndarray
        ``(n, 6)`` rows of ``x0, y0, x1, y1, radius, amplitude`` in pixel units (x = column).
    """
    rows, cols = canvas.shape
    for x0, y0, x1, y1, radius, amplitude in segments:
        reach = radius + 1.0
        c0 = max(int(np.floor(min(x0, x1) - reach)), 0)
        c1 = min(int(np.ceil(max(x0, x1) + reach)) + 1, cols)
        r0 = max(int(np.floor(min(y0, y1) - reach)), 0)
        r1 = min(int(np.ceil(max(y0, y1) + reach)) + 1, rows)
        if c0 >= c1 or r0 >= r1:
            continue
        px = np.arange(c0, c1, dtype=np.float32)[None, :]
        py = np.arange(r0, r1, dtype=np.float32)[:, None]
        dx, dy = x1 - x0, y1 - y0
        length2 = dx * dx + dy * dy
        if length2 > 0:
            t = np.clip(((px - x0) * dx + (py - y0) * dy) / length2, 0.0, 1.0)
        else:
            t = np.zeros((1, 1), dtype=np.float32)
        d2 = (px - x0 - t * dx) ** 2 + (py - y0 - t * dy) ** 2
        profile = amplitude * np.sqrt(np.clip(1.0 - d2 / (radius * radius), 0.0, None))
        window = canvas[r0:r1, c0:c1]
        np.maximum(window, profile.astype(np.float32), out=window)
