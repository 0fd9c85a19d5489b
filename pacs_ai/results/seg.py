"""SEG writer: a model's masks as a DICOM Segmentation (PS3.3 A.51) built with highdicom.

One binary segment per segmented finding (present, non-empty mask; see
:attr:`~pacs_ai.results.finding.Finding.is_segmented`), numbered from 1 in the order of the
findings. Each segment says what it is (Segmented Property Category and Type, CID 7150/7151),
that an algorithm made it (Segment Algorithm Type AUTOMATIC, with the Segmentation Algorithm
Identification Sequence: model name, version, weights SHA-256) and which finding it is (the
Tracking UID that the SR's measurement groups of the same finding carry).

A run with nothing to segment gets no SEG: :func:`build_seg` refuses it, and the caller asks
``any(f.is_segmented for f in findings)`` first.
"""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset

from pacs_ai.results.algorithm import MANUFACTURER, Algorithm
from pacs_ai.results.finding import Finding, Tracking, tracking
from pacs_ai.results.source import check_mask, check_source_images

#: Content Label (0070,0080) of every pacs-ai SEG (CS: upper case, digits, underscore).
CONTENT_LABEL = "AI_SEGMENTATION"

_SEGMENT_LABEL_MAX = 64  # LO


def build_seg(
    *,
    source_images: Sequence[Dataset],
    findings: Sequence[Finding],
    algorithm: Algorithm,
    series_instance_uid: str,
    sop_instance_uid: str,
    series_number: int,
) -> hd.seg.Segmentation:
    """Build the Segmentation of one model run on one series.

    Parameters
    ----------
    source_images : sequence of pydicom.dataset.Dataset
        The series the model ran on, single-frame images in the order of the masks' frames.
        Pixel data need not be loaded. Patient, study and (for a radiograph) Patient
        Orientation are copied from them.
    findings : sequence of Finding
        All findings of the run, in the order given to :func:`pacs_ai.results.sr.build_sr`
        too (the order fixes segment numbers and tracking UIDs). Findings that are not
        segmented are skipped.
    algorithm : Algorithm
        The model version that made the masks.
    series_instance_uid, sop_instance_uid : str
        UIDs of the new series and instance, chosen by the caller (derived from the job, so
        that a retried job replaces rather than duplicates its result).
    series_number : int
        Series Number of the new series.

    Returns
    -------
    highdicom.seg.Segmentation
        A BINARY segmentation (Explicit VR Little Endian) whose empty frames are omitted;
        SeriesDescription and ContentDescription say that AI made it and, for a research-only
        model, that it is not for clinical use (Content Qualification RESEARCH).

    Raises
    ------
    ValueError
        When no finding is segmented, a mask does not match the source images, or the source
        images are not one series of single-frame images (see
        :func:`pacs_ai.results.source.check_source_images`).
    """
    check_source_images(source_images)
    series_uid = str(source_images[0].SeriesInstanceUID)
    segmented = [
        (index, finding, mask)
        for index, finding in enumerate(findings)
        if (mask := finding.segmentation) is not None
    ]
    if not segmented:
        raise ValueError("no finding is segmented: a negative or unlocalised run gets no SEG")
    descriptions = []
    for number, (index, finding, mask) in enumerate(segmented, start=1):
        check_mask(mask, source_images)
        ids = tracking(
            source_series_uid=series_uid, algorithm=algorithm, index=index, code=finding.code
        )
        descriptions.append(
            _segment_description(number=number, finding=finding, algorithm=algorithm, ids=ids)
        )
    seg = hd.seg.Segmentation(
        source_images=source_images,
        pixel_array=np.stack([mask for _, _, mask in segmented], axis=-1),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=series_instance_uid,
        series_number=series_number,
        sop_instance_uid=sop_instance_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=algorithm.name,
        software_versions=algorithm.version,
        device_serial_number=algorithm.weights_sha256,
        series_description=algorithm.description("SEG"),
        content_description=algorithm.description("segmentation"),
        content_label=CONTENT_LABEL,
        content_qualification=(
            hd.ContentQualificationValues.RESEARCH
            if algorithm.research_only
            else hd.ContentQualificationValues.PRODUCT
        ),
    )
    _copy_patient_orientation(seg, source_images[0])
    return seg


def _segment_description(
    *, number: int, finding: Finding, algorithm: Algorithm, ids: Tracking
) -> hd.seg.SegmentDescription:
    """Segment Description macro (PS3.3 C.8.20.2) of one finding."""
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=finding.code.meaning[:_SEGMENT_LABEL_MAX],
        segmented_property_category=finding.category,
        segmented_property_type=finding.code,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm.segment_identification(),
        tracking_uid=ids.uid,
        tracking_id=ids.label,
        anatomic_regions=None if finding.location is None else [finding.location.site],
    )


def _copy_patient_orientation(seg: hd.seg.Segmentation, source: Dataset) -> None:
    """Patient Orientation of a source without Image Plane module (General Image, C.7.6.1).

    A projection radiograph has no frame of reference, so the SEG's General Image module
    needs Patient Orientation (Type 2C), which highdicom does not copy.
    """
    if "PatientOrientation" not in seg and "PatientOrientation" in source:
        seg.PatientOrientation = source.PatientOrientation
