"""The grayscale pipeline of rendered resources (PS3.3 C.11.2.1.2)."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from PIL import Image

from pacs_ai.api.errors import ApiError
from pacs_ai.dicomweb.render import (
    RenderOptions,
    Window,
    apply_window,
    parse_viewport,
    parse_window,
    render,
)
from tests.conftest import sample_path


def test_linear_window_matches_the_standard() -> None:
    values = np.array([-1000.0, 39.5, 40.0, 100.0, 1000.0])
    out = apply_window(values, Window(40, 400))
    assert out[0] == 0 and out[-1] == 255
    expected = ((100.0 - 39.5) / 399 + 0.5) * 255
    assert abs(int(out[3]) - expected) <= 1


def test_sigmoid_and_exact_are_monotonic() -> None:
    values = np.linspace(-500, 500, 50)
    for function in ("sigmoid", "linear_exact"):
        out = apply_window(values, Window(0, 200, function))
        assert np.all(np.diff(out.astype(int)) >= 0)


@pytest.mark.parametrize("text", ["1", "a,b", "40,0", "40,10,cubic", "nan,10"])
def test_bad_windows_are_400(text: str) -> None:
    with pytest.raises(ApiError):
        parse_window(text)


def test_viewport_bounds() -> None:
    assert parse_viewport("64,32") == (64, 32)
    with pytest.raises(ApiError):
        parse_viewport("0,10")
    with pytest.raises(ApiError):
        parse_viewport("99999,10")


def test_ct_renders_with_rescale_and_header_window() -> None:
    path = sample_path("CT_small.dcm")
    png = render(path, None, RenderOptions("image/png"), thumbnail=False)
    image = np.asarray(Image.open(io.BytesIO(png)))
    ds = pydicom.dcmread(path)
    assert image.shape == (ds.Rows, ds.Columns)
    assert image.std() > 10


def test_palette_color_renders_as_rgb() -> None:
    png = render(
        sample_path("examples_palette.dcm"), None, RenderOptions("image/png"), thumbnail=True
    )
    image = Image.open(io.BytesIO(png))
    assert image.mode == "RGB"
    assert max(image.size) == 128
