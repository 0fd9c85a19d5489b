"""Algorithm, Finding and tracking identifiers: validation, descriptions, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from pacs_ai.dicom.codes import (
    INTRACRANIAL_HEMORRHAGE,
    LEFT,
    PLEURA,
    PNEUMOTHORAX,
    RIGHT,
)
from pacs_ai.results import Algorithm, Finding, Laterality, Location, tracking
from pacs_ai.results.algorithm import NOT_FOR_CLINICAL_USE

SHA = "ab" * 32


@pytest.mark.parametrize(
    ("name", "version", "sha"),
    [
        ("", "1", SHA),
        ("x" * 65, "1", SHA),
        ("back\\slash", "1", SHA),
        ("h\u00e9morragie", "1", SHA),
        ("model", "1" * 17, SHA),
        ("model", "1", SHA.upper()),
        ("model", "1", SHA[:-1]),
    ],
)
def test_algorithm_refuses_what_does_not_fit_dicom(name: str, version: str, sha: str) -> None:
    with pytest.raises(ValueError):
        Algorithm(name=name, version=version, weights_sha256=sha)


def test_descriptions_fit_lo_and_keep_version_and_notice() -> None:
    longest = Algorithm(name="n" * 64, version="v" * 16, weights_sha256=SHA)
    for what in ("SEG", "SR", "segmentation"):
        text = longest.description(what)
        assert len(text) <= 64
        assert text.startswith(f"AI {what} n")
        assert text.endswith(f" {'v' * 16} - {NOT_FOR_CLINICAL_USE}")
    cleared = Algorithm(name="model", version="2", weights_sha256=SHA, research_only=False)
    assert cleared.description("SR") == "AI SR model 2"


def test_device_uid_names_the_model_version() -> None:
    a = Algorithm(name="model", version="1", weights_sha256=SHA)
    assert a.device_uid == Algorithm(name="model", version="1", weights_sha256=SHA).device_uid
    assert a.device_uid != Algorithm(name="model", version="2", weights_sha256=SHA).device_uid
    assert a.device_uid != Algorithm(name="model", version="1", weights_sha256="cd" * 32).device_uid


@pytest.mark.parametrize("probability", [-0.01, 1.01, float("nan"), float("inf")])
def test_finding_refuses_probability_outside_unit_interval(probability: float) -> None:
    with pytest.raises(ValueError, match="probability"):
        Finding(code=PNEUMOTHORAX, present=False, probability=probability)


def test_finding_mask_is_normalised_to_read_only_boolean_frames() -> None:
    mask = np.zeros((4, 5), dtype=np.uint8)
    mask[1, 2] = 1
    finding = Finding(code=PNEUMOTHORAX, present=True, probability=0.9, mask=mask)
    assert finding.mask is not None
    assert finding.mask.shape == (1, 4, 5)
    assert finding.mask.dtype == np.bool_
    assert not finding.mask.flags.writeable
    mask[1, 2] = 0  # the finding keeps its own copy
    assert finding.is_segmented


@pytest.mark.parametrize(
    "mask",
    [
        np.zeros(5, dtype=bool),
        np.zeros((1, 2, 3, 4), dtype=bool),
        np.full((2, 2), 2),
        np.ones((2, 2)),
    ],
)
def test_finding_refuses_masks_that_are_not_binary_frames(mask: np.ndarray) -> None:
    with pytest.raises(ValueError, match="mask"):
        Finding(code=PNEUMOTHORAX, present=True, probability=0.9, mask=mask)


def test_absent_finding_carries_no_segmentation() -> None:
    with pytest.raises(ValueError, match="absent"):
        Finding(code=PNEUMOTHORAX, present=False, probability=0.1, mask=np.ones((1, 2, 2), bool))
    empty = Finding(code=PNEUMOTHORAX, present=False, probability=0.1, mask=np.zeros((2, 2), bool))
    assert not empty.is_segmented and empty.segmentation is None


def test_present_finding_without_or_with_empty_mask_is_not_segmented() -> None:
    assert not Finding(code=PNEUMOTHORAX, present=True, probability=0.7).is_segmented
    empty = np.zeros((1, 3, 3), dtype=bool)
    assert not Finding(code=PNEUMOTHORAX, present=True, probability=0.7, mask=empty).is_segmented


def test_laterality_codes() -> None:
    assert Laterality.LEFT.code == LEFT
    assert Laterality.RIGHT.code == RIGHT
    assert Laterality("bilateral").code.value == "51440002"
    assert Location(PLEURA, Laterality.RIGHT).laterality is Laterality.RIGHT


def test_tracking_is_deterministic_and_distinct_per_finding() -> None:
    a = Algorithm(name="model", version="1", weights_sha256=SHA)
    first = tracking(source_series_uid="1.2.3", algorithm=a, index=0, code=PNEUMOTHORAX)
    assert first == tracking(source_series_uid="1.2.3", algorithm=a, index=0, code=PNEUMOTHORAX)
    assert first.label == "Pneumothorax #1"
    others = {
        tracking(source_series_uid="1.2.4", algorithm=a, index=0, code=PNEUMOTHORAX).uid,
        tracking(source_series_uid="1.2.3", algorithm=a, index=1, code=PNEUMOTHORAX).uid,
        tracking(source_series_uid="1.2.3", algorithm=a, index=0, code=INTRACRANIAL_HEMORRHAGE).uid,
    }
    assert first.uid not in others and len(others) == 3
