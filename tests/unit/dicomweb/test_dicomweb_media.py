"""Content negotiation: what pacs-ai offers, and the 406 when it does not transcode."""

from __future__ import annotations

import pytest

from pacs_ai.api.errors import ApiError
from pacs_ai.dicomweb.media import (
    negotiate_instances,
    negotiate_json,
    negotiate_pixels,
    negotiate_rendered,
    parse_accept,
)

EXPLICIT = "1.2.840.10008.1.2.1"
IMPLICIT = "1.2.840.10008.1.2"
JPEG = "1.2.840.10008.1.2.4.50"


def test_accept_parsing_orders_by_quality_and_keeps_quoted_commas() -> None:
    ranges = parse_accept('image/png;q=0.5, multipart/related; type="a,b"; q=0.9, text/x;q=0')
    assert [r.media_type for r in ranges] == ["multipart/related", "image/png"]
    assert ranges[0].params["type"] == "a,b"


@pytest.mark.parametrize(
    "accept",
    [
        None,
        "*/*",
        'multipart/related; type="application/dicom"',
        "multipart/related; type=application/dicom; transfer-syntax=*",
        f'multipart/related; type="application/dicom"; transfer-syntax={IMPLICIT}',
    ],
)
def test_instances_as_stored(accept: str | None) -> None:
    negotiate_instances(accept, {IMPLICIT})


def test_instances_in_a_syntax_not_stored_are_406() -> None:
    accept = f'multipart/related; type="application/dicom"; transfer-syntax={EXPLICIT}'
    with pytest.raises(ApiError) as refused:
        negotiate_instances(accept, {IMPLICIT, EXPLICIT})
    assert refused.value.status == 406
    with pytest.raises(ApiError):
        negotiate_instances("application/json", {EXPLICIT})


def test_native_frames() -> None:
    for accept in (
        None,
        "multipart/related; type=application/octet-stream",
        f"multipart/related; type=application/octet-stream; transfer-syntax={EXPLICIT}",
    ):
        part = negotiate_pixels(accept, IMPLICIT)
        assert part.header() == f"application/octet-stream; transfer-syntax={EXPLICIT}"


def test_compressed_frames() -> None:
    ohif = "multipart/related; type=application/octet-stream; transfer-syntax=*"
    assert (
        negotiate_pixels(ohif, JPEG).header() == f"application/octet-stream; transfer-syntax={JPEG}"
    )
    assert negotiate_pixels('multipart/related; type="image/jpeg"', JPEG).media_type == "image/jpeg"
    with pytest.raises(ApiError) as refused:
        negotiate_pixels("multipart/related; type=application/octet-stream", JPEG)
    assert refused.value.status == 406
    assert "transfer-syntax=*" in refused.value.reason


def test_json_and_rendered() -> None:
    negotiate_json("application/dicom+json")
    negotiate_json("application/json, text/plain")
    with pytest.raises(ApiError):
        negotiate_json('multipart/related; type="application/dicom+xml"')
    assert negotiate_rendered(None, None) == "image/jpeg"
    assert negotiate_rendered("image/png", None) == "image/png"
    assert negotiate_rendered("image/jpeg", "image/png") == "image/png"
    with pytest.raises(ApiError):
        negotiate_rendered("image/gif", None)
