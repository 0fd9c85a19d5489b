"""Coded concepts that pacs-ai writes into DICOM objects (PS3.16 code sets).

Each constant names the context group (CID) it is drawn from, so that a reader can check the
choice against PS3.16. Schemes: ``SCT`` (SNOMED CT), ``DCM`` (DICOM Controlled Terminology,
PS3.16 Annex D), ``UCUM`` (units; the code value is the UCUM expression itself).
"""

from __future__ import annotations

from pydicom.sr.coding import Code

# Findings of the bundled models (CID 7151 "Segmentation Property Types" is extensible).
INTRACRANIAL_HEMORRHAGE = Code("1386000", "SCT", "Intracranial hemorrhage")
PNEUMOTHORAX = Code("36118008", "SCT", "Pneumothorax")

#: CID 7150 "Segmentation Property Categories": the category of a lesion.
MORPHOLOGICALLY_ABNORMAL_STRUCTURE = Code("49755003", "SCT", "Morphologically abnormal structure")

# Anatomic sites (both in CID 7151 "Segmentation Property Types").
BRAIN = Code("12738006", "SCT", "Brain")
PLEURA = Code("3120008", "SCT", "Pleura")

# CID 244 "Laterality".
LEFT = Code("7771000", "SCT", "Left")
RIGHT = Code("24028007", "SCT", "Right")
BILATERAL = Code("51440002", "SCT", "Bilateral")

# Values of a presence evaluation (CID 241 "Present-Absent Only").
PRESENT = Code("52101004", "SCT", "Present")
ABSENT = Code("272519000", "SCT", "Absent")

#: CID 7162 "Surface Processing Algorithm Families": the family of every model pacs-ai runs.
ARTIFICIAL_INTELLIGENCE = Code("123110", "DCM", "Artificial Intelligence")

#: CID 100 "Quantitative Diagnostic Imaging Procedures": when the source names no procedure.
IMAGING_PROCEDURE = Code("363679005", "SCT", "Imaging procedure")

# Concept names of numeric measurements (TID 300) and geometry (CID 219).
PROBABILITY = Code("122157", "DCM", "Probability")
VOLUME = Code("118565006", "SCT", "Volume")
OUTLINE = Code("111041", "DCM", "Outline")

# Units (CID 7181 "Abstract Multi-dimensional Image Model Component Units").
PERCENT = Code("%", "UCUM", "Percent")
MILLILITER = Code("ml", "UCUM", "milliliter")
