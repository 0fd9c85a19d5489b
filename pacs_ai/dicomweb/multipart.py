"""``multipart/related`` (RFC 2387) bodies, read and written for DICOMweb (PS3.18 8.6.1.2).

Reading (STOW-RS): the body is spooled to a temporary file while its bytes are counted, so a
request over ``Settings.max_request_bytes`` is refused (413) as soon as it passes the limit,
whatever its ``Content-Length`` says; then the whole body is checked for a well-formed
structure before any part is stored, so that a malformed request stores nothing. Parts are
found by searching a memory map of the spooled file: only one part at a time is copied into
memory, for the ingest path, which takes bytes.

Writing (WADO-RS): parts are generated one after the other from files read in chunks, so that
a whole study never sits in memory.
"""

from __future__ import annotations

import mmap
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pacs_ai.api.errors import ApiError
from pacs_ai.dicomweb.media import MULTIPART_RELATED, parse_media_type

CHUNK_BYTES = 1024 * 1024
HEADER_MAX = 16 * 1024
CRLF = b"\r\n"


class MultipartError(ValueError):
    """A body that is not well-formed ``multipart/related``."""


def new_boundary() -> str:
    """A boundary that cannot occur in the data by chance (128 random bits)."""
    return f"pacs-ai-{secrets.token_hex(16)}"


def content_type(part_type: str, boundary: str) -> str:
    """The Content-Type header of a multipart/related answer whose parts are ``part_type``."""
    return f'{MULTIPART_RELATED}; type="{part_type}"; boundary={boundary}'


def part_head(boundary: str, part_content_type: str, location: str | None = None) -> bytes:
    """The delimiter and headers that open one part."""
    lines = [f"--{boundary}", f"Content-Type: {part_content_type}"]
    if location:
        lines.append(f"Content-Location: {location}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def closing(boundary: str) -> bytes:
    """The close delimiter that ends the body."""
    return f"--{boundary}--\r\n".encode("ascii")


def file_chunks(path: Path, start: int = 0, length: int | None = None) -> Iterator[bytes]:
    """The bytes of ``path`` (or of a range of it) in chunks of :data:`CHUNK_BYTES`."""
    with path.open("rb") as handle:
        handle.seek(start)
        left = length
        while left is None or left > 0:
            size = CHUNK_BYTES if left is None else min(CHUNK_BYTES, left)
            chunk = handle.read(size)
            if not chunk:
                return
            if left is not None:
                left -= len(chunk)
            yield chunk


def request_boundary(header: str | None, expected_type: str) -> str:
    """The boundary of a ``multipart/related`` request whose ``type`` is ``expected_type``.

    Raises ApiError 415 for another media type or part type, 400 without a boundary.
    """
    if not header:
        raise ApiError(415, f'Content-Type must be multipart/related; type="{expected_type}"')
    declared = parse_media_type(header)
    if declared.media_type != MULTIPART_RELATED:
        raise ApiError(
            415,
            f'Content-Type must be multipart/related; type="{expected_type}", not '
            f"{declared.media_type}",
        )
    part_type = declared.params.get("type", expected_type).lower()
    if part_type != expected_type:
        raise ApiError(
            415, f"parts of type {part_type} are not supported; send {expected_type} parts"
        )
    boundary = declared.params.get("boundary", "")
    if not 1 <= len(boundary) <= 70:
        raise ApiError(400, "multipart/related Content-Type without a valid boundary")
    return boundary


class SpooledBody:
    """A request body on disk, readable through a memory map; close it when done."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self._handle = handle
        self.size = size
        self.view: mmap.mmap | bytes = (
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        )

    def close(self) -> None:
        """Release the map and the temporary file."""
        if isinstance(self.view, mmap.mmap):
            self.view.close()
        self._handle.close()


async def spool(
    chunks: AsyncIterator[bytes], *, limit: int, declared_length: str | None, folder: Path
) -> SpooledBody:
    """Write the body to a temporary file in ``folder``; 413 as soon as it exceeds ``limit``."""
    if declared_length is not None:
        try:
            declared = int(declared_length)
        except ValueError as exc:
            raise ApiError(400, "Content-Length is not a number") from exc
        if declared > limit:
            raise ApiError(413, f"request body of {declared} bytes exceeds the {limit} limit")
    folder.mkdir(parents=True, exist_ok=True)
    handle = tempfile.TemporaryFile(dir=folder)  # noqa: SIM115 (SpooledBody owns it)
    size = 0
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"request body exceeds the {limit} byte limit")
            handle.write(chunk)
        handle.flush()
        return SpooledBody(handle, size)
    except BaseException:
        handle.close()
        raise


@dataclass(frozen=True)
class Part:
    """One body part: its headers (lower-cased names) and where its content lies."""

    headers: dict[str, str]
    start: int
    end: int

    @property
    def content_type(self) -> str | None:
        """The part's Content-Type, if it has one."""
        return self.headers.get("content-type")


def _headers(raw: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in raw.split(CRLF):
        if not line:
            continue
        name, colon, value = line.partition(b":")
        if not colon or not name.strip():
            raise MultipartError(f"malformed part header line {line[:80]!r}")
        try:
            headers[name.strip().decode("ascii").lower()] = value.strip().decode("latin-1")
        except UnicodeDecodeError as exc:
            raise MultipartError("part header names must be ASCII") from exc
    return headers


def split_parts(body: mmap.mmap | bytes, boundary: str) -> list[Part]:
    """The parts of a multipart body (RFC 2046 5.1.1); MultipartError when malformed.

    A preamble before the first delimiter and an epilogue after the close delimiter are
    ignored, as RFC 2046 says. The body must end with the close delimiter: a truncated body is
    refused whole.
    """
    dash = b"--" + boundary.encode("ascii")
    size = len(body)
    first = body.find(dash)
    if first < 0 or (first > 0 and body[first - 2 : first] != CRLF):
        raise MultipartError("no multipart delimiter found: is the boundary right?")
    delimiter = CRLF + dash
    parts: list[Part] = []
    position = first + len(dash)
    while True:
        if body[position : position + 2] == b"--":
            return parts
        line_end = body.find(CRLF, position)
        if line_end < 0 or body[position:line_end].strip(b" \t"):
            raise MultipartError("malformed delimiter line")
        header_end = body.find(CRLF + CRLF, line_end)
        if body[line_end : line_end + 4] == CRLF + CRLF:
            header_end, headers = line_end, {}
        elif header_end < 0 or header_end - line_end > HEADER_MAX:
            raise MultipartError("part headers are missing or too long")
        else:
            headers = _headers(bytes(body[line_end + 2 : header_end]))
        start = header_end + 4
        end = body.find(delimiter, start)
        if end < 0 or start > size:
            raise MultipartError("body ends inside a part: no closing delimiter")
        parts.append(Part(headers, start, end))
        position = end + len(delimiter)
