"""C-GET (Retrieve over the same association, PS3.4 C.4.3)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import evt

from pacs_ai.archive.query import QueryError
from pacs_ai.dicom.status import Status
from pacs_ai.dimse.context import DimseContext
from pacs_ai.dimse.handlers.identifier import IdentifierError
from pacs_ai.dimse.handlers.retrieve import audit_retrieve, instances_to_send
from pacs_ai.dimse.handlers.store import failure
from pacs_ai.security.audit import Outcome

log = logging.getLogger(__name__)


def handle_get(
    event: evt.Event, ctx: DimseContext
) -> Iterator[int | tuple[int | Dataset, Dataset | None]]:
    """Send each matching instance back as a C-STORE sub-operation on this association.

    Statuses (pynetdicom sends the final one from the sub-operation counts):
    - PENDING (0xFF00) per sub-operation; SUCCESS (0x0000) when all were stored;
    - SUBOPS_COMPLETE_WITH_FAILURES (0xB000) when some sub-operations failed;
    - CANCEL (0xFE00) after a C-CANCEL, checked before every sub-operation;
    - IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS (0xA900), UNABLE_TO_PROCESS (0xC001) for bad requests.
    """
    try:
        instances = instances_to_send(event, ctx)
    except (IdentifierError, QueryError) as exc:
        status = exc.status if isinstance(exc, IdentifierError) else Status.UNABLE_TO_PROCESS
        log.warning("C-GET refused: %s", exc)
        audit_retrieve(event, ctx, Outcome.FAILURE, f"C-GET refused: {exc}")
        yield 0
        yield failure(status, str(exc)), None
        return
    audit_retrieve(event, ctx, Outcome.SUCCESS, f"C-GET of {len(instances)} instances")
    yield len(instances)
    for instance in instances:
        if event.is_cancelled:
            yield int(Status.CANCEL), None
            return
        yield int(Status.PENDING), dcmread(ctx.storage.open(instance.path))
