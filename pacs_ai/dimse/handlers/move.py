"""C-MOVE (Retrieve to a third party, PS3.4 C.4.2): destinations are the known nodes."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from pydicom import dcmread
from pynetdicom import evt

from pacs_ai.archive.query import QueryError
from pacs_ai.dicom.status import Status
from pacs_ai.dimse.context import DimseContext
from pacs_ai.dimse.handlers.identifier import IdentifierError
from pacs_ai.dimse.handlers.retrieve import audit_retrieve, instances_to_send
from pacs_ai.dimse.handlers.store import failure
from pacs_ai.dimse.nodes import get_by_ae_title
from pacs_ai.dimse.reactor import pause_exactly
from pacs_ai.dimse.scu import contexts_for
from pacs_ai.dimse.sockets import configure_socket
from pacs_ai.security.audit import Outcome

log = logging.getLogger(__name__)


def handle_move(event: evt.Event, ctx: DimseContext) -> Iterator[Any]:
    """Open an association to the move destination and C-STORE each matching instance to it.

    Statuses:
    - MOVE_DESTINATION_UNKNOWN (0xA801): the destination AE title is not a known node
      (``pacs-ai nodes add``), or it cannot be reached;
    - PENDING (0xFF00) per sub-operation; SUCCESS (0x0000) or
      SUBOPS_COMPLETE_WITH_FAILURES (0xB000) at the end, from pynetdicom's counts;
    - CANCEL (0xFE00) after a C-CANCEL, checked before every sub-operation;
    - IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS (0xA900), UNABLE_TO_PROCESS (0xC001) for bad requests.
    """
    destination = str(event.move_destination or "").strip()
    with ctx.database.sessions() as session:
        node = get_by_ae_title(session=session, ae_title=destination)
    if node is None:
        log.warning("C-MOVE to unknown destination %r", destination)
        audit_retrieve(event, ctx, Outcome.FAILURE, f"C-MOVE to unknown {destination!r}")
        yield None, None
        return
    try:
        instances = instances_to_send(event, ctx)
    except (IdentifierError, QueryError) as exc:
        status = exc.status if isinstance(exc, IdentifierError) else Status.UNABLE_TO_PROCESS
        log.warning("C-MOVE refused: %s", exc)
        audit_retrieve(event, ctx, Outcome.FAILURE, f"C-MOVE refused: {exc}")
        yield node.host, node.port
        yield 0
        yield failure(status, str(exc)), None
        return
    pairs = {(i.sop_class_uid, i.transfer_syntax_uid) for i in instances}
    yield (
        node.host,
        node.port,
        {
            "contexts": contexts_for(sorted(pairs)),
            "ae_title": node.ae_title,
            "evt_handlers": [
                (evt.EVT_CONN_OPEN, configure_socket),
                (evt.EVT_CONN_OPEN, pause_exactly),
            ],
        },
    )
    audit_retrieve(
        event, ctx, Outcome.SUCCESS, f"C-MOVE of {len(instances)} instances to {destination}"
    )
    yield len(instances)
    for instance in instances:
        if event.is_cancelled:
            yield int(Status.CANCEL), None
            return
        yield int(Status.PENDING), dcmread(ctx.storage.open(instance.path))
