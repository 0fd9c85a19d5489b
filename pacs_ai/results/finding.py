"""What a model found on one series, in the terms the result writers need.

A :class:`Finding` is the typed hand-over from inference to the writers: a coded concept, a
present/absent call with its probability, and, for segmentation models, a voxel mask aligned
with the source images. The writers derive everything else (volume, key slice, outline).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from pydicom.sr.coding import Code

from pacs_ai.dicom.codes import BILATERAL, LEFT, MORPHOLOGICALLY_ABNORMAL_STRUCTURE, RIGHT
from pacs_ai.dicom.uids import derived_uid
from pacs_ai.results.algorithm import Algorithm


class Laterality(enum.Enum):
    """Side of the patient a finding lies on (CID 244 "Laterality")."""

    LEFT = "left"
    RIGHT = "right"
    BILATERAL = "bilateral"

    @property
    def code(self) -> Code:
        """The SNOMED CT concept of this side."""
        return _LATERALITY_CODES[self]


_LATERALITY_CODES = {
    Laterality.LEFT: LEFT,
    Laterality.RIGHT: RIGHT,
    Laterality.BILATERAL: BILATERAL,
}


@dataclass(frozen=True)
class Location:
    """Where a finding lies: TID 1501/1410 "Finding Site" with its laterality modifier.

    Attributes
    ----------
    site : pydicom.sr.coding.Code
        Anatomic location (SNOMED CT; CID 4 "Anatomic Region", CID 7151), e.g. ``BRAIN`` or
        ``PLEURA`` of :mod:`pacs_ai.dicom.codes`.
    laterality : Laterality, optional
        Side of the patient, e.g. the side of a pneumothorax.
    """

    site: Code
    laterality: Laterality | None = None


@dataclass(frozen=True)
class Finding:
    """One finding of one model on one series.

    Attributes
    ----------
    code : pydicom.sr.coding.Code
        What was looked for, e.g. SCT 1386000 "Intracranial hemorrhage": the SEG segment's
        property type and the SR's finding and presence concept.
    present : bool
        The model's call at its operating point.
    probability : float
        The model's probability of the finding, in ``[0, 1]``.
    mask : numpy.ndarray of bool, optional
        Segmentation of a present finding, shape ``(frames, rows, columns)`` with frame ``i``
        on ``source_images[i]`` of the writers; a 2-D mask is one frame. ``None`` (or an empty
        mask) for a classification: such a finding gets no SEG segment.
    location : Location, optional
        Finding site and laterality.
    category : pydicom.sr.coding.Code
        Segmented property category (CID 7150), also the SR's finding category;
        SCT 49755003 "Morphologically abnormal structure" by default.

    Raises
    ------
    ValueError
        When the probability is not a number in ``[0, 1]``, the mask is not 2-D or 3-D, not
        boolean or 0/1 integers, or an absent finding carries a non-empty mask.
    """

    code: Code
    present: bool
    probability: float
    mask: NDArray[np.bool_] | None = field(default=None, compare=False, repr=False)
    location: Location | None = None
    category: Code = MORPHOLOGICALLY_ABNORMAL_STRUCTURE

    def __post_init__(self) -> None:
        if not (math.isfinite(self.probability) and 0.0 <= self.probability <= 1.0):
            raise ValueError(f"probability {self.probability!r} is not in [0, 1]")
        if self.mask is None:
            return
        mask = np.asarray(self.mask)
        if mask.ndim not in (2, 3):
            raise ValueError(f"mask must be 2-D or 3-D, not {mask.ndim}-D")
        if mask.dtype != np.bool_:
            if not np.issubdtype(mask.dtype, np.integer) or not np.isin(mask, (0, 1)).all():
                raise ValueError("mask must be boolean or hold only 0 and 1")
            mask = mask.astype(np.bool_)
        if not self.present and mask.any():
            raise ValueError("an absent finding carries no segmentation: drop its mask")
        frames = mask if mask.ndim == 3 else mask[np.newaxis]
        if frames.flags.writeable:  # keep a private, read-only copy: the dataclass is frozen
            frames = frames.copy()
            frames.setflags(write=False)
        object.__setattr__(self, "mask", frames)

    @property
    def segmentation(self) -> NDArray[np.bool_] | None:
        """The mask, ``(frames, rows, columns)``, when it outlines a present finding; else None."""
        if self.present and self.mask is not None and self.mask.any():
            return self.mask
        return None

    @property
    def is_segmented(self) -> bool:
        """Whether the finding gets a SEG segment: present, with a non-empty mask."""
        return self.segmentation is not None


@dataclass(frozen=True)
class Tracking:
    """Tracking Identifier and Tracking Unique Identifier of a finding (TID 4108).

    The SEG segment (Tracking ID, Tracking UID; PS3.3 C.8.20.2) and the SR measurement groups
    of one finding carry the same pair: that is how a reader, and OHIF, which merges SR
    measurement groups by Tracking Unique Identifier, ties them together.
    """

    uid: str
    label: str


def tracking(*, source_series_uid: str, algorithm: Algorithm, index: int, code: Code) -> Tracking:
    """The tracking identifiers of the ``index``-th finding of a run.

    The UID depends only on the run's inputs, so a retried job writes the same value; the
    label is the finding's meaning and its 1-based position, e.g. ``"Pneumothorax #1"``.
    """
    uid = derived_uid(
        "pacs-ai",
        "finding",
        source_series_uid,
        algorithm.device_uid,
        index,
        code.scheme_designator,
        code.value,
    )
    return Tracking(uid=str(uid), label=f"{code.meaning} #{index + 1}")
