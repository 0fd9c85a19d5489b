"""Synthetic DICOM studies for demos, tests, model training and benchmarks.

Deterministic: the same seed gives byte-identical files. Each study keeps its ground truth
beside it (a hemorrhage mask for a CT head, a pneumothorax label and region for a chest
radiograph); every object says in its header that it is synthetic.
"""

from pacs_ai.synth.batch import PlannedStudy, generate_batch, generate_planned, plan_batch
from pacs_ai.synth.ct_head import generate_ct_head
from pacs_ai.synth.cxr import generate_cxr
from pacs_ai.synth.study import SyntheticStudy, write_study

__all__ = [
    "PlannedStudy",
    "SyntheticStudy",
    "generate_batch",
    "generate_ct_head",
    "generate_cxr",
    "generate_planned",
    "plan_batch",
    "write_study",
]
