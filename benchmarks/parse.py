"""How long ingest takes to read an object's header: the raw walk against pydicom.

One command: ``.venv/bin/python benchmarks/parse.py [--studies 2] [--passes 7]``. It writes
synthetic 512x512 CT slices (and takes pydicom's bundled samples), parses each set with
:func:`pacs_ai.archive.header.parse` (the walk, pydicom for what it leaves) and with pydicom
alone, and prints a table of the median time per object over the passes. Both readers give
the same view (tests/unit/archive/test_header.py); this measures only what it costs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from pydicom.data import get_testdata_file

from pacs_ai.archive.header import Parsed, parse, parse_with_pydicom
from pacs_ai.synth import generate_ct_head, write_study

SAMPLES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "JPEG2000.dcm",
    "SC_rgb_rle.dcm",
    "MR_small_bigendian.dcm",
]


def per_object_ms(reader: Callable[[bytes], Parsed], objects: list[bytes], passes: int) -> float:
    """Median over ``passes`` of the mean time per object, in milliseconds."""
    times = []
    for _ in range(passes):
        started = time.perf_counter()
        for data in objects:
            reader(data)
        times.append((time.perf_counter() - started) / len(objects) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--studies", type=int, default=2, help="40-slice CT studies")
    parser.add_argument("--passes", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pacs-parse-") as temp:
        slices = []
        for index in range(args.studies):
            study = generate_ct_head(index, hemorrhage=index % 2 == 0, slices=40, size=512)
            paths = write_study(study, Path(temp) / f"s{index}")
            slices += [p.read_bytes() for p in sorted(paths) if p.suffix == ".dcm"]
    samples = [Path(str(get_testdata_file(name, download=False))).read_bytes() for name in SAMPLES]
    print(f"| {'objects':<36} | {'walk (ms)':>9} | {'pydicom (ms)':>12} | {'ratio':>5} |")
    print(f"|{'-' * 38}|{'-' * 11}|{'-' * 14}|{'-' * 7}|")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the samples' odd values
        for name, objects in [
            (f"{len(slices)} synthetic CT slices (0.53 MB)", slices),
            (f"{len(samples)} pydicom samples (1 big endian)", samples),
        ]:
            walk = per_object_ms(parse, objects, args.passes)
            pydicom = per_object_ms(parse_with_pydicom, objects, args.passes)
            print(f"| {name:<36} | {walk:9.3f} | {pydicom:12.3f} | {walk / pydicom:5.2f} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
