"""A synthetic study in memory, and how it is written to disk.

The study keeps its ground truth beside the DICOM objects, never inside them: a model under
test must not be able to read the answer from a header. On disk the truth lies in the study
folder as ``truth.json`` (always) and ``mask.npy`` (where there is a mask).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.filewriter import dcmwrite

from pacs_ai.synth.headers import StudyKind

TRUTH_FILE = "truth.json"
MASK_FILE = "mask.npy"


@dataclass
class SyntheticStudy:
    """One generated study with its ground truth.

    Attributes
    ----------
    kind : {"ct_head", "cxr"}
        Which generator made it.
    seed : int
        The seed it was made from; the same seed and options make the same bytes.
    label : bool
        The study-level ground truth: intracranial hemorrhage for ``ct_head``, pneumothorax
        for ``cxr``.
    datasets : list of pydicom.dataset.Dataset
        The SOP instances, each with ``file_meta``, ready for :func:`pydicom.dcmwrite`.
    mask : numpy.ndarray of uint8, optional
        Voxel-level truth: ``(slices, rows, columns)`` hemorrhage mask for a CT head (slice
        order as InstanceNumber), ``(rows, columns)`` pneumothorax region for a CXR; all
        zeros for a negative study.
    truth : dict
        JSON-ready description of the truth (lesions, side, size, priority, UIDs).
    """

    kind: StudyKind
    seed: int
    label: bool
    datasets: list[Dataset]
    mask: NDArray[np.uint8] | None = None
    truth: dict[str, Any] = field(default_factory=dict)

    @property
    def study_instance_uid(self) -> str:
        """StudyInstanceUID shared by all the study's datasets."""
        return str(self.datasets[0].StudyInstanceUID)


def instance_path(root: Path, ds: Dataset) -> Path:
    """Where a dataset goes below ``root``: ``study_uid/series_uid/sop_uid.dcm``."""
    return root / str(ds.StudyInstanceUID) / str(ds.SeriesInstanceUID) / f"{ds.SOPInstanceUID}.dcm"


def write_study(study: SyntheticStudy, out_dir: Path) -> list[Path]:
    """Write the study as DICOM Part 10 files (PS3.10) with its ground truth beside them.

    Parameters
    ----------
    study : SyntheticStudy
        What to write.
    out_dir : pathlib.Path
        Root folder; the study goes into ``out_dir/<StudyInstanceUID>/``.

    Returns
    -------
    list of pathlib.Path
        The DICOM files, in the order of ``study.datasets``. ``truth.json`` and ``mask.npy``
        are written to the study folder but not listed, so the list can go to a C-STORE as is.
    """
    study_dir = Path(out_dir) / study.study_instance_uid
    paths: list[Path] = []
    for ds in study.datasets:
        path = instance_path(Path(out_dir), ds)
        path.parent.mkdir(parents=True, exist_ok=True)
        dcmwrite(path, ds, enforce_file_format=True)
        paths.append(path)
    study_dir.mkdir(parents=True, exist_ok=True)
    truth = dict(study.truth)
    truth.setdefault("kind", study.kind)
    truth.setdefault("seed", study.seed)
    truth.setdefault("label", study.label)
    truth["files"] = [str(path.relative_to(study_dir)) for path in paths]
    if study.mask is not None:
        np.save(study_dir / MASK_FILE, study.mask)
        truth["mask_file"] = MASK_FILE
    (study_dir / TRUTH_FILE).write_text(json.dumps(truth, indent=2, sort_keys=True) + "\n")
    return paths
