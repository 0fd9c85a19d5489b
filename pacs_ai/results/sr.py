"""SR writer: a model's findings as a TID 1500 Measurement Report in a Comprehensive 3D SR.

Content tree (PS3.16):

- TID 1500 "Imaging Measurement Report": language, observer context (TID 1002) naming the
  model as a device observer (TID 1004: UID, name, manufacturer, model name, and the weights'
  SHA-256 as serial number), procedure reported (CID 100, from the source's Procedure Code
  Sequence), the image library (TID 1600) of the source images, and per finding:
- a TID 1410 "Planar ROI Measurements and Qualitative Evaluations" group, always: finding
  (DCM 121071) and finding category, finding site with laterality, TID 4019 algorithm
  identification (name, version, ``weights_sha256=<hex>`` parameter), the presence as a
  qualitative evaluation (the finding's concept: SCT Present/Absent), the probability as a
  TID 300 measurement (DCM 122157 "Probability", UCUM ``%``, with its own TID 4019), and an
  Image Region (SCOORD POLYLINE, closed) on one source image. For a segmented finding that
  is the outline of the mask on its key slice (largest mask area; geometric purpose
  "Outline", CID 219); otherwise it is the border of the whole image the finding was judged
  on (the series' middle image), with no geometric purpose.
- for a segmented finding whose SEG is given, a second group with the same tracking
  identifiers that references the SEG segment: TID 1411 "Volumetric ROI Measurements" with
  Referenced Segment, Source Series for Segmentation and the volume (SCT 118565006, UCUM
  ``ml``) for a cross-sectional series; TID 1410 with Referenced Segmentation Frame for a
  single projection image, which has no volume.

Every group carries an image coordinate (SCOORD) on its own or through its tracking UID:
OHIF (3.x) merges groups by Tracking Unique Identifier and fails on a measurement that has
no image coordinates, such as a group that only references a segment.
"""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import SegmentationStorage

from pacs_ai.dicom.codes import (
    ABSENT,
    IMAGING_PROCEDURE,
    MILLILITER,
    OUTLINE,
    PERCENT,
    PRESENT,
    PROBABILITY,
    VOLUME,
)
from pacs_ai.results.algorithm import MANUFACTURER, Algorithm
from pacs_ai.results.finding import Finding, Tracking, tracking
from pacs_ai.results.geometry import (
    has_volume_geometry,
    image_outline,
    key_frame,
    outline,
    volume_ml,
)
from pacs_ai.results.source import check_mask, check_source_images, representative_index

_Group = (
    hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations
    | hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations
)


def build_sr(
    *,
    source_images: Sequence[Dataset],
    findings: Sequence[Finding],
    algorithm: Algorithm,
    seg: Dataset | None,
    series_instance_uid: str,
    sop_instance_uid: str,
    series_number: int,
) -> hd.sr.Comprehensive3DSR:
    """Build the Measurement Report of one model run on one series.

    Parameters
    ----------
    source_images : sequence of pydicom.dataset.Dataset
        The series the model ran on, single-frame images in the order of the masks' frames.
        Pixel data need not be loaded. Patient and study are copied from them.
    findings : sequence of Finding
        All findings of the run (at least one), in the order given to
        :func:`pacs_ai.results.seg.build_seg`; a negative run reports its findings absent.
    algorithm : Algorithm
        The model version that made the findings.
    seg : pydicom.dataset.Dataset, optional
        The run's Segmentation (from :func:`~pacs_ai.results.seg.build_seg`, or read back);
        ``None`` when there is none. Without it, segmented findings keep their key-slice
        outline but the report has no segment reference and no volume.
    series_instance_uid, sop_instance_uid : str
        UIDs of the new series and instance, chosen by the caller (derived from the job, so
        that a retried job replaces rather than duplicates its result).
    series_number : int
        Series Number of the new series.

    Returns
    -------
    highdicom.sr.Comprehensive3DSR
        Complete, unverified, preliminary; SeriesDescription says that AI made it and, for a
        research-only model, that it is not for clinical use (Content Qualification RESEARCH).
        The source images and the SEG are its evidence.

    Raises
    ------
    ValueError
        When there is no finding, a mask does not match the source images, the source images
        are not one series of single-frame images, or ``seg`` is not a Segmentation of this
        series with a segment (by Tracking UID) for every segmented finding.
    """
    check_source_images(source_images)
    if not findings:
        raise ValueError("a report needs at least one finding")
    if seg is not None:
        _check_seg(seg, source_images)
    series_uid = str(source_images[0].SeriesInstanceUID)
    groups: list[_Group] = []
    for index, finding in enumerate(findings):
        ids = tracking(
            source_series_uid=series_uid, algorithm=algorithm, index=index, code=finding.code
        )
        groups.append(_finding_group(finding, ids, algorithm, source_images))
        mask = finding.segmentation
        if mask is not None and seg is not None:
            groups.append(_segment_group(finding, mask, ids, algorithm, source_images, seg))
    report = hd.sr.MeasurementReport(
        observation_context=_observation_context(algorithm),
        procedure_reported=_procedures_reported(source_images[0]),
        imaging_measurements=groups,
        referenced_images=source_images,
    )
    return hd.sr.Comprehensive3DSR(
        evidence=[*source_images, *([seg] if seg is not None else [])],
        content=report[0],
        series_instance_uid=series_instance_uid,
        series_number=series_number,
        sop_instance_uid=sop_instance_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=False,
        is_verified=False,
        series_description=algorithm.description("SR"),
        manufacturer_model_name=algorithm.name,
        software_versions=algorithm.version,
        device_serial_number=algorithm.weights_sha256,
        content_qualification=(
            hd.ContentQualificationValues.RESEARCH
            if algorithm.research_only
            else hd.ContentQualificationValues.PRODUCT
        ),
    )


def _finding_group(
    finding: Finding, ids: Tracking, algorithm: Algorithm, source_images: Sequence[Dataset]
) -> hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations:
    """TID 1410 group: presence, probability and an image region of one finding."""
    mask = finding.segmentation
    if mask is not None:
        check_mask(mask, source_images)
        frame = key_frame(mask)
        image = source_images[frame]
        graphic = outline(mask[frame])
        purpose: Code | None = OUTLINE
    else:
        image = source_images[representative_index(source_images)]
        graphic = image_outline(int(image.Rows), int(image.Columns))
        purpose = None
    region = hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=graphic,
        source_image=hd.sr.SourceImageForRegion.from_source_image(image),
    )
    probability = hd.sr.Measurement(
        name=PROBABILITY,
        value=finding.probability * 100.0,
        unit=PERCENT,
        algorithm_id=algorithm.sr_identification(),
    )
    presence = hd.sr.QualitativeEvaluation(
        name=finding.code, value=PRESENT if finding.present else ABSENT
    )
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=ids.uid, identifier=ids.label),
        referenced_region=region,
        finding_type=finding.code,
        finding_category=finding.category,
        algorithm_id=algorithm.sr_identification(),
        finding_sites=_finding_sites(finding),
        measurements=[probability],
        qualitative_evaluations=[presence],
        geometric_purpose=purpose,
    )


def _segment_group(
    finding: Finding,
    mask: NDArray[np.bool_],
    ids: Tracking,
    algorithm: Algorithm,
    source_images: Sequence[Dataset],
    seg: Dataset,
) -> _Group:
    """The group that references the finding's SEG segment.

    TID 1411 with the whole segment and its volume for slices of a volume; TID 1410 with the
    segment's frame on the key image for projection images, which have no volume.
    """
    number = _segment_number(seg, ids.uid)
    tracking_identifier = hd.sr.TrackingIdentifier(uid=ids.uid, identifier=ids.label)
    if not has_volume_geometry(source_images):
        key_image = source_images[key_frame(mask)]
        return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking_identifier,
            referenced_segment=_segmentation_frame(seg, number, key_image),
            finding_type=finding.code,
            finding_category=finding.category,
            algorithm_id=algorithm.sr_identification(),
            finding_sites=_finding_sites(finding),
        )
    volume = hd.sr.Measurement(
        name=VOLUME,
        value=volume_ml(mask, source_images),
        unit=MILLILITER,
        algorithm_id=algorithm.sr_identification(),
    )
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking_identifier,
        referenced_segment=hd.sr.ReferencedSegment(
            sop_class_uid=str(seg.SOPClassUID),
            sop_instance_uid=str(seg.SOPInstanceUID),
            segment_number=number,
            source_series=hd.sr.SourceSeriesForSegmentation(
                str(source_images[0].SeriesInstanceUID)
            ),
        ),
        finding_type=finding.code,
        finding_category=finding.category,
        algorithm_id=algorithm.sr_identification(),
        finding_sites=_finding_sites(finding),
        measurements=[volume],
    )


def _finding_sites(finding: Finding) -> list[hd.sr.FindingSite] | None:
    if finding.location is None:
        return None
    laterality = finding.location.laterality
    return [
        hd.sr.FindingSite(
            anatomic_location=finding.location.site,
            laterality=None if laterality is None else laterality.code,
        )
    ]


def _observation_context(algorithm: Algorithm) -> hd.sr.ObservationContext:
    """TID 1002 with the model as device observer (TID 1004)."""
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=algorithm.device_uid,
        name=f"{algorithm.name} {algorithm.version}",
        manufacturer_name=MANUFACTURER,
        model_name=algorithm.name,
        serial_number=algorithm.weights_sha256,
    )
    return hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device, observer_identifying_attributes=device
        )
    )


def _procedures_reported(source: Dataset) -> list[Code]:
    """The source's Procedure Code Sequence (General Study, C.7.2.1), else "Imaging procedure"."""
    reported = [
        Code(str(item.CodeValue), str(item.CodingSchemeDesignator), str(item.CodeMeaning))
        for item in source.get("ProcedureCodeSequence", [])
        if "CodeValue" in item and "CodingSchemeDesignator" in item and "CodeMeaning" in item
    ]
    return reported or [IMAGING_PROCEDURE]


def _check_seg(seg: Dataset, source_images: Sequence[Dataset]) -> None:
    first = source_images[0]
    if seg.SOPClassUID != SegmentationStorage:
        raise ValueError("seg is not a Segmentation Storage instance")
    if seg.StudyInstanceUID != first.StudyInstanceUID:
        raise ValueError("seg belongs to another study")
    referenced = {str(item.SeriesInstanceUID) for item in seg.get("ReferencedSeriesSequence", [])}
    if str(first.SeriesInstanceUID) not in referenced:
        raise ValueError("seg does not reference the source series")


def _segment_number(seg: Dataset, uid: str) -> int:
    for segment in seg.SegmentSequence:
        if segment.get("TrackingUID") == uid:
            return int(segment.SegmentNumber)
    raise ValueError(f"seg has no segment with Tracking UID {uid}")


def _segmentation_frame(
    seg: Dataset, number: int, source: Dataset
) -> hd.sr.ReferencedSegmentationFrame:
    """TID 1410 "Referenced Segmentation Frame": the frame of a segment on one source image.

    The Image SOP Instance Reference macro (PS3.3 Table 10-3) allows Referenced Frame Number
    or Referenced Segment Number, not both (dciodvfy holds highdicom to it); a frame of a
    BINARY SEG belongs to one segment, so the segment number is dropped.
    """
    reference = hd.sr.ReferencedSegmentationFrame(
        sop_class_uid=str(seg.SOPClassUID),
        sop_instance_uid=str(seg.SOPInstanceUID),
        frame_number=_segment_frame(seg, number, str(source.SOPInstanceUID)),
        segment_number=number,
        source_image=hd.sr.SourceImageForSegmentation.from_source_image(source),
    )
    del reference[0].ReferencedSOPSequence[0].ReferencedSegmentNumber
    return reference


def _segment_frame(seg: Dataset, number: int, source_uid: str) -> int:
    """Number of the SEG frame of segment ``number`` derived from one source image.

    Reads Segment Identification (shared or per frame) and Derivation Image (per frame) of the
    Multi-frame Functional Groups (PS3.3 C.8.20.3).
    """
    shared = seg.SharedFunctionalGroupsSequence[0]
    for position, frame in enumerate(seg.PerFrameFunctionalGroupsSequence, start=1):
        identification = frame.get("SegmentIdentificationSequence") or shared.get(
            "SegmentIdentificationSequence"
        )
        sources = {
            str(image.ReferencedSOPInstanceUID)
            for derivation in frame.get("DerivationImageSequence", [])
            for image in derivation.get("SourceImageSequence", [])
        }
        if int(identification[0].ReferencedSegmentNumber) == number and source_uid in sources:
            return position
    raise ValueError(f"seg has no frame of segment {number} on image {source_uid}")
