"""SEG writer round trip: build, write, read back with pydicom and highdicom, dciodvfy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code
from pydicom.uid import SegmentationStorage

from pacs_ai.dicom.codes import (
    BRAIN,
    INTRACRANIAL_HEMORRHAGE,
    MORPHOLOGICALLY_ABNORMAL_STRUCTURE,
    PLEURA,
    PNEUMOTHORAX,
)
from pacs_ai.dicom.uids import derived_uid
from pacs_ai.results import Algorithm, Finding, Laterality, Location, build_seg, tracking
from pacs_ai.results.algorithm import NOT_FOR_CLINICAL_USE
from pacs_ai.synth import SyntheticStudy

Verdict = tuple[list[str], list[str]]  # dciodvfy's Error and Warning lines

HEMORRHAGE = Code("50960005", "SCT", "Hemorrhage")
PATIENT_AND_STUDY = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
)


def _build(
    study: SyntheticStudy, code: Code, algorithm: Algorithm, location: Location | None
) -> tuple[hd.seg.Segmentation, Finding]:
    assert study.mask is not None
    finding = Finding(
        code=code, present=True, probability=0.97, mask=study.mask.astype(bool), location=location
    )
    seg = build_seg(
        source_images=study.datasets,
        findings=[finding],
        algorithm=algorithm,
        series_instance_uid=derived_uid("test", "seg-series", study.seed),
        sop_instance_uid=derived_uid("test", "seg", study.seed),
        series_number=901,
    )
    return seg, finding


def _assert_round_trip(
    *,
    study: SyntheticStudy,
    seg: hd.seg.Segmentation,
    finding: Finding,
    algorithm: Algorithm,
    path: Path,
    verdict: Verdict,
) -> None:
    source = study.datasets[0]
    ds = dcmread(path)
    assert ds.SOPClassUID == SegmentationStorage
    assert ds.SOPInstanceUID == derived_uid("test", "seg", study.seed)
    assert ds.SeriesInstanceUID == derived_uid("test", "seg-series", study.seed)
    assert ds.SeriesNumber == 901
    assert ds.Modality == "SEG"
    assert ds.SegmentationType == "BINARY"
    for keyword in PATIENT_AND_STUDY:
        assert ds.get(keyword) == source.get(keyword), keyword
    assert ds.SeriesInstanceUID != source.SeriesInstanceUID
    assert ds.SeriesDescription == f"AI SEG ct-head-hemorrhage 1.0.0 - {NOT_FOR_CLINICAL_USE}"
    assert NOT_FOR_CLINICAL_USE in ds.ContentDescription
    assert ds.ContentQualification == "RESEARCH"
    assert ds.Manufacturer == "pacs-ai"
    assert ds.ManufacturerModelName == algorithm.name
    assert ds.DeviceSerialNumber == algorithm.weights_sha256
    referenced = {
        str(item.ReferencedSOPInstanceUID)
        for series in ds.ReferencedSeriesSequence
        for item in series.ReferencedInstanceSequence
    }
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    assert referenced == {str(image.SOPInstanceUID) for image in study.datasets}

    segment = ds.SegmentSequence[0]
    assert len(ds.SegmentSequence) == 1
    assert segment.SegmentNumber == 1
    assert segment.SegmentAlgorithmType == "AUTOMATIC"
    assert segment.SegmentedPropertyTypeCodeSequence[0].CodeValue == finding.code.value
    assert segment.SegmentedPropertyTypeCodeSequence[0].CodingSchemeDesignator == "SCT"
    category = segment.SegmentedPropertyCategoryCodeSequence[0]
    assert category.CodeValue == MORPHOLOGICALLY_ABNORMAL_STRUCTURE.value
    identification = segment.SegmentationAlgorithmIdentificationSequence[0]
    assert identification.AlgorithmName == algorithm.name
    assert identification.AlgorithmVersion == algorithm.version
    assert identification.AlgorithmParameters == f"weights_sha256={algorithm.weights_sha256}"
    assert identification.AlgorithmFamilyCodeSequence[0].CodeMeaning == "Artificial Intelligence"
    expected = tracking(
        source_series_uid=str(source.SeriesInstanceUID),
        algorithm=algorithm,
        index=0,
        code=finding.code,
    )
    assert segment.TrackingUID == expected.uid
    assert segment.TrackingID == expected.label
    assert finding.location is not None
    assert segment.AnatomicRegionSequence[0].CodeValue == finding.location.site.value

    read = hd.seg.segread(path)
    assert read.get_segment_numbers(tracking_uid=expected.uid) == [1]
    pixels = read.get_pixels_by_source_instance(
        source_sop_instance_uids=[str(image.SOPInstanceUID) for image in study.datasets],
        segment_numbers=[1],
        ignore_spatial_locations=True,
    )
    assert finding.mask is not None
    assert (pixels[..., 0].astype(bool) == finding.mask).all()
    assert int(ds.NumberOfFrames) == int(finding.mask.any(axis=(1, 2)).sum())  # empty omitted

    errors, warnings = verdict
    assert errors == []
    assert warnings == []


def test_ct_hemorrhage_seg_round_trip(
    ct_positive: SyntheticStudy,
    algorithm: Algorithm,
    write: Callable[[Dataset, str], Path],
    dciodvfy: Callable[[Path], Verdict],
) -> None:
    seg, finding = _build(
        ct_positive, INTRACRANIAL_HEMORRHAGE, algorithm, Location(BRAIN, Laterality.LEFT)
    )
    path = write(seg, "ct_seg.dcm")
    _assert_round_trip(
        study=ct_positive,
        seg=seg,
        finding=finding,
        algorithm=algorithm,
        path=path,
        verdict=dciodvfy(path),
    )
    ds = dcmread(path)
    assert ds.FrameOfReferenceUID == ct_positive.datasets[0].FrameOfReferenceUID
    assert ds.DimensionOrganizationType == "3D"


def test_cxr_pneumothorax_seg_round_trip(
    cxr_positive: SyntheticStudy,
    algorithm: Algorithm,
    write: Callable[[Dataset, str], Path],
    dciodvfy: Callable[[Path], Verdict],
) -> None:
    seg, finding = _build(cxr_positive, PNEUMOTHORAX, algorithm, Location(PLEURA, Laterality.RIGHT))
    path = write(seg, "cxr_seg.dcm")
    _assert_round_trip(
        study=cxr_positive,
        seg=seg,
        finding=finding,
        algorithm=algorithm,
        path=path,
        verdict=dciodvfy(path),
    )
    # a radiograph has no frame of reference: Patient Orientation is copied instead
    assert dcmread(path).PatientOrientation == cxr_positive.datasets[0].PatientOrientation


def test_one_segment_per_segmented_finding_in_finding_order(
    ct_positive: SyntheticStudy, algorithm: Algorithm
) -> None:
    assert ct_positive.mask is not None
    mask = ct_positive.mask.astype(bool)
    upper = np.zeros_like(mask)
    upper[:, :64] = mask[:, :64]
    findings = [
        Finding(code=PNEUMOTHORAX, present=False, probability=0.01),
        Finding(code=INTRACRANIAL_HEMORRHAGE, present=True, probability=0.9, mask=mask),
        Finding(code=INTRACRANIAL_HEMORRHAGE, present=True, probability=0.6),  # no mask
        Finding(code=HEMORRHAGE, present=True, probability=0.8, mask=upper),
    ]
    seg = build_seg(
        source_images=ct_positive.datasets,
        findings=findings,
        algorithm=algorithm,
        series_instance_uid="1.2.3",
        sop_instance_uid="1.2.3.4",
        series_number=5,
    )
    series_uid = str(ct_positive.datasets[0].SeriesInstanceUID)
    assert [s.SegmentNumber for s in seg.SegmentSequence] == [1, 2]
    assert [s.SegmentedPropertyTypeCodeSequence[0].CodeValue for s in seg.SegmentSequence] == [
        "1386000",
        "50960005",
    ]
    assert [s.TrackingUID for s in seg.SegmentSequence] == [
        tracking(source_series_uid=series_uid, algorithm=algorithm, index=i, code=f.code).uid
        for i, f in ((1, findings[1]), (3, findings[3]))
    ]


def test_negative_run_gets_no_seg(ct_negative: SyntheticStudy, algorithm: Algorithm) -> None:
    negative = Finding(code=INTRACRANIAL_HEMORRHAGE, present=False, probability=0.02)
    unlocalised = Finding(code=INTRACRANIAL_HEMORRHAGE, present=True, probability=0.7)
    for findings in ([negative], [unlocalised], []):
        with pytest.raises(ValueError, match="no finding is segmented"):
            build_seg(
                source_images=ct_negative.datasets,
                findings=findings,
                algorithm=algorithm,
                series_instance_uid="1.2.3",
                sop_instance_uid="1.2.3.4",
                series_number=5,
            )


def test_seg_refuses_a_mask_of_another_shape(
    ct_positive: SyntheticStudy, algorithm: Algorithm
) -> None:
    assert ct_positive.mask is not None
    finding = Finding(
        code=INTRACRANIAL_HEMORRHAGE, present=True, probability=0.9, mask=ct_positive.mask[:-1]
    )
    with pytest.raises(ValueError, match="shape"):
        build_seg(
            source_images=ct_positive.datasets,
            findings=[finding],
            algorithm=algorithm,
            series_instance_uid="1.2.3",
            sop_instance_uid="1.2.3.4",
            series_number=5,
        )


def test_seg_refuses_images_of_two_series(
    ct_positive: SyntheticStudy, cxr_positive: SyntheticStudy, algorithm: Algorithm
) -> None:
    assert cxr_positive.mask is not None
    finding = Finding(code=PNEUMOTHORAX, present=True, probability=0.9, mask=cxr_positive.mask)
    with pytest.raises(ValueError, match="more than one"):
        build_seg(
            source_images=[*cxr_positive.datasets, ct_positive.datasets[0]],
            findings=[finding],
            algorithm=algorithm,
            series_instance_uid="1.2.3",
            sop_instance_uid="1.2.3.4",
            series_number=5,
        )


def test_cleared_model_seg_carries_no_research_notice(cxr_positive: SyntheticStudy) -> None:
    assert cxr_positive.mask is not None
    cleared = Algorithm(
        name="cxr-pneumothorax", version="2.0.0", weights_sha256="cd" * 32, research_only=False
    )
    seg, _ = _build(cxr_positive, PNEUMOTHORAX, cleared, None)
    assert seg.SeriesDescription == "AI SEG cxr-pneumothorax 2.0.0"
    assert seg.ContentQualification == "PRODUCT"
    assert "AnatomicRegionSequence" not in seg.SegmentSequence[0]
