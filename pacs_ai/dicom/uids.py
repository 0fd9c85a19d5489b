"""UIDs that pacs-ai makes.

pacs-ai has no registered organisation root, so it uses the ``2.25`` arc (PS3.5 B.2): a UID
derived from a UUID, or from a hash of caller-given entropy where a generator must be
deterministic (synthetic data made with a seed gives the same UIDs every time).
"""

from __future__ import annotations

import hashlib
import re

from pydicom.uid import UID, generate_uid

UID_PATTERN = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
UID_MAX_LENGTH = 64


def new_uid() -> UID:
    """A fresh, random UID under 2.25."""
    return generate_uid(prefix=None)


def derived_uid(*entropy: object) -> UID:
    """A UID under 2.25 that depends only on ``entropy``: same inputs, same UID.

    The 128-bit integer is the first half of a SHA-256 of the inputs, as a name-based UUID
    (RFC 9562 v8) would carry it; pydicom's own ``generate_uid(prefix=None)`` ignores entropy.
    """
    digest = hashlib.sha256("\x1f".join(str(part) for part in entropy).encode("utf-8")).digest()
    return UID(f"2.25.{int.from_bytes(digest[:16], 'big')}")


def is_valid_uid(value: str) -> bool:
    """True for a UID of PS3.5 9.1: digits and dots, no leading zeros, at most 64 characters."""
    return 0 < len(value) <= UID_MAX_LENGTH and UID_PATTERN.fullmatch(value) is not None
