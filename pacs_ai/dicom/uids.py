"""UIDs that pacs-ai makes.

pacs-ai has no registered organisation root, so it uses the ``2.25`` arc (PS3.5 B.2): a UID
derived from a UUID, or from a hash of caller-given entropy where a generator must be
deterministic (synthetic data made with a seed gives the same UIDs every time).
"""

from __future__ import annotations

import re

from pydicom.uid import UID, generate_uid

UID_PATTERN = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
UID_MAX_LENGTH = 64


def new_uid() -> UID:
    """A fresh, random UID under 2.25."""
    return generate_uid(prefix=None)


def derived_uid(*entropy: object) -> UID:
    """A UID under 2.25 that depends only on ``entropy``: same inputs, same UID."""
    return generate_uid(prefix=None, entropy_srcs=[str(part) for part in entropy])


def is_valid_uid(value: str) -> bool:
    """True for a UID of PS3.5 9.1: digits and dots, no leading zeros, at most 64 characters."""
    return 0 < len(value) <= UID_MAX_LENGTH and UID_PATTERN.fullmatch(value) is not None
