"""Deterministic randomness for the synthetic generators.

Every generator draws from a :class:`numpy.random.Generator` made from the caller's seed and
a few labels (``"ct_head"``, ``"identity"``, ...). Separate streams for separate concerns mean
that changing how a header is drawn does not move a single voxel of the image, and the same
seed always gives the same study, byte for byte.
"""

from __future__ import annotations

import hashlib

import numpy as np


def _digest(seed: int, labels: tuple[str, ...]) -> bytes:
    text = "\x1f".join((str(seed), *labels))
    return hashlib.sha256(text.encode("utf-8")).digest()


def rng_for(seed: int, *labels: str) -> np.random.Generator:
    """A PCG64 generator that depends only on ``seed`` and ``labels``.

    Parameters
    ----------
    seed : int
        The caller's seed; any integer, negative or larger than 64 bits included.
    *labels : str
        Names of the stream, so that two concerns fed by one seed stay independent.
    """
    return np.random.default_rng(int.from_bytes(_digest(seed, labels), "big"))


def derived_int(seed: int, *labels: str, digits: int = 10) -> int:
    """A non-negative integer of at most ``digits`` decimal digits derived from the seed.

    Used for identifiers that must be short strings (PatientID, AccessionNumber: SH/LO).
    """
    return int.from_bytes(_digest(seed, labels), "big") % (10**digits)
