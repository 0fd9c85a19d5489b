"""Media types and content negotiation for DICOMweb (PS3.18 8.7).

pacs-ai never transcodes: an object leaves in the transfer syntax it arrived in. Negotiation
therefore decides whether what the client accepts covers what is stored, and answers
``406 Not Acceptable`` with the reason when it does not (PS3.18 8.7.3.5).

Decisions where PS3.18 leaves room or where clients differ:

- For whole objects (``application/dicom``) a missing ``transfer-syntax`` parameter is read as
  ``*``: a Part 10 object names its own transfer syntax, so a client cannot misread it, and
  common clients (dicomweb-client, OHIF) omit the parameter.
- For frames and bulk data (``application/octet-stream``), which do not describe themselves,
  a missing parameter means the PS3.18 default, Explicit VR Little Endian: compressed frames
  are sent only to a client that asked for their syntax, ``*``, or their image media type.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydicom.uid import UID

from pacs_ai.api.errors import ApiError

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
OCTET_STREAM = "application/octet-stream"
MULTIPART_RELATED = "multipart/related"

NATIVE_LITTLE_ENDIAN = {
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.2",  # frames are byte-swapped to little endian when served
}
"""Native syntaxes whose frames are served as Explicit VR Little Endian pixel bytes."""

IMAGE_MEDIA_TYPES: dict[str, tuple[str, ...]] = {
    "1.2.840.10008.1.2.4.50": ("image/jpeg",),
    "1.2.840.10008.1.2.4.51": ("image/jpeg",),
    "1.2.840.10008.1.2.4.57": ("image/jpeg",),
    "1.2.840.10008.1.2.4.70": ("image/jpeg",),
    "1.2.840.10008.1.2.4.80": ("image/jls", "image/x-jls"),
    "1.2.840.10008.1.2.4.81": ("image/jls", "image/x-jls"),
    "1.2.840.10008.1.2.4.90": ("image/jp2",),
    "1.2.840.10008.1.2.4.91": ("image/jp2",),
    "1.2.840.10008.1.2.4.92": ("image/jpx",),
    "1.2.840.10008.1.2.4.93": ("image/jpx",),
    "1.2.840.10008.1.2.4.201": ("image/jphc",),
    "1.2.840.10008.1.2.4.202": ("image/jphc",),
    "1.2.840.10008.1.2.4.203": ("image/jphc",),
    "1.2.840.10008.1.2.5": ("image/dicom-rle", "image/x-dicom-rle"),
}
"""PS3.18 Table 8.7.3-5: the image media type of each compressed transfer syntax."""


@dataclass(frozen=True)
class MediaRange:
    """One entry of an Accept header: ``type/subtype`` with its parameters and quality."""

    media_type: str
    params: dict[str, str] = field(default_factory=dict)
    q: float = 1.0

    @property
    def transfer_syntax(self) -> str | None:
        """The ``transfer-syntax`` parameter, if given."""
        return self.params.get("transfer-syntax")

    def covers(self, media_type: str) -> bool:
        """True when this range admits ``media_type`` (``*/*``, ``type/*`` or exact)."""
        if self.media_type in ("*/*", media_type):
            return True
        major, _, minor = self.media_type.partition("/")
        return minor == "*" and media_type.split("/")[0] == major


def _split(text: str, separator: str) -> list[str]:
    """Split on ``separator`` outside double quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def parse_media_type(text: str) -> MediaRange:
    """``type/subtype; a=b; c="d"`` as a MediaRange (parameter names lower-cased)."""
    pieces = _split(text, ";")
    media_type = pieces[0].strip().lower()
    params: dict[str, str] = {}
    q = 1.0
    for piece in pieces[1:]:
        name, _, value = piece.partition("=")
        name = name.strip().lower()
        value = value.strip().strip('"')
        if not name:
            continue
        if name == "q":
            try:
                q = float(value)
            except ValueError:
                q = 0.0
        else:
            params[name] = value
    return MediaRange(media_type, params, q)


def parse_accept(header: str | None) -> list[MediaRange]:
    """The acceptable media ranges, best first; an absent header accepts anything."""
    if not header or not header.strip():
        return [MediaRange("*/*")]
    ranges = [parse_media_type(part) for part in _split(header, ",") if part.strip()]
    ranges = [r for r in ranges if r.q > 0 and "/" in r.media_type]
    return sorted(ranges, key=lambda r: -r.q)


def _part_type(accepted: MediaRange) -> str | None:
    """The part media type a ``multipart/related`` range asks for (``type`` parameter)."""
    return accepted.params.get("type", "").lower() or None


def negotiate_json(header: str | None) -> None:
    """Check the client accepts DICOM JSON (QIDO-RS, metadata); 406 otherwise."""
    for accepted in parse_accept(header):
        if accepted.covers(DICOM_JSON) or accepted.covers("application/json"):
            return
    raise ApiError(406, "only application/dicom+json is offered for this resource")


def negotiate_instances(header: str | None, stored_syntaxes: set[str]) -> None:
    """Check the client accepts the stored objects as ``multipart/related; type=application/dicom``.

    Raises ApiError(406) when every acceptable range names a transfer syntax some of the objects
    are not stored in (pacs-ai does not transcode).
    """
    refusals = []
    for accepted in parse_accept(header):
        if accepted.media_type == MULTIPART_RELATED:
            if _part_type(accepted) not in (None, DICOM):
                continue
        elif not (accepted.covers(DICOM) or accepted.covers(MULTIPART_RELATED)):
            continue
        syntax = accepted.transfer_syntax
        if syntax in (None, "*") or stored_syntaxes == {syntax}:
            return
        refusals.append(syntax)
    stored = ", ".join(sorted(stored_syntaxes))
    if refusals:
        raise ApiError(
            406,
            f"requested transfer syntax {', '.join(refusals)} but the objects are stored as "
            f"{stored}; pacs-ai does not transcode: ask transfer-syntax=*",
        )
    raise ApiError(406, 'this resource is offered as multipart/related; type="application/dicom"')


@dataclass(frozen=True)
class PartType:
    """The Content-Type of each part of a bulk data answer."""

    media_type: str
    transfer_syntax: str

    def header(self) -> str:
        """The part's Content-Type header value."""
        return f"{self.media_type}; transfer-syntax={self.transfer_syntax}"


def negotiate_pixels(header: str | None, stored_syntax: str) -> PartType:
    """The part type for frames of an object stored in ``stored_syntax`` (PS3.18 8.7.3.3.2).

    Native data goes as ``application/octet-stream`` in Explicit VR Little Endian. Compressed
    data goes as stored: as ``application/octet-stream`` when the client asked for that syntax
    or ``*``, or as its image media type (``image/jpeg``...). Otherwise 406.
    """
    native = not UID(stored_syntax).is_encapsulated
    served_syntax = EXPLICIT_VR_LITTLE_ENDIAN if native else stored_syntax
    images = IMAGE_MEDIA_TYPES.get(stored_syntax, ())
    for accepted in parse_accept(header):
        part = _part_type(accepted) if accepted.media_type == MULTIPART_RELATED else None
        if accepted.media_type == MULTIPART_RELATED and part is None:
            part = "*/*"
        candidate = MediaRange(part or accepted.media_type, accepted.params, accepted.q)
        syntax = candidate.transfer_syntax
        if candidate.covers(OCTET_STREAM) and (
            syntax == "*"
            or syntax == served_syntax
            or (syntax is None and (native or candidate.media_type == "*/*"))
        ):
            return PartType(OCTET_STREAM, served_syntax)
        for image in images:
            if candidate.media_type == image and syntax in (None, "*", stored_syntax):
                return PartType(image, stored_syntax)
    raise ApiError(
        406,
        f"the pixel data is stored as {stored_syntax}; pacs-ai does not transcode: ask "
        f"for application/octet-stream with transfer-syntax=* or {served_syntax}"
        + (f", or for {images[0]}" if images else ""),
    )


RENDERED_TYPES = ("image/jpeg", "image/png")


def negotiate_rendered(header: str | None, accept_param: str | None) -> str:
    """``image/jpeg`` (the PS3.18 8.3.5.1.2 default) or ``image/png``; 406 for anything else.

    The ``accept`` query parameter (PS3.18 8.3.3.1), when given, overrides the header.
    """
    source = accept_param if accept_param else header
    for accepted in parse_accept(source):
        for media_type in RENDERED_TYPES:
            if accepted.covers(media_type):
                return media_type
    raise ApiError(406, "rendered images are offered as image/jpeg or image/png")
