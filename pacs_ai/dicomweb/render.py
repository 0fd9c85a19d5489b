"""Rendered and thumbnail resources (PS3.18 10.4.1.1.4, 8.3.5.1): pixels made into JPEG or PNG.

The grayscale pipeline is PS3.3 C.11's: the Modality LUT (Rescale Slope/Intercept), then the
VOI LUT as a window (C.11.2.1.2: ``linear``, ``linear_exact`` or ``sigmoid``) from the
``window=center,width,function`` parameter or else the header's first Window Center/Width,
else the full range of the frame; MONOCHROME1 is inverted so that the result displays as
MONOCHROME2. Color images are converted to RGB (YBR by pydicom, palettes through their LUT).

A multi-frame instance rendered at the instance level shows its first frame; frame-level
requests render the frame asked for. Pixel data that this server cannot decode (a transfer
syntax whose decoder is not installed, e.g. JPEG Lossless without pylibjpeg) is ``422``, not a
server error: the request was understood, the content cannot be processed.
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, pixel_array

from pacs_ai.api.errors import ApiError
from pacs_ai.dicomweb.retrieve import frame_count

log = logging.getLogger(__name__)

THUMBNAIL_SIZE = 128
VIEWPORT_MAX = 4096
FUNCTIONS = ("linear", "linear_exact", "sigmoid")


@dataclass(frozen=True)
class Window:
    """A VOI window (PS3.3 C.11.2.1.2)."""

    center: float
    width: float
    function: str = "linear"


@dataclass(frozen=True)
class RenderOptions:
    """What the query parameters of a rendered request ask for (PS3.18 8.3.5.1)."""

    media_type: str
    window: Window | None = None
    viewport: tuple[int, int] | None = None
    quality: int = 90


def parse_window(text: str | None) -> Window | None:
    """``center,width[,function]``; 400 when malformed."""
    if not text:
        return None
    parts = [p.strip() for p in text.split(",")]
    try:
        center, width = float(parts[0]), float(parts[1])
    except (ValueError, IndexError) as exc:
        raise ApiError(400, "window must be center,width[,function]") from exc
    function = parts[2].lower() if len(parts) > 2 and parts[2] else "linear"
    if function not in FUNCTIONS:
        raise ApiError(400, f"window function must be one of {', '.join(FUNCTIONS)}")
    if not np.isfinite(center) or not np.isfinite(width) or width < 1:
        raise ApiError(400, "window width must be at least 1 and values finite")
    return Window(center, width, function)


def parse_viewport(text: str | None) -> tuple[int, int] | None:
    """``vw,vh`` (pixels, PS3.18 8.3.5.1.3); 400 when malformed or absurd."""
    if not text:
        return None
    parts = text.split(",")
    try:
        width, height = int(parts[0]), int(parts[1])
    except (ValueError, IndexError) as exc:
        raise ApiError(400, "viewport must be width,height") from exc
    if not (1 <= width <= VIEWPORT_MAX and 1 <= height <= VIEWPORT_MAX):
        raise ApiError(400, f"viewport sides must be between 1 and {VIEWPORT_MAX}")
    return width, height


def parse_quality(text: str | None) -> int:
    """``quality`` 1-100 (PS3.18 8.3.5.1.4), 90 when absent."""
    if not text:
        return 90
    try:
        quality = int(text)
    except ValueError as exc:
        raise ApiError(400, "quality must be an integer 1-100") from exc
    if not 1 <= quality <= 100:
        raise ApiError(400, "quality must be an integer 1-100")
    return quality


def _first_number(value: object) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = next(iter(value), None)  # type: ignore[call-overload]
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    """Map values to 0-255 with a VOI window function (PS3.3 C.11.2.1.2.1-3)."""
    c, w = window.center, window.width
    if window.function == "linear_exact":
        scaled = (values - c) / w + 0.5
    elif window.function == "sigmoid":
        scaled = 1.0 / (1.0 + np.exp(-4.0 * (values - c) / w))
    else:
        scaled = (values - (c - 0.5)) / (w - 1) + 0.5 if w > 1 else (values >= c).astype(float)
    return np.clip(scaled * 255.0, 0, 255).astype(np.uint8)


def _grayscale(pixels: np.ndarray, ds: Dataset, window: Window | None) -> np.ndarray:
    values = np.asarray(apply_modality_lut(pixels, ds), dtype=np.float64)
    if window is None:
        center = _first_number(ds.get("WindowCenter"))
        width = _first_number(ds.get("WindowWidth"))
        if center is not None and width is not None and width >= 1:
            window = Window(center, width)
    if window is None:
        low, high = float(values.min()), float(values.max())
        window = Window((low + high) / 2 + 0.5, max(high - low + 1, 1.0))
    image = apply_window(values, window)
    if str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1":
        image = 255 - image
    return image


def _color(pixels: np.ndarray, ds: Dataset) -> np.ndarray:
    if str(ds.get("PhotometricInterpretation", "")).strip() == "PALETTE COLOR":
        pixels = apply_color_lut(pixels, ds)
        top = float(np.iinfo(pixels.dtype).max) if pixels.dtype.kind in "ui" else 1.0
    else:
        bits = int(ds.get("BitsStored", 8) or 8)
        top = float(2**bits - 1)
    if pixels.dtype == np.uint8 and top == 255:
        return pixels
    return np.clip(pixels.astype(np.float64) / top * 255.0, 0, 255).astype(np.uint8)


def render(path: Path, frame: int | None, options: RenderOptions, *, thumbnail: bool) -> bytes:
    """Encode one frame of the object at ``path`` as JPEG or PNG bytes."""
    ds = dcmread(path, stop_before_pixels=True)
    if "Rows" not in ds or "Columns" not in ds:
        raise ApiError(422, "this instance has no image to render")
    count = frame_count(ds)
    number = frame or 1
    if number > count:
        raise ApiError(404, f"frame {number} does not exist; the instance has {count}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pixels = pixel_array(path, index=number - 1 if count > 1 else None)
    except (NotImplementedError, RuntimeError, ValueError, TypeError, KeyError) as exc:
        syntax = ds.file_meta.get("TransferSyntaxUID", "?")
        log.info("cannot decode %s (%s): %s", path.name, syntax, exc)
        raise ApiError(
            422, f"pixel data in transfer syntax {syntax} cannot be decoded by this server"
        ) from exc
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples == 1 and str(ds.get("PhotometricInterpretation", "")).strip() != "PALETTE COLOR":
        image = Image.fromarray(_grayscale(pixels, ds, options.window))
    else:
        image = Image.fromarray(_color(pixels, ds))
    box = options.viewport or ((THUMBNAIL_SIZE, THUMBNAIL_SIZE) if thumbnail else None)
    if box is not None:
        image.thumbnail(box, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if options.media_type == "image/png":
        image.save(out, format="PNG")
    else:
        image.save(out, format="JPEG", quality=options.quality)
    return out.getvalue()
