"""What C-GET and C-MOVE share: finding the instances a retrieve identifier names."""

from __future__ import annotations

from pynetdicom import evt

from pacs_ai.archive.query import matching_instances
from pacs_ai.archive.schema import Instance
from pacs_ai.dimse.context import DimseContext
from pacs_ai.dimse.handlers.identifier import read_identifier
from pacs_ai.security.audit import Action, Outcome, identifier_subjects, record_dimse


def instances_to_send(event: evt.Event, ctx: DimseContext) -> list[Instance]:
    """The stored instances under the entities named by the request's identifier."""
    level, keys = read_identifier(event)
    with ctx.database.sessions() as session:
        return matching_instances(session, level, keys)


def audit_retrieve(event: evt.Event, ctx: DimseContext, outcome: Outcome, detail: str) -> None:
    """Record a C-GET or C-MOVE with the patient and studies its identifier names."""
    try:
        _level, keys = read_identifier(event)
    except Exception:  # the refusal itself is what gets recorded
        keys = {}
    patient_id, study_uids = identifier_subjects(keys)
    record_dimse(
        ctx.audit,
        event.assoc,
        Action.RETRIEVE,
        outcome,
        patient_id=patient_id,
        study_uids=study_uids,
        detail=detail,
    )
