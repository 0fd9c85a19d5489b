"""The algorithm behind an AI result, and how every result object names it.

A result must be traceable to the registry entry that made it: the model's name and version
go into the SEG's Segmentation Algorithm Identification Sequence (PS3.3 C.8.20.4) and into
each SR measurement as TID 4019 "Algorithm Identification", with the SHA-256 of the weights
as an algorithm parameter. The same identity is the SR's device observer (TID 1004) and the
equipment (General Equipment module, PS3.3 C.7.5.1) of both objects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import highdicom as hd
from pydicom.sr.coding import Code

from pacs_ai.dicom.codes import ARTIFICIAL_INTELLIGENCE
from pacs_ai.dicom.uids import derived_uid

#: Manufacturer (0008,0070) of every object pacs-ai makes.
MANUFACTURER = "pacs-ai"
#: The notice every result of a research-only model carries.
NOT_FOR_CLINICAL_USE = "NOT FOR CLINICAL USE"

_LO_MAX = 64  # LO value length, PS3.5 6.2
_VERSION_MAX = 16  # so that "AI <what> <name> <version> - <notice>" keeps room for a name
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Printable ASCII without backslash: valid in LO under the default character repertoire.
_TEXT = re.compile(r"^[\x20-\x5b\x5d-\x7e]+$")


@dataclass(frozen=True)
class Algorithm:
    """Who made a result: one model version of the registry.

    Attributes
    ----------
    name : str
        Model name as the registry knows it, e.g. ``"ct-head-hemorrhage"``.
    version : str
        Model version, e.g. ``"1.0.0"``.
    weights_sha256 : str
        SHA-256 of the weights file, 64 lower-case hexadecimal digits.
    research_only : bool
        Whether the model is not cleared for clinical use; its results then say so.
    family : pydicom.sr.coding.Code
        Algorithm family (CID 7162); artificial intelligence by default.

    Raises
    ------
    ValueError
        When the name (64) or version (16 characters) is empty, too long or not printable
        ASCII without backslash (so that it fits LO values under the default character
        repertoire), or the hash is not 64 lower-case hex digits.
    """

    name: str
    version: str
    weights_sha256: str
    research_only: bool = True
    family: Code = ARTIFICIAL_INTELLIGENCE

    def __post_init__(self) -> None:
        for label, text, longest in (
            ("name", self.name, _LO_MAX),
            ("version", self.version, _VERSION_MAX),
        ):
            if not text.strip() or len(text) > longest or not _TEXT.fullmatch(text):
                raise ValueError(
                    f"algorithm {label} {text!r}: 1 to {longest} printable ASCII characters, "
                    "no backslash"
                )
        if not _SHA256.fullmatch(self.weights_sha256):
            raise ValueError("weights_sha256 must be 64 lower-case hexadecimal digits")

    @property
    def device_uid(self) -> str:
        """Device Observer UID (TID 1004): the same for every result of this model version."""
        return str(
            derived_uid("pacs-ai", "algorithm", self.name, self.version, self.weights_sha256)
        )

    @property
    def parameters(self) -> dict[str, str]:
        """Algorithm parameters recorded with every result: the weights' SHA-256."""
        return {"weights_sha256": self.weights_sha256}

    def segment_identification(self) -> hd.AlgorithmIdentificationSequence:
        """Segmentation Algorithm Identification Sequence (PS3.3 C.8.20.4, Table 10-19)."""
        return hd.AlgorithmIdentificationSequence(
            name=self.name,
            family=self.family,
            version=self.version,
            parameters=self.parameters,
        )

    def sr_identification(self) -> hd.sr.AlgorithmIdentification:
        """TID 4019 "Algorithm Identification"; each parameter as ``name=value`` text."""
        return hd.sr.AlgorithmIdentification(
            name=self.name,
            version=self.version,
            parameters=[f"{key}={value}" for key, value in self.parameters.items()],
            family=self.family,
        )

    def description(self, what: str) -> str:
        """``AI <what> <name> <version>`` and, for a research-only model, the notice.

        Used for SeriesDescription (``what`` = ``"SEG"``, ``"SR"``) and ContentDescription.
        The version and the notice always survive; the name is shortened, if need be, to fit
        an LO value (64 characters). ``what`` is one of this package's short words.
        """
        notice = f" - {NOT_FOR_CLINICAL_USE}" if self.research_only else ""
        head = f"AI {what} "
        tail = f" {self.version}{notice}"
        return f"{head}{self.name[: _LO_MAX - len(head) - len(tail)]}{tail}"
