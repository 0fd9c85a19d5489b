"""Synthetic PA chest radiographs, with or without pneumothorax.

One study is one Digital X-Ray Image Storage - For Presentation object (PS3.3 A.26, SOP
Class 1.2.840.10008.5.1.4.1.1.1.1). Beside the shared modules of
:mod:`pacs_ai.synth.headers` it fills DX Series (C.8.11.1), DX Anatomy Imaged (C.8.11.2),
DX Image (C.8.11.3), DX Detector (C.8.11.4), DX Positioning (C.8.11.5), General Image
(C.7.6.1), Image Pixel (C.7.6.3), VOI LUT (C.11.2, required for presentation), Acquisition
Context (C.7.6.14) and the Type 3 General Acquisition (C.7.10.1) and X-Ray Acquisition Dose
(C.8.7.8) modules.

Pixels are 12 bits stored in 16, MONOCHROME2 by default (bright is dense); MONOCHROME1 inverts
them, as many CR and DR systems send them.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import DigitalXRayImageStorageForPresentation

from pacs_ai.synth.cxr_phantom import DETECTOR_MM, build_cxr_phantom, expose
from pacs_ai.synth.headers import (
    SYNTHETIC_NOTICE,
    add_general_equipment_module,
    add_general_series_module,
    add_general_study_module,
    add_patient_modules,
    add_sop_common_module,
    file_meta_for,
    make_identity,
)
from pacs_ai.synth.seeding import rng_for
from pacs_ai.synth.study import SyntheticStudy

BITS_STORED = 12
Photometric = Literal["MONOCHROME2", "MONOCHROME1"]


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def generate_cxr(
    seed: int,
    *,
    pneumothorax: bool,
    size: int = 1024,
    photometric: Photometric = "MONOCHROME2",
    case_number: int | None = None,
) -> SyntheticStudy:
    """Generate one PA chest radiograph as a DX For Presentation object.

    Parameters
    ----------
    seed : int
        Everything (anatomy, pneumothorax, noise, names, dates, UIDs) follows from it.
    pneumothorax : bool
        Whether one lung is partly collapsed (the study-level label).
    size : int
        Rows and columns; 1024-2048 as detectors make them, smaller for fast tests. The
        detector stays 43 cm wide, the pixels grow.
    photometric : {"MONOCHROME2", "MONOCHROME1"}
        Grey-scale polarity of the stored pixels.
    case_number : int, optional
        Number in the patient name (``SYNTH^CASE0001``); defaults to the seed modulo 10 000.

    Returns
    -------
    SyntheticStudy
        ``mask`` is the ``(size, size)`` pneumothorax region; ``truth`` holds ``side``
        (the patient's ``"left"``/``"right"``), ``size`` (``"small"``/``"large"``, BTS 2 cm
        rule) and ``rim_mm`` for a positive.
    """
    if size < 64:
        raise ValueError("a chest radiograph needs at least 64x64 pixels")
    if photometric not in ("MONOCHROME2", "MONOCHROME1"):
        raise ValueError(f"unsupported photometric interpretation {photometric}")
    ident = make_identity(seed, "cxr", positive=pneumothorax, case_number=case_number)
    rng = rng_for(seed, "cxr", "image")
    phantom = build_cxr_phantom(rng, pneumothorax=pneumothorax, size=size, female=ident.sex == "F")
    pixels = expose(phantom, rng, bits=BITS_STORED)
    if photometric == "MONOCHROME1":
        pixels = ((1 << BITS_STORED) - 1 - pixels).astype(np.uint16)

    series_uid = ident.uid("series", 1)
    sop_uid = ident.uid("instance", 1, 1)
    spacing = DETECTOR_MM / size
    acquired = ident.study_datetime + dt.timedelta(minutes=1)
    ds = Dataset()
    add_patient_modules(ds, ident)
    add_general_study_module(ds, ident)
    add_general_series_module(
        ds,
        ident,
        modality="DX",
        series_uid=series_uid,
        series_number=1,
        description="Chest PA",
        body_part="CHEST",
        protocol="CHEST PA",
    )
    # DX Series (C.8.11.1): no performed procedure step to reference, so the 1C is absent.
    ds.PresentationIntentType = "FOR PRESENTATION"
    add_general_equipment_module(ds, model_name="CXR phantom", station_name="SYNTHDX01")
    # General Image (C.7.6.1) and General Acquisition (C.7.10.1).
    ds.InstanceNumber = 1
    ds.PatientOrientation = ["L", "F"]
    ds.ContentDate = acquired.strftime("%Y%m%d")
    ds.ContentTime = acquired.strftime("%H%M%S")
    ds.AcquisitionDate = ds.ContentDate
    ds.AcquisitionTime = ds.ContentTime
    ds.AcquisitionNumber = 1
    ds.ImageComments = SYNTHETIC_NOTICE
    # DX Anatomy Imaged (C.8.11.2): chest, SNOMED CT 51185008 (CID 4031).
    ds.ImageLaterality = "U"
    ds.AnatomicRegionSequence = [_code("51185008", "SCT", "Chest")]
    # DX Image (C.8.11.3) with Image Pixel (C.7.6.3).
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows = size
    ds.Columns = size
    ds.BitsAllocated = 16
    ds.BitsStored = BITS_STORED
    ds.HighBit = BITS_STORED - 1
    ds.PixelRepresentation = 0
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = -1 if photometric == "MONOCHROME2" else 1
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    ds.PresentationLUTShape = "IDENTITY" if photometric == "MONOCHROME2" else "INVERSE"
    ds.LossyImageCompression = "00"
    ds.BurnedInAnnotation = "NO"
    # VOI LUT (C.11.2): a full-range window on the stored values.
    ds.WindowCenter = 1 << (BITS_STORED - 1)
    ds.WindowWidth = 1 << BITS_STORED
    # DX Detector (C.8.11.4).
    ds.DetectorType = "SCINTILLATOR"
    ds.DetectorConfiguration = "AREA"
    ds.DetectorID = "SYNTH-DET-1"
    ds.ImagerPixelSpacing = [f"{spacing:.6g}", f"{spacing:.6g}"]
    # DX Positioning (C.8.11.5).
    ds.PositionerType = ""
    ds.ViewPosition = "PA"
    ds.ViewCodeSequence = [_code("399348003", "SCT", "postero-anterior")]
    ds.DistanceSourceToDetector = 1800
    # X-Ray Acquisition Dose (C.8.7.8).
    ds.KVP = 120
    ds.ExposureInuAs = 2000
    # Acquisition Context (C.7.6.14): nothing to say, but the sequence is Type 2.
    ds.AcquisitionContextSequence = []
    add_sop_common_module(
        ds, ident, sop_class_uid=DigitalXRayImageStorageForPresentation, sop_instance_uid=sop_uid
    )
    ds.PixelData = pixels.tobytes()
    ds.file_meta = file_meta_for(DigitalXRayImageStorageForPresentation, sop_uid)

    truth = dict(phantom.truth)
    truth.update(
        kind="cxr",
        finding="pneumothorax",
        label=pneumothorax,
        photometric_interpretation=photometric,
        patient_name=ident.patient_name,
        patient_id=ident.patient_id,
        accession_number=ident.accession_number,
        study_instance_uid=str(ident.study_uid),
        series_instance_uid=str(series_uid),
        priority=ident.priority,
        pixel_spacing_mm=spacing,
    )
    return SyntheticStudy(
        kind="cxr", seed=seed, label=pneumothorax, datasets=[ds], mask=phantom.mask, truth=truth
    )
