"""C-FIND (Query, PS3.4 C.4.1) for the Patient Root and Study Root information models."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from pydicom.dataset import Dataset
from pynetdicom import evt

from pacs_ai.archive.query import Query, QueryError, run
from pacs_ai.dicom.status import Status
from pacs_ai.dimse.context import DimseContext
from pacs_ai.dimse.handlers.identifier import IdentifierError, read_identifier
from pacs_ai.dimse.handlers.store import failure
from pacs_ai.security.audit import Action, Outcome, identifier_subjects, record_dimse

log = logging.getLogger(__name__)


def handle_find(
    event: evt.Event, ctx: DimseContext
) -> Iterator[tuple[int | Dataset, Dataset | None]]:
    """Yield one Pending response per match through the shared matcher.

    Statuses:
    - PENDING (0xFF00): one per match, with its identifier;
    - SUCCESS (0x0000): sent by pynetdicom after the last match;
    - CANCEL (0xFE00): the peer sent C-CANCEL; checked before every match;
    - IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS (0xA900): level not in the information model;
    - UNABLE_TO_PROCESS (0xC001): identifier does not decode, malformed range.
    """
    try:
        level, keys = read_identifier(event)
        with ctx.database.sessions() as session:
            matches = run(session, Query(level, keys), limit=ctx.settings.max_find_results)
    except IdentifierError as exc:
        log.warning("C-FIND refused: %s", exc.reason)
        record_dimse(ctx.audit, event.assoc, Action.QUERY, Outcome.FAILURE, detail=exc.reason)
        yield failure(exc.status, exc.reason), None
        return
    except QueryError as exc:
        log.warning("C-FIND refused: %s", exc)
        record_dimse(ctx.audit, event.assoc, Action.QUERY, Outcome.FAILURE, detail=str(exc))
        yield failure(Status.UNABLE_TO_PROCESS, str(exc)), None
        return
    patient_id, study_uids = identifier_subjects(keys)
    record_dimse(
        ctx.audit,
        event.assoc,
        Action.QUERY,
        Outcome.SUCCESS,
        patient_id=patient_id,
        study_uids=study_uids + [str(m.get("StudyInstanceUID", "")) for m in matches],
        detail=f"C-FIND {level.name}: {len(matches)} matches",
    )
    for match in matches:
        if event.is_cancelled:
            yield int(Status.CANCEL), None
            return
        yield int(Status.PENDING), match
