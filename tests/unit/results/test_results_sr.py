"""SR writer round trip: build, write, read back with pydicom and highdicom, dciodvfy, dsrdump.

Besides the TID 1500 content, each report is checked the way OHIF reads it: measurement
groups merged by Tracking Unique Identifier, each merged measurement with an image coordinate
on a source image, and an image library.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code
from pydicom.uid import Comprehensive3DSRStorage

from pacs_ai.dicom.codes import (
    ABSENT,
    BRAIN,
    INTRACRANIAL_HEMORRHAGE,
    MILLILITER,
    MORPHOLOGICALLY_ABNORMAL_STRUCTURE,
    PERCENT,
    PLEURA,
    PNEUMOTHORAX,
    PRESENT,
    PROBABILITY,
    VOLUME,
)
from pacs_ai.dicom.uids import derived_uid
from pacs_ai.results import (
    Algorithm,
    Finding,
    Laterality,
    Location,
    build_seg,
    build_sr,
    tracking,
    volume_ml,
)
from pacs_ai.results.algorithm import NOT_FOR_CLINICAL_USE
from pacs_ai.synth import SyntheticStudy

Verdict = tuple[list[str], list[str]]  # dciodvfy's Error and Warning lines
Writer = Callable[[Dataset, str], Path]

ALGORITHM_NAME = Code("111001", "DCM", "Algorithm Name")
ALGORITHM_VERSION = Code("111003", "DCM", "Algorithm Version")
ALGORITHM_PARAMETERS = Code("111002", "DCM", "Algorithm Parameters")
TRACKING_UID = "112040"


def _run(
    study: SyntheticStudy,
    findings: list[Finding],
    algorithm: Algorithm,
    write: Writer,
    *,
    with_seg: bool = True,
) -> tuple[Path, Path | None]:
    """Build (and write) what the pipeline would: a SEG when something is segmented, an SR."""
    seg = None
    seg_path = None
    if with_seg and any(f.is_segmented for f in findings):
        seg = build_seg(
            source_images=study.datasets,
            findings=findings,
            algorithm=algorithm,
            series_instance_uid=derived_uid("test", "seg-series", study.seed),
            sop_instance_uid=derived_uid("test", "seg", study.seed),
            series_number=901,
        )
        seg_path = write(seg, f"{study.kind}_{study.seed}_seg.dcm")
        seg = dcmread(seg_path)  # as the pipeline would have it back from the archive
    sr = build_sr(
        source_images=study.datasets,
        findings=findings,
        algorithm=algorithm,
        seg=seg,
        series_instance_uid=derived_uid("test", "sr-series", study.seed),
        sop_instance_uid=derived_uid("test", "sr", study.seed),
        series_number=902,
    )
    return write(sr, f"{study.kind}_{study.seed}_sr.dcm"), seg_path


def _concept(item: Dataset) -> tuple[str, str]:
    name = item.ConceptNameCodeSequence[0]
    return str(name.CodingSchemeDesignator), str(name.CodeValue)


def _groups(ds: Dataset) -> list[Dataset]:
    root = ds.ContentSequence
    container = next(i for i in root if _concept(i) == ("DCM", "126010"))
    return [g for g in container.ContentSequence if _concept(g) == ("DCM", "125007")]


def _texts(item: Dataset, name: Code) -> list[str]:
    key = (name.scheme_designator, name.value)
    return [str(i.TextValue) for i in item.get("ContentSequence", []) if _concept(i) == key]


def _assert_algorithm_identified(item: Dataset, algorithm: Algorithm) -> None:
    """TID 4019 below ``item``: name, version and the weights' SHA-256."""
    assert _texts(item, ALGORITHM_NAME) == [algorithm.name]
    assert _texts(item, ALGORITHM_VERSION) == [algorithm.version]
    assert _texts(item, ALGORITHM_PARAMETERS) == [f"weights_sha256={algorithm.weights_sha256}"]


def _assert_ohif_can_read(ds: Dataset, study: SyntheticStudy) -> None:
    """OHIF 3.x: groups merged by Tracking UID must each hold a SCOORD on a source image."""
    sources = {str(image.SOPInstanceUID) for image in study.datasets}
    merged: dict[str, list[Dataset]] = {}
    for group in _groups(ds):
        items = list(group.ContentSequence)
        uids = [i for i in items if _concept(i) == ("DCM", TRACKING_UID)]
        assert len(uids) == 1, "every measurement group needs a Tracking Unique Identifier"
        # OHIF takes the first UIDREF of the merged group as the measurement's identifier
        assert next(i for i in items if i.ValueType == "UIDREF") is uids[0]
        merged.setdefault(str(uids[0].UID), []).extend(items)
    assert merged
    for items in merged.values():
        scoords = [i for i in items if i.ValueType == "SCOORD"]
        assert scoords, "a measurement without image coordinates makes OHIF fail"
        reference = scoords[0].ContentSequence[0].ReferencedSOPSequence[0]
        assert str(reference.ReferencedSOPInstanceUID) in sources
    library = next(i for i in ds.ContentSequence if _concept(i) == ("DCM", "111028"))
    assert library.ContentSequence  # OHIF lists the referenced images from the library


def _assert_document(
    ds: Dataset,
    study: SyntheticStudy,
    algorithm: Algorithm,
    verdict: Verdict,
    complaints: list[str],
) -> None:
    """What every report says, whatever it found."""
    source = study.datasets[0]
    assert ds.SOPClassUID == Comprehensive3DSRStorage
    assert ds.SOPInstanceUID == derived_uid("test", "sr", study.seed)
    assert ds.SeriesInstanceUID == derived_uid("test", "sr-series", study.seed)
    assert ds.SeriesNumber == 902
    assert ds.Modality == "SR"
    for keyword in ("PatientName", "PatientID", "StudyInstanceUID", "AccessionNumber", "StudyID"):
        assert ds.get(keyword) == source.get(keyword), keyword
    assert ds.SeriesDescription == f"AI SR ct-head-hemorrhage 1.0.0 - {NOT_FOR_CLINICAL_USE}"
    assert ds.ContentQualification == "RESEARCH"
    assert ds.Manufacturer == "pacs-ai"
    assert ds.ManufacturerModelName == algorithm.name
    assert ds.CompletionFlag == "COMPLETE"
    assert ds.VerificationFlag == "UNVERIFIED"
    assert ds.PreliminaryFlag == "PRELIMINARY"
    evidence = {
        str(item.ReferencedSOPInstanceUID)
        for study_item in ds.CurrentRequestedProcedureEvidenceSequence
        for series in study_item.ReferencedSeriesSequence
        for item in series.ReferencedSOPSequence
    }
    assert {str(image.SOPInstanceUID) for image in study.datasets} <= evidence

    report = hd.sr.srread(ds.filename).content
    assert isinstance(report, hd.sr.MeasurementReport)
    observer = report.get_observer_contexts()[0].observer_identifying_attributes
    assert isinstance(observer, hd.sr.DeviceObserverIdentifyingAttributes)
    assert observer.uid == algorithm.device_uid
    assert observer.name == f"{algorithm.name} {algorithm.version}"
    assert observer.manufacturer_name == "pacs-ai"
    assert observer.model_name == algorithm.name
    assert observer.serial_number == algorithm.weights_sha256
    procedure = next(i for i in ds.ContentSequence if _concept(i) == ("DCM", "121058"))
    assert procedure.ConceptCodeSequence[0].CodeValue == source.ProcedureCodeSequence[0].CodeValue

    for group in _groups(ds):
        _assert_algorithm_identified(group, algorithm)
        for num in (i for i in group.ContentSequence if i.ValueType == "NUM"):
            _assert_algorithm_identified(num, algorithm)
    _assert_ohif_can_read(ds, study)
    errors, warnings = verdict
    assert errors == []
    assert warnings == []
    assert complaints == []  # dsrdump checks the content tree against the IOD's constraints


def _planar(path: Path) -> list[hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations]:
    report = hd.sr.srread(path).content
    assert isinstance(report, hd.sr.MeasurementReport)
    return list(report.get_planar_roi_measurement_groups())


def _volumetric(path: Path) -> list[hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations]:
    report = hd.sr.srread(path).content
    assert isinstance(report, hd.sr.MeasurementReport)
    return list(report.get_volumetric_roi_measurement_groups())


def _assert_presence_and_probability(
    group: hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations, finding: Finding
) -> None:
    assert group.finding_type == finding.code
    assert group.finding_category == MORPHOLOGICALLY_ABNORMAL_STRUCTURE
    evaluation = group.get_qualitative_evaluations(name=finding.code)
    assert len(evaluation) == 1
    assert evaluation[0].value == (PRESENT if finding.present else ABSENT)
    probability = group.get_measurements(name=PROBABILITY)
    assert len(probability) == 1
    assert probability[0].unit == PERCENT
    assert probability[0].value / 100.0 == pytest.approx(finding.probability, abs=1e-12)


def _region_source(group: hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations) -> str:
    region = group.roi
    assert isinstance(region, hd.sr.ImageRegion)
    assert region.GraphicType == "POLYLINE"
    return str(region.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID)


def _shoelace(points: np.ndarray) -> float:
    x, y = points[:-1, 0], points[:-1, 1]
    return float((x * np.roll(y, -1) - np.roll(x, -1) * y).sum() / 2.0)


def test_ct_hemorrhage_report_round_trip(
    ct_positive: SyntheticStudy,
    algorithm: Algorithm,
    write: Writer,
    dciodvfy: Callable[[Path], Verdict],
    dsrdump: Callable[[Path], list[str]],
) -> None:
    assert ct_positive.mask is not None
    mask = ct_positive.mask.astype(bool)
    finding = Finding(
        code=INTRACRANIAL_HEMORRHAGE,
        present=True,
        probability=0.931,
        mask=mask,
        location=Location(BRAIN, Laterality.LEFT),
    )
    path, seg_path = _run(ct_positive, [finding], algorithm, write)
    assert seg_path is not None
    ds = dcmread(path)
    _assert_document(ds, ct_positive, algorithm, dciodvfy(path), dsrdump(path))
    seg = dcmread(seg_path)
    ids = tracking(
        source_series_uid=str(ct_positive.datasets[0].SeriesInstanceUID),
        algorithm=algorithm,
        index=0,
        code=INTRACRANIAL_HEMORRHAGE,
    )

    (planar,) = _planar(path)
    _assert_presence_and_probability(planar, finding)
    assert planar.tracking_uid == ids.uid
    assert planar.tracking_identifier == ids.label
    site = planar.finding_sites[0]
    assert site.value == BRAIN
    assert site.laterality == Laterality.LEFT.code
    # the key slice: largest mask area; the polyline is the lesion's outline there
    areas = mask.reshape(len(mask), -1).sum(axis=1)
    key = int(np.argmax(areas))
    assert _region_source(planar) == ct_positive.datasets[key].SOPInstanceUID
    assert planar.roi is not None
    polyline = planar.roi.value
    assert (polyline[0] == polyline[-1]).all()
    assert _shoelace(polyline) == pytest.approx(areas[key])
    purpose = [i for i in _groups(ds)[0].ContentSequence if _concept(i) == ("DCM", "130400")]
    assert [i.ConceptCodeSequence[0].CodeMeaning for i in purpose] == ["Outline"]

    (volumetric,) = _volumetric(path)
    assert volumetric.tracking_uid == ids.uid
    assert volumetric.finding_type == INTRACRANIAL_HEMORRHAGE
    segment = volumetric.referenced_segment
    assert segment is not None
    assert segment.referenced_sop_instance_uid == seg.SOPInstanceUID
    assert segment.referenced_segment_numbers == [1]
    assert seg.SegmentSequence[0].TrackingUID == ids.uid
    source_series = segment.source_series_for_segmentation
    assert source_series is not None
    assert source_series.value == ct_positive.datasets[0].SeriesInstanceUID
    (volume,) = volumetric.get_measurements(name=VOLUME)
    assert volume.unit == MILLILITER
    first = ct_positive.datasets[0]
    independent = (
        int(mask.sum())
        * float(first.PixelSpacing[0])
        * float(first.PixelSpacing[1])
        * float(first.SpacingBetweenSlices)
        / 1000.0
    )
    assert volume.value == pytest.approx(independent, rel=1e-6)
    assert volume.value == pytest.approx(volume_ml(mask, ct_positive.datasets))
    evidence = {
        str(item.ReferencedSOPInstanceUID)
        for study_item in ds.CurrentRequestedProcedureEvidenceSequence
        for series in study_item.ReferencedSeriesSequence
        for item in series.ReferencedSOPSequence
    }
    assert str(seg.SOPInstanceUID) in evidence


def test_ct_negative_report_says_absent_with_probability(
    ct_negative: SyntheticStudy,
    algorithm: Algorithm,
    write: Writer,
    dciodvfy: Callable[[Path], Verdict],
    dsrdump: Callable[[Path], list[str]],
) -> None:
    finding = Finding(code=INTRACRANIAL_HEMORRHAGE, present=False, probability=0.023)
    path, seg_path = _run(ct_negative, [finding], algorithm, write)
    assert seg_path is None
    ds = dcmread(path)
    _assert_document(ds, ct_negative, algorithm, dciodvfy(path), dsrdump(path))
    (planar,) = _planar(path)
    _assert_presence_and_probability(planar, finding)
    assert _volumetric(path) == []
    # judged on the whole series: the border of its middle image
    middle = ct_negative.datasets[len(ct_negative.datasets) // 2]
    assert _region_source(planar) == middle.SOPInstanceUID
    assert planar.roi is not None
    rows, columns = int(middle.Rows), int(middle.Columns)
    assert planar.roi.value.tolist() == [[0, 0], [columns, 0], [columns, rows], [0, rows], [0, 0]]
    purpose = [i for i in _groups(ds)[0].ContentSequence if _concept(i) == ("DCM", "130400")]
    assert purpose == []  # no "Outline": the region is not a lesion


def test_cxr_pneumothorax_report_with_seg_round_trip(
    cxr_positive: SyntheticStudy,
    algorithm: Algorithm,
    write: Writer,
    dciodvfy: Callable[[Path], Verdict],
    dsrdump: Callable[[Path], list[str]],
) -> None:
    assert cxr_positive.mask is not None
    finding = Finding(
        code=PNEUMOTHORAX,
        present=True,
        probability=0.88,
        mask=cxr_positive.mask.astype(bool),
        location=Location(PLEURA, Laterality.RIGHT),
    )
    path, seg_path = _run(cxr_positive, [finding], algorithm, write)
    assert seg_path is not None
    ds = dcmread(path)
    _assert_document(ds, cxr_positive, algorithm, dciodvfy(path), dsrdump(path))
    seg = dcmread(seg_path)
    outline_group, segment_group = _planar(path)
    _assert_presence_and_probability(outline_group, finding)
    assert outline_group.finding_sites[0].laterality == Laterality.RIGHT.code
    assert _region_source(outline_group) == cxr_positive.datasets[0].SOPInstanceUID
    assert segment_group.tracking_uid == outline_group.tracking_uid
    assert segment_group.tracking_uid == seg.SegmentSequence[0].TrackingUID
    frame = segment_group.referenced_segmentation_frame
    assert frame is not None
    reference = frame[0].ReferencedSOPSequence[0]
    assert reference.ReferencedSOPInstanceUID == seg.SOPInstanceUID
    assert [int(n) for n in np.atleast_1d(reference.ReferencedFrameNumber)] == [1]
    source = frame[1].ReferencedSOPSequence[0]
    assert source.ReferencedSOPInstanceUID == cxr_positive.datasets[0].SOPInstanceUID
    assert segment_group.get_measurements(name=VOLUME) == []  # a radiograph has no volume
    assert _volumetric(path) == []


def test_cxr_classification_report_without_mask(
    cxr_positive: SyntheticStudy,
    algorithm: Algorithm,
    write: Writer,
    dciodvfy: Callable[[Path], Verdict],
    dsrdump: Callable[[Path], list[str]],
) -> None:
    finding = Finding(
        code=PNEUMOTHORAX,
        present=True,
        probability=0.71,
        location=Location(PLEURA, Laterality.RIGHT),
    )
    path, seg_path = _run(cxr_positive, [finding], algorithm, write)
    assert seg_path is None
    _assert_document(dcmread(path), cxr_positive, algorithm, dciodvfy(path), dsrdump(path))
    (planar,) = _planar(path)
    _assert_presence_and_probability(planar, finding)
    assert _region_source(planar) == cxr_positive.datasets[0].SOPInstanceUID


def test_cxr_negative_report_says_absent(
    cxr_negative: SyntheticStudy,
    algorithm: Algorithm,
    write: Writer,
    dciodvfy: Callable[[Path], Verdict],
    dsrdump: Callable[[Path], list[str]],
) -> None:
    finding = Finding(code=PNEUMOTHORAX, present=False, probability=0.004)
    path, seg_path = _run(cxr_negative, [finding], algorithm, write)
    assert seg_path is None
    _assert_document(dcmread(path), cxr_negative, algorithm, dciodvfy(path), dsrdump(path))
    (planar,) = _planar(path)
    _assert_presence_and_probability(planar, finding)


def test_segmented_finding_without_seg_keeps_its_outline_only(
    ct_positive: SyntheticStudy, algorithm: Algorithm, write: Writer
) -> None:
    assert ct_positive.mask is not None
    finding = Finding(
        code=INTRACRANIAL_HEMORRHAGE, present=True, probability=0.9, mask=ct_positive.mask
    )
    path, seg_path = _run(ct_positive, [finding], algorithm, write, with_seg=False)
    assert seg_path is None
    (planar,) = _planar(path)
    assert planar.roi is not None
    assert _shoelace(planar.roi.value) == pytest.approx(ct_positive.mask.sum(axis=(1, 2)).max())
    assert _volumetric(path) == []
    _assert_ohif_can_read(dcmread(path), ct_positive)


def test_several_findings_each_get_their_groups(
    ct_positive: SyntheticStudy, algorithm: Algorithm, write: Writer
) -> None:
    assert ct_positive.mask is not None
    findings = [
        Finding(code=INTRACRANIAL_HEMORRHAGE, present=True, probability=0.9, mask=ct_positive.mask),
        Finding(code=Code("50960005", "SCT", "Hemorrhage"), present=False, probability=0.2),
    ]
    path, _ = _run(ct_positive, findings, algorithm, write)
    planar = _planar(path)
    assert [g.finding_type for g in planar] == [f.code for f in findings]
    assert len({g.tracking_uid for g in planar}) == 2
    assert len(_volumetric(path)) == 1
    _assert_ohif_can_read(dcmread(path), ct_positive)


def test_report_refuses_no_findings_and_a_foreign_seg(
    ct_positive: SyntheticStudy,
    cxr_positive: SyntheticStudy,
    algorithm: Algorithm,
) -> None:
    assert ct_positive.mask is not None and cxr_positive.mask is not None
    ct_finding = Finding(
        code=INTRACRANIAL_HEMORRHAGE, present=True, probability=0.9, mask=ct_positive.mask
    )
    cxr_finding = Finding(code=PNEUMOTHORAX, present=True, probability=0.9, mask=cxr_positive.mask)
    ct_seg = build_seg(
        source_images=ct_positive.datasets,
        findings=[ct_finding],
        algorithm=algorithm,
        series_instance_uid="1.2.3",
        sop_instance_uid="1.2.3.4",
        series_number=5,
    )
    common = {
        "algorithm": algorithm,
        "series_instance_uid": "1.2.5",
        "sop_instance_uid": "1.2.5.6",
        "series_number": 6,
    }
    with pytest.raises(ValueError, match="at least one finding"):
        build_sr(source_images=ct_positive.datasets, findings=[], seg=None, **common)
    with pytest.raises(ValueError, match="another study"):
        build_sr(source_images=cxr_positive.datasets, findings=[cxr_finding], seg=ct_seg, **common)
    other_model = Algorithm(name="other", version="1", weights_sha256="ff" * 32)
    with pytest.raises(ValueError, match="no segment with Tracking UID"):
        build_sr(
            source_images=ct_positive.datasets,
            findings=[ct_finding],
            seg=ct_seg,
            **{**common, "algorithm": other_model},
        )
