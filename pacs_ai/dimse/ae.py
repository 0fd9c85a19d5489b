"""The Application Entity: its presentation contexts and the one list of handler bindings.

Reading :func:`handler_bindings` tells everything the DIMSE server answers.
"""

from __future__ import annotations

import copy
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)
from pynetdicom.transport import ThreadedAssociationServer

from pacs_ai.dimse.context import DimseContext
from pacs_ai.dimse.handlers.echo import handle_echo
from pacs_ai.dimse.handlers.find import handle_find
from pacs_ai.dimse.handlers.get import handle_get
from pacs_ai.dimse.handlers.move import handle_move
from pacs_ai.dimse.handlers.store import store_service
from pacs_ai.dimse.reactor import quiet_reactor
from pacs_ai.dimse.sockets import configure_socket

log = logging.getLogger(__name__)

QUERY_RETRIEVE_MODELS = (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)


def _storage_transfer_syntaxes() -> list[str]:
    """Every syntax pydicom knows, compressed first.

    pynetdicom accepts the first of *our* syntaxes that the requestor proposed. A sender that
    offers its compressed original beside the uncompressed fallbacks must get the original,
    so that it is stored as received and nobody transcodes it.
    """
    native = [
        ExplicitVRLittleEndian,
        ImplicitVRLittleEndian,
        DeflatedExplicitVRLittleEndian,
        ExplicitVRBigEndian,
    ]
    encapsulated = [ts for ts in ALL_TRANSFER_SYNTAXES if UID(ts).is_encapsulated]
    rest = [ts for ts in ALL_TRANSFER_SYNTAXES if ts not in native and ts not in encapsulated]
    return encapsulated + native + rest


def handler_bindings(ctx: DimseContext) -> list[tuple[Any, ...]]:
    """Every event the server handles, and with what."""
    return [
        (evt.EVT_CONN_OPEN, configure_socket, [ctx.settings.network_timeout_s]),
        (evt.EVT_CONN_OPEN, quiet_reactor),
        (evt.EVT_CONN_OPEN, store_service, [ctx]),
        (evt.EVT_C_ECHO, handle_echo, [ctx]),
        (evt.EVT_C_FIND, handle_find, [ctx]),
        (evt.EVT_C_GET, handle_get, [ctx]),
        (evt.EVT_C_MOVE, handle_move, [ctx]),
    ]


def build_ae(ctx: DimseContext) -> AE:
    """An AE that stores every storage SOP class in every transfer syntax pydicom knows.

    Storage contexts accept the SCP role from a C-GET requestor (PS3.4 C.4.3.1), so that
    C-GET can send the matches back on the same association. Compressed data is kept as
    received: no context forces a conversion.
    """
    settings = ctx.settings
    ae = AE(ae_title=settings.ae_title)
    ae.add_supported_context(Verification, ALL_TRANSFER_SYNTAXES)
    storage_syntaxes = _storage_transfer_syntaxes()
    for context in AllStoragePresentationContexts:
        assert context.abstract_syntax is not None
        ae.add_supported_context(
            context.abstract_syntax, storage_syntaxes, scp_role=True, scu_role=False
        )
    for model in QUERY_RETRIEVE_MODELS:
        ae.add_supported_context(model, ALL_TRANSFER_SYNTAXES)
    ae.maximum_associations = settings.max_associations
    ae.maximum_pdu_size = settings.max_pdu_bytes
    ae.acse_timeout = settings.acse_timeout_s
    ae.dimse_timeout = settings.dimse_timeout_s
    ae.network_timeout = settings.network_timeout_s
    ae.require_called_aet = False
    if settings.allowed_calling_aets:
        ae.require_calling_aet = list(settings.allowed_calling_aets)
    return ae


class _SharedSyntaxContext(PresentationContext):
    """A supported context whose copy shares nothing mutable but is cheap to make.

    pynetdicom deep-copies the server's supported contexts for every association it accepts:
    177 contexts with 45 transfer syntaxes each took ~45 ms, paid by every association.
    UIDs are immutable, so a copy needs only its own list of them.
    """

    def __deepcopy__(self, memo: dict[int, Any]) -> _SharedSyntaxContext:
        twin = copy.copy(self)
        twin._transfer_syntax = list(self._transfer_syntax)
        return twin


def _cheap_to_copy(context: PresentationContext) -> PresentationContext:
    twin = _SharedSyntaxContext()
    twin.__dict__.update(context.__dict__)
    twin._transfer_syntax = list(context._transfer_syntax)
    return twin


class DimseServer(ThreadedAssociationServer):
    """The SCP's server; with DIMSE workers, each accepted connection may go to one of them.

    ``dispatch`` (set by :class:`~pacs_ai.dimse.workers.DimseWorkers`) hands the connection
    to the least busy process and says whether it did; otherwise this process serves it.
    """

    dispatch: Callable[[socket.socket], bool] | None = None

    def process_request(self, request: Any, client_address: Any) -> None:
        if self.dispatch is not None and self.dispatch(request):
            request.close()  # this process's descriptor; the worker has its own
            return
        super().process_request(request, client_address)


class _HandedServer(ThreadedAssociationServer):
    """A DIMSE worker's server: it never listens; the main process hands it connections."""

    def server_bind(self) -> None:
        pass

    def server_activate(self) -> None:
        pass

    def shutdown(self) -> None:
        # Never in serve_forever, so nothing to wait for: close, and leave the AE's list.
        self.server_close()
        self.ae._servers.remove(self)


def start_server(ctx: DimseContext, *, listen: bool = True) -> ThreadedAssociationServer:
    """Listen on the configured address; one thread per association.

    ``listen=False``: a DIMSE worker's server (:mod:`pacs_ai.dimse.workers`), which serves
    the connections that the main process passes it through ``process_request``.
    """
    ae = build_ae(ctx)
    address = (ctx.settings.dimse_host, ctx.settings.dimse_port)
    server = ae.make_server(
        address,
        contexts=[_cheap_to_copy(cx) for cx in ae.supported_contexts],
        evt_handlers=handler_bindings(ctx),
        server_class=DimseServer if listen else _HandedServer,
    )
    ae._servers.append(server)  # what start_server does: server.shutdown() expects it there
    if listen:
        thread = threading.Thread(target=server.serve_forever, name="dimse-acceptor", daemon=True)
        thread.start()
        log.info("DIMSE SCP %s listening on %s:%d", ae.ae_title, *server.server_address[:2])
    return server
