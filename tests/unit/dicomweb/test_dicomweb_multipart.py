"""multipart/related parsing of STOW-RS bodies (RFC 2046 5.1.1)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pacs_ai.api.errors import ApiError
from pacs_ai.dicomweb.multipart import MultipartError, request_boundary, split_parts


def _body(parts: list[bytes], boundary: str = "XyZ", preamble: bytes = b"") -> bytes:
    out = preamble
    for part in parts:
        out += f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part
        out += b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def _contents(body: bytes, boundary: str = "XyZ") -> list[bytes]:
    return [body[p.start : p.end] for p in split_parts(body, boundary)]


def test_parts_and_headers() -> None:
    body = _body([b"one", b"", b"three\r\n--not-the-boundary"])
    parts = split_parts(body, "XyZ")
    assert [body[p.start : p.end] for p in parts] == [b"one", b"", b"three\r\n--not-the-boundary"]
    assert parts[0].content_type == "application/dicom"


def test_preamble_and_leading_crlf_are_ignored() -> None:
    assert _contents(_body([b"a"], preamble=b"\r\n")) == [b"a"]
    assert _contents(_body([b"a"], preamble=b"some preamble\r\n")) == [b"a"]


def test_part_without_headers() -> None:
    assert _contents(b"--XyZ\r\n\r\nraw\r\n--XyZ--") == [b"raw"]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"no delimiter at all",
        b"--XyZ\r\nContent-Type: application/dicom\r\n\r\ntruncated",
        b"--XyZ\r\nbroken header line\r\n\r\ndata\r\n--XyZ--",
        b"--XyZjunk\r\n\r\ndata\r\n--XyZ--",
        b"prefix--XyZ\r\n\r\ndata\r\n--XyZ--",
    ],
)
def test_malformed_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(MultipartError):
        split_parts(body, "XyZ")


@given(st.lists(st.binary(max_size=200), max_size=5))
@settings(max_examples=200, deadline=None)
def test_round_trip(parts: list[bytes]) -> None:
    boundary = "b0undary-7f3a"
    body = _body(parts, boundary)
    assert _contents(body, boundary) == parts


@given(st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_random_bodies_parse_or_are_refused(body: bytes) -> None:
    try:
        parts = split_parts(body, "XyZ")
    except MultipartError:
        return
    for part in parts:
        assert 0 <= part.start <= part.end <= len(body)


@pytest.mark.parametrize(
    ("header", "status"),
    [
        (None, 415),
        ("application/dicom", 415),
        ('multipart/related; type="application/dicom+xml"; boundary=a', 415),
        ('multipart/related; type="application/dicom"', 400),
        ('multipart/related; type="application/dicom"; boundary=' + "x" * 71, 400),
    ],
)
def test_request_content_types(header: str | None, status: int) -> None:
    with pytest.raises(ApiError) as refused:
        request_boundary(header, "application/dicom")
    assert refused.value.status == status


def test_boundary_is_read_quoted_or_not() -> None:
    assert (
        request_boundary(
            'multipart/related; type="application/dicom"; boundary="a b"', "application/dicom"
        )
        == "a b"
    )
    assert request_boundary("multipart/related; boundary=abc", "application/dicom") == "abc"
