"""Sending DICOM objects to a peer with C-STORE (demo data, forwarding, benchmarks).

The presentation contexts are built from the SOP classes and transfer syntaxes of the
files themselves, so compressed objects travel as they are, never transcoded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, build_context, evt
from pynetdicom.presentation import PresentationContext

from pacs_ai.dicom.status import Status
from pacs_ai.dimse.reactor import pause_exactly
from pacs_ai.dimse.sockets import configure_socket

log = logging.getLogger(__name__)

MAX_REQUESTED_CONTEXTS = 128


@dataclass
class SendReport:
    """What happened to each file of a send."""

    sent: list[Path] = field(default_factory=list)
    failed: dict[Path, str] = field(default_factory=dict)


def contexts_for(pairs: Iterable[tuple[str, str]]) -> list[PresentationContext]:
    """Presentation contexts for (SOP class, transfer syntax) pairs, at most 128 (PS3.8 9.3.2.2).

    Each SOP class is offered in its own transfer syntax plus the uncompressed ones, so a peer
    that does not take the compressed form can still refuse cleanly for that object alone.
    """
    by_class: dict[str, list[str]] = {}
    for sop_class, syntax in pairs:
        syntaxes = by_class.setdefault(sop_class, [])
        if syntax not in syntaxes:
            syntaxes.append(syntax)
    contexts: list[PresentationContext] = []
    for sop_class, syntaxes in by_class.items():
        for syntax in syntaxes:
            contexts.append(build_context(sop_class, [syntax]))
        if not {ExplicitVRLittleEndian, ImplicitVRLittleEndian} & set(syntaxes):
            contexts.append(
                build_context(sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
            )
    if len(contexts) > MAX_REQUESTED_CONTEXTS:
        raise ValueError(f"{len(contexts)} presentation contexts needed, at most 128 allowed")
    return contexts


def send_files(
    paths: Iterable[Path],
    host: str,
    port: int,
    *,
    called_ae: str = "ANY-SCP",
    calling_ae: str = "PACSAI",
    on_sent: Callable[[Path], None] | None = None,
) -> SendReport:
    """C-STORE each Part 10 file in ``paths`` to ``host:port`` over one association."""
    files = list(paths)
    pairs: list[tuple[str, str]] = []
    for path in files:
        meta = dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"]).file_meta
        pairs.append((str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID)))
    report = SendReport()
    if not files:
        return report
    ae = AE(ae_title=calling_ae)
    assoc = ae.associate(
        host,
        port,
        contexts=contexts_for(pairs),
        ae_title=called_ae,
        evt_handlers=[(evt.EVT_CONN_OPEN, configure_socket), (evt.EVT_CONN_OPEN, pause_exactly)],
    )
    if not assoc.is_established:
        for path in files:
            report.failed[path] = "association rejected or peer unreachable"
        return report
    try:
        for path in files:
            status = assoc.send_c_store(path)
            code = getattr(status, "Status", None)
            if code == Status.SUCCESS or (code is not None and (code & 0xF000) == 0xB000):
                report.sent.append(path)
            else:
                comment = getattr(status, "ErrorComment", "") if status else "no response"
                report.failed[path] = f"status 0x{code or 0:04X} {comment}".strip()
            if on_sent is not None:
                on_sent(path)
    finally:
        assoc.release()
    return report
