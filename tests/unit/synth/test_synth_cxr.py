"""Chest radiograph generator: DX module values, pneumothorax truth, read-back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.uid import DigitalXRayImageStorageForPresentation

from pacs_ai.synth import generate_cxr, write_study
from pacs_ai.synth.cxr_phantom import build_cxr_phantom
from pacs_ai.synth.seeding import rng_for

SIZE = 128


@pytest.mark.parametrize("seed", range(6))
def test_pneumothorax_truth_is_complete(seed: int) -> None:
    study = generate_cxr(seed, pneumothorax=True, size=SIZE)
    assert study.label is True
    truth = study.truth
    assert truth["pneumothorax"] is True
    assert truth["side"] in ("left", "right")
    assert truth["size"] in ("small", "large")
    assert (truth["size"] == "large") == (truth["rim_mm"] >= 20.0)
    assert 0.0 < truth["collapse_fraction"] < 0.5
    assert study.mask is not None and study.mask.any()


def test_pneumothorax_lies_on_the_side_it_claims() -> None:
    for seed in range(8):
        study = generate_cxr(seed, pneumothorax=True, size=SIZE)
        assert study.mask is not None
        columns = np.nonzero(study.mask.any(axis=0))[0]
        # Image left is the patient's right (PatientOrientation L\F).
        on_image_left = columns.mean() < SIZE / 2
        assert on_image_left == (study.truth["side"] == "right")


def test_negative_has_no_mask_and_no_side() -> None:
    study = generate_cxr(3, pneumothorax=False, size=SIZE)
    assert study.label is False
    assert study.mask is not None and not study.mask.any()
    assert "side" not in study.truth


def test_pneumothorax_space_has_no_markings() -> None:
    """Lateral to the pleural line there are no vessels; medial to it there are."""
    for seed in range(4):
        phantom = build_cxr_phantom(rng_for(seed, "ptx"), pneumothorax=True, size=256, female=False)
        space = phantom.mask.astype(bool)
        assert space.sum() > 20
        peak = float(phantom.markings.max())
        assert peak > 0.1
        assert float(phantom.markings[space].max()) < 0.05 * peak


def test_dx_modules(tmp_path: Path) -> None:
    study = generate_cxr(4, pneumothorax=False, size=SIZE)
    assert len(study.datasets) == 1
    ds = study.datasets[0]
    assert ds.SOPClassUID == DigitalXRayImageStorageForPresentation
    assert ds.Modality == "DX"
    assert ds.BodyPartExamined == "CHEST"
    assert ds.PresentationIntentType == "FOR PRESENTATION"
    assert ds.PhotometricInterpretation == "MONOCHROME2"
    assert ds.PresentationLUTShape == "IDENTITY"
    assert float(ds.ImagerPixelSpacing[0]) * SIZE == pytest.approx(430.0, rel=1e-4)
    path = write_study(study, tmp_path)[0]
    back = dcmread(path)
    assert back.pixel_array.shape == (SIZE, SIZE)
    assert back.pixel_array.max() < 4096


def test_monochrome1_inverts_the_pixels() -> None:
    plain = generate_cxr(8, pneumothorax=False, size=SIZE)
    inverted = generate_cxr(8, pneumothorax=False, size=SIZE, photometric="MONOCHROME1")
    ds = inverted.datasets[0]
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    assert ds.PresentationLUTShape == "INVERSE"
    assert np.array_equal(4095 - plain.datasets[0].pixel_array, ds.pixel_array)


def test_anatomy_contrast() -> None:
    """Lungs are darker than the mediastinum, and the background darkest (MONOCHROME2)."""
    pixels = generate_cxr(2, pneumothorax=False, size=256).datasets[0].pixel_array.astype(float)
    lung = pixels[100:130, 50:70].mean()  # patient's right mid zone
    mediastinum = pixels[60:90, 120:136].mean()
    corner = pixels[250:256, 0:6].mean()
    assert corner < lung < mediastinum


def test_small_size_is_refused() -> None:
    with pytest.raises(ValueError):
        generate_cxr(1, pneumothorax=False, size=32)
