"""SEG and SR writers of the inference pipeline (highdicom).

After a model ran on a series, :func:`build_seg` turns its masks into a DICOM Segmentation and
:func:`build_sr` its findings into a TID 1500 Measurement Report; both go back into the archive
through the one ingest path as new series of the source study.
"""

from pacs_ai.results.algorithm import Algorithm
from pacs_ai.results.finding import Finding, Laterality, Location, Tracking, tracking
from pacs_ai.results.geometry import volume_ml
from pacs_ai.results.seg import build_seg
from pacs_ai.results.sr import build_sr

__all__ = [
    "Algorithm",
    "Finding",
    "Laterality",
    "Location",
    "Tracking",
    "build_seg",
    "build_sr",
    "tracking",
    "volume_ml",
]
