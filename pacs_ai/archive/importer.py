"""Bulk import of files from a folder, through the one ingest path."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pacs_ai.archive.ingest import IngestError, Ingestor, Outcome


@dataclass
class ImportReport:
    """Counts of what happened to each file; reasons for the refused ones."""

    stored: int = 0
    duplicates: int = 0
    replaced: int = 0
    refused: dict[Path, str] = field(default_factory=dict)


def import_folder(
    ingestor: Ingestor, files: Iterable[Path], *, on_done: Callable[[Path], None] | None = None
) -> ImportReport:
    """Ingest each file; a refused or unreadable file is reported, never fatal."""
    report = ImportReport()
    for path in files:
        try:
            result = ingestor.ingest(path.read_bytes())
        except IngestError as exc:
            report.refused[path] = exc.reason
        except OSError as exc:
            report.refused[path] = f"cannot read: {exc.strerror or exc}"
        else:
            if result.outcome is Outcome.STORED:
                report.stored += 1
            elif result.outcome is Outcome.DUPLICATE:
                report.duplicates += 1
            else:
                report.replaced += 1
        if on_done is not None:
            on_done(path)
    return report
