"""C-STORE requests assembled straight from P-DATA, without pynetdicom's message decoding.

pynetdicom decodes every command set through a pydicom Dataset and turns it into a primitive
whose setters validate each UID again: about 0.35 ms per message, as long as the rest of the
network thread's work on a 0.5 MB image. A C-STORE-RQ command set holds a handful of fixed
elements (PS3.7 9.3.1.1), so it is read here directly and its data set fragments are joined
once, when the last one arrives.

Anything else goes to pynetdicom unchanged: other commands, and any C-STORE that is not
plainly well formed (a missing element, a UID that is not one, a fragment out of place). Such
a message is handed over whole, every fragment received so far included, so pynetdicom
answers it exactly as it would have.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.pdu_primitives import P_DATA

from pacs_ai.dicom.uids import is_valid_uid

C_STORE_RQ = 0x0001  # Command Field (PS3.7 E.1)
NO_DATA_SET = 0x0101  # Command Data Set Type
_ELEMENT = struct.Struct("<HHI")  # implicit VR little endian: group, element, length
_US = struct.Struct("<H")


@dataclass(frozen=True, slots=True)
class StoreRequest:
    """A C-STORE-RQ with its data set, as the peer encoded it."""

    message_id: int
    sop_class_uid: str
    sop_instance_uid: str
    dataset: bytes


def command_elements(encoded: bytes) -> dict[int, bytes] | None:
    """The values of a command set by element number; None unless it is well formed.

    Command sets are group 0000, implicit VR little endian (PS3.7 6.3.1).
    """
    elements: dict[int, bytes] = {}
    offset, end = 0, len(encoded)
    while offset < end:
        if end - offset < _ELEMENT.size:
            return None
        group, number, length = _ELEMENT.unpack_from(encoded, offset)
        offset += _ELEMENT.size
        if group != 0x0000 or length > end - offset or number in elements:
            return None
        elements[number] = encoded[offset : offset + length]
        offset += length
    return elements


def _unsigned_short(value: bytes | None) -> int | None:
    return _US.unpack(value)[0] if value is not None and len(value) == 2 else None


def _uid(value: bytes | None) -> str | None:
    if value is None:
        return None
    try:
        uid = value.decode("ascii").rstrip("\0 ")
    except UnicodeDecodeError:
        return None
    return uid if is_valid_uid(uid) else None


@dataclass(frozen=True, slots=True)
class _StoreCommand:
    message_id: int
    sop_class_uid: str
    sop_instance_uid: str


def store_command(encoded: bytes) -> _StoreCommand | None:
    """The C-STORE-RQ that ``encoded`` is, with a data set to follow; None for anything else."""
    elements = command_elements(encoded)
    if elements is None:
        return None
    message_id = _unsigned_short(elements.get(0x0110))
    sop_class = _uid(elements.get(0x0002))
    sop_instance = _uid(elements.get(0x1000))
    if (
        _unsigned_short(elements.get(0x0100)) != C_STORE_RQ
        or message_id is None
        or sop_class is None
        or sop_instance is None
        or _unsigned_short(elements.get(0x0700)) is None  # Priority, required
        or _unsigned_short(elements.get(0x0800)) in (None, NO_DATA_SET)
    ):
        return None
    return _StoreCommand(message_id, sop_class, sop_instance)


class StoreReceiver:
    """Replaces ``DIMSEServiceProvider.receive_primitive`` of one association.

    ``accepts(context_id, sop_class_uid)`` says which C-STORE requests to assemble here;
    ``serve(context_id, request)`` is called with each one once its last fragment arrived,
    on the thread that received it (the association's network thread).
    """

    def __init__(
        self,
        dimse: DIMSEServiceProvider,
        accepts: Callable[[int, str], bool],
        serve: Callable[[int, StoreRequest], None],
    ) -> None:
        self._dimse = dimse
        self._pass_on = dimse.receive_primitive
        self._accepts = accepts
        self._serve = serve
        self._fragments: list[tuple[int, bytes]] = []  # every PDV of the current message
        self._command: _StoreCommand | None = None  # set once its command set is complete
        self._passing = False  # the current message is pynetdicom's

    def install(self) -> None:
        """Take over the association's P-DATA (DT-2 calls ``dimse.receive_primitive``)."""
        self._dimse.receive_primitive = self.receive  # type: ignore[method-assign]

    def receive(self, primitive: Any) -> None:
        """One P-DATA primitive from the peer (PS3.8 E.2: command fragments, then data)."""
        if self._passing:
            self._pass_on(primitive)
            self._passing = self._dimse.message is not None
            return
        pdvs = primitive.presentation_data_value_list
        for index, (context_id, data) in enumerate(pdvs):
            self._fragments.append((context_id, data))
            if not self._take(context_id, data):
                return self._hand_over(pdvs[index + 1 :])
        return None

    def _take(self, context_id: int, data: bytes) -> bool:
        """Follow one PDV of a C-STORE; False when the message is not one to assemble here."""
        if not data or context_id != self._fragments[0][0]:
            return False
        is_command, is_last = data[0] & 1, data[0] & 2
        if self._command is None:
            if not is_command:
                return False
            if is_last:
                self._command = self._decide(context_id)
                return self._command is not None
            return True
        if is_command:
            return False
        if is_last:
            self._complete(context_id)
        return True

    def _decide(self, context_id: int) -> _StoreCommand | None:
        command = store_command(b"".join(data[1:] for _, data in self._fragments))
        if command is None or not self._accepts(context_id, command.sop_class_uid):
            return None
        return command

    def _complete(self, context_id: int) -> None:
        command = self._command
        assert command is not None
        dataset = b"".join(memoryview(data)[1:] for _, data in self._fragments if not data[0] & 1)
        self._fragments = []
        self._command = None
        self._serve(
            context_id,
            StoreRequest(
                command.message_id, command.sop_class_uid, command.sop_instance_uid, dataset
            ),
        )

    def _hand_over(self, rest: list[tuple[int, bytes]]) -> None:
        """Give pynetdicom the current message whole, as if it had had it from the start.

        ``rest``: the PDVs that came after it in the same primitive.
        """
        replay = P_DATA()
        replay.presentation_data_value_list = [  # the setter wants lists
            [cid, data]  # type: ignore[misc]
            for cid, data in [*self._fragments, *rest]
        ]
        self._fragments = []
        self._command = None
        self._pass_on(replay)
        self._passing = self._dimse.message is not None
