"""Synthetic unenhanced CT head studies, with or without intracranial hemorrhage.

One study is one axial series of CT Image Storage objects (PS3.3 A.3, SOP Class
1.2.840.10008.5.1.4.1.1.2), one object per slice. The modules filled here are the ones the
CT Image IOD adds to the shared ones of :mod:`pacs_ai.synth.headers`: Frame of Reference
(C.7.4.1), General Image (C.7.6.1), Image Plane (C.7.6.2), Image Pixel (C.7.6.3), CT Image
(C.8.2.1) and VOI LUT (C.11.2), plus the Type 3 General Acquisition module (C.7.10.1).

Pixels are stored unsigned, 12 of 16 bits, with RescaleIntercept -1024 and RescaleSlope 1,
so a stored 0 is -1024 HU and 4095 is 3071 HU.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.uid import UID, CTImageStorage

from pacs_ai.synth.ct_phantom import (
    HEMORRHAGE_KINDS,
    CtHeadPhantom,
    acquire,
    build_ct_head_phantom,
)
from pacs_ai.synth.headers import (
    SYNTHETIC_NOTICE,
    StudyIdentity,
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

RESCALE_INTERCEPT = -1024
BITS_STORED = 12
#: Brain and bone windows, in HU (VOI LUT module, PS3.3 C.11.2).
WINDOWS = (("BRAIN", 40, 80), ("BONE", 600, 2800))
#: Position of the table: head-frame z of a slice + this = ImagePositionPatient z.
TABLE_Z_MM = -120.0


def default_slice_thickness(slices: int) -> float:
    """Thickness (mm) that spreads ``slices`` over ~160 mm, kept within 2.5-5 mm."""
    return float(min(max(round(160.0 / slices * 2) / 2, 2.5), 5.0))


def _ds(value: float) -> str:
    """A DS string of at most 16 characters (PS3.5 6.2) without float noise."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _to_stored(hu: NDArray[np.float32]) -> NDArray[np.uint16]:
    """HU to stored values: add 1024, round, clip to 12 bits (in place on ``hu``)."""
    hu -= np.float32(RESCALE_INTERCEPT)
    np.rint(hu, out=hu)
    np.clip(hu, 0, (1 << BITS_STORED) - 1, out=hu)
    return hu.astype(np.uint16)


def _series_template(
    ident: StudyIdentity, phantom: CtHeadPhantom, *, series_uid: str, thickness: float
) -> Dataset:
    """Every attribute that is the same for all slices of the series."""
    grid = phantom.grid
    ds = Dataset()
    add_patient_modules(ds, ident)
    add_general_study_module(ds, ident)
    add_general_series_module(
        ds,
        ident,
        modality="CT",
        series_uid=UID(series_uid),
        series_number=2,
        description=f"Head {thickness:g}mm axial brain",
        body_part="HEAD",
        protocol="HEAD ROUTINE",
    )
    ds.PatientPosition = "HFS"
    ds.FrameOfReferenceUID = ident.uid("frame-of-reference")
    ds.PositionReferenceIndicator = ""
    add_general_equipment_module(ds, model_name="CT head phantom", station_name="SYNTHCT01")
    acquired = ident.study_datetime + dt.timedelta(minutes=2)
    ds.AcquisitionDate = acquired.strftime("%Y%m%d")
    ds.AcquisitionTime = acquired.strftime("%H%M%S")
    ds.ContentDate = ds.AcquisitionDate
    ds.ContentTime = ds.AcquisitionTime
    ds.AcquisitionNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ImageComments = SYNTHETIC_NOTICE
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.PixelSpacing = [_ds(grid.pixel_spacing), _ds(grid.pixel_spacing)]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SliceThickness = _ds(thickness)
    ds.SpacingBetweenSlices = _ds(thickness)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = grid.rows
    ds.Columns = grid.columns
    ds.BitsAllocated = 16
    ds.BitsStored = BITS_STORED
    ds.HighBit = BITS_STORED - 1
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = RESCALE_INTERCEPT
    ds.RescaleSlope = 1
    ds.KVP = 120
    ds.DataCollectionDiameter = 500
    ds.ReconstructionDiameter = _ds(grid.pixel_spacing * grid.columns)
    ds.GantryDetectorTilt = 0
    ds.TableHeight = 150
    ds.RotationDirection = "CW"
    ds.ExposureTime = 1000
    ds.XRayTubeCurrent = 250
    ds.Exposure = 250
    ds.ConvolutionKernel = "BRAIN"
    ds.WindowCenter = [w[1] for w in WINDOWS]
    ds.WindowWidth = [w[2] for w in WINDOWS]
    ds.WindowCenterWidthExplanation = [w[0] for w in WINDOWS]
    return ds


def _truth(
    ident: StudyIdentity, phantom: CtHeadPhantom, *, hemorrhage: bool, series_uid: str
) -> dict[str, Any]:
    grid = phantom.grid
    return {
        "kind": "ct_head",
        "finding": "intracranial hemorrhage",
        "label": hemorrhage,
        "lesions": phantom.lesions,
        "calcifications": phantom.calcifications,
        "mask_shape": list(phantom.mask.shape),
        "mask_voxels": int(phantom.mask.sum()),
        "patient_name": ident.patient_name,
        "patient_id": ident.patient_id,
        "accession_number": ident.accession_number,
        "study_instance_uid": str(ident.study_uid),
        "series_instance_uid": series_uid,
        "priority": ident.priority,
        "pixel_spacing_mm": grid.pixel_spacing,
        "slice_thickness_mm": grid.slice_spacing,
    }


def generate_ct_head(
    seed: int,
    *,
    hemorrhage: bool,
    slices: int = 40,
    size: int = 512,
    slice_thickness: float | None = None,
    kinds: tuple[str, ...] = HEMORRHAGE_KINDS,
    noise_hu: float | None = None,
    case_number: int | None = None,
) -> SyntheticStudy:
    """Generate one CT head study: one axial series, one CT Image object per slice.

    Parameters
    ----------
    seed : int
        Everything (anatomy, lesions, noise, names, dates, UIDs) follows from it.
    hemorrhage : bool
        Whether the study holds 1-2 intracranial hemorrhages (the study-level label).
    slices : int
        Number of slices; 24-64 is usual for a head.
    size : int
        Rows and columns; 512 as scanners make them, smaller for fast tests and training
        (the 250 mm field of view stays, the pixels grow).
    slice_thickness : float, optional
        Slice thickness and spacing in mm (contiguous slices); by default the value that
        covers about 160 mm, within 2.5-5 mm.
    kinds : tuple of str
        Hemorrhage kinds to draw from: ``"intraparenchymal"``, ``"subdural"``.
    noise_hu : float, optional
        Standard deviation of the image noise; by default 3-5 HU, more for thin slices.
    case_number : int, optional
        Number in the patient name (``SYNTH^CASE0001``); defaults to the seed modulo 10 000.

    Returns
    -------
    SyntheticStudy
        ``mask`` has shape ``(slices, size, size)``, slice order as InstanceNumber.
    """
    if slices < 1 or size < 16:
        raise ValueError("need at least 1 slice of at least 16x16 pixels")
    thickness = slice_thickness if slice_thickness is not None else default_slice_thickness(slices)
    if not 0.5 <= thickness <= 10.0:
        raise ValueError(f"slice thickness {thickness} mm outside 0.5-10 mm")
    rng = rng_for(seed, "ct_head", "image")
    phantom = build_ct_head_phantom(
        rng, hemorrhage=hemorrhage, slices=slices, size=size, slice_thickness=thickness, kinds=kinds
    )
    sigma = (
        noise_hu
        if noise_hu is not None
        else float(rng.uniform(3.0, 5.0)) * (5.0 / thickness) ** 0.5
    )
    stored = _to_stored(acquire(phantom, rng, noise_hu=sigma))
    ident = make_identity(seed, "ct_head", positive=hemorrhage, case_number=case_number)
    series_uid = str(ident.uid("series", 1))
    template = _series_template(ident, phantom, series_uid=series_uid, thickness=thickness)
    grid = phantom.grid
    x0 = -(grid.columns - 1) / 2 * grid.pixel_spacing
    y0 = -(grid.rows - 1) / 2 * grid.pixel_spacing
    datasets: list[Dataset] = []
    for index in range(slices):
        ds = copy.deepcopy(template)
        sop_uid = ident.uid("instance", 1, index + 1)
        z = float(grid.z[index]) + TABLE_Z_MM
        ds.InstanceNumber = index + 1
        ds.ImagePositionPatient = [_ds(x0), _ds(y0), _ds(z)]
        ds.SliceLocation = _ds(z)
        add_sop_common_module(ds, ident, sop_class_uid=CTImageStorage, sop_instance_uid=sop_uid)
        ds.PixelData = stored[index].tobytes()
        ds.file_meta = file_meta_for(CTImageStorage, sop_uid)
        datasets.append(ds)
    truth = _truth(ident, phantom, hemorrhage=hemorrhage, series_uid=series_uid)
    truth["noise_hu"] = round(sigma, 2)
    return SyntheticStudy(
        kind="ct_head",
        seed=seed,
        label=hemorrhage,
        datasets=datasets,
        mask=phantom.mask,
        truth=truth,
    )
