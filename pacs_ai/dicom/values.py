"""Normal forms of DICOM string values, so that the index can compare them as strings.

DA ``YYYYMMDD`` already sorts as text. TM (PS3.5 6.2) allows ``HH``, ``HHMM``, ``HHMMSS``
and ``HHMMSS.F{1,6}`` (and the retired ``HH:MM:SS``): :func:`normalize_time` pads them to
``HHMMSS.FFFFFF`` so that range matching (PS3.4 C.2.2.2.5) is a plain comparison. An upper
bound pads with the largest value, so ``-11`` includes 11:59:59.999999.
"""

from __future__ import annotations

import re

_TIME = re.compile(r"^(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?$")


def normalize_time(value: str, *, upper: bool = False) -> str | None:
    """``HHMMSS.FFFFFF`` for a TM value, or None when it is not a time."""
    text = value.strip().replace(":", "")
    match = _TIME.fullmatch(text)
    if match is None:
        return None
    hours, minutes, seconds, fraction = match.groups()
    fill = "59" if upper else "00"
    minutes = minutes if minutes is not None else fill
    seconds = seconds if seconds is not None else fill
    if fraction is None:
        fraction = "999999" if upper else "000000"
    else:
        fraction = fraction.ljust(6, "9" if upper else "0")
    if int(hours) > 23 or int(minutes) > 59 or int(seconds) > 60:
        return None
    return f"{hours}{minutes}{seconds}.{fraction}"


def normalize_pn(value: str) -> str:
    """Upper-cased person name for case-insensitive matching (PS3.4 C.2.2.2.1)."""
    return value.strip().upper()


_DATETIME = re.compile(
    r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,6}))?([+-]\d{4})?$"
)
_DT_LOW = ("", "01", "01", "00", "00", "00")
_DT_HIGH = ("", "12", "31", "23", "59", "59")


def normalize_datetime(value: str, *, upper: bool = False) -> str | None:
    """``YYYYMMDDHHMMSS.FFFFFF`` for a DT value (offset dropped), or None when it is not one."""
    match = _DATETIME.fullmatch(value.strip())
    if match is None:
        return None
    parts = match.groups()
    fill = _DT_HIGH if upper else _DT_LOW
    text = "".join(part if part is not None else fill[i] for i, part in enumerate(parts[:6]))
    fraction = parts[6]
    if fraction is None:
        fraction = "999999" if upper else "000000"
    else:
        fraction = fraction.ljust(6, "9" if upper else "0")
    return f"{text}.{fraction}"
