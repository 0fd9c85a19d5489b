"""Bulk import of files from a folder, through the one ingest path."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pacs_ai.archive.ingest import IngestError, Outcome
from pacs_ai.archive.ingest_pool import BulkIngest


@dataclass
class ImportReport:
    """Counts of what happened to each file; reasons for the refused ones."""

    stored: int = 0
    duplicates: int = 0
    replaced: int = 0
    refused: dict[Path, str] = field(default_factory=dict)


def import_folder(
    bulk: BulkIngest, files: Iterable[Path], *, on_done: Callable[[Path], None] | None = None
) -> ImportReport:
    """Ingest each file; a refused or unreadable file is reported, never fatal.

    ``bulk`` is the server process's ingestor or a pool of ingest processes; either answers
    in the order the files were read, so each answer is matched to its file.
    """
    report = ImportReport()
    read: deque[Path] = deque()

    def contents() -> Iterator[bytes]:
        for path in files:
            try:
                data = path.read_bytes()
            except OSError as exc:
                report.refused[path] = f"cannot read: {exc.strerror or exc}"
                if on_done is not None:
                    on_done(path)
                continue
            read.append(path)
            yield data

    for _data, outcome in bulk.ingest_many(contents()):
        path = read.popleft()
        if isinstance(outcome, IngestError):
            report.refused[path] = outcome.reason
        elif outcome.outcome is Outcome.STORED:
            report.stored += 1
        elif outcome.outcome is Outcome.DUPLICATE:
            report.duplicates += 1
        else:
            report.replaced += 1
        if on_done is not None:
            on_done(path)
    return report
