"""What C-GET and C-MOVE share: finding the instances a retrieve identifier names."""

from __future__ import annotations

from pynetdicom import evt

from pacs_ai.archive.query import matching_instances
from pacs_ai.archive.schema import Instance
from pacs_ai.dimse.context import DimseContext
from pacs_ai.dimse.handlers.identifier import read_identifier


def instances_to_send(event: evt.Event, ctx: DimseContext) -> list[Instance]:
    """The stored instances under the entities named by the request's identifier."""
    level, keys = read_identifier(event)
    with ctx.database.sessions() as session:
        return matching_instances(session, level, keys)
