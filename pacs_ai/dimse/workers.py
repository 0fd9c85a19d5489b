"""More processes serving DIMSE associations accepted on the server's port.

One Python process runs one thread at a time: associations that store at once share a
single core however many the machine has. With ``PACS_AI_DIMSE_WORKERS=N`` the server starts
N-1 worker processes beside its own SCP. The main process accepts every connection and hands
it (its descriptor, over a Unix socket) to the process with the fewest open associations,
itself included. The kernel's alternative, ``SO_REUSEPORT``, spreads connections by a hash:
four associations over three processes often put two on one and none on another, and runs
of the same benchmark went from 187 to 336 objects/s with the draw. A worker runs only the
DIMSE SCP, with its own database engine and the same ingest path and audit trail; the main
process keeps HTTP and the AI pipeline, which learn of new objects from the index as before.

Workers are supervised: one that dies is started again, and each exits when the main
process goes, even when that one is killed outright, so that no orphan keeps the port.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from multiprocessing import reduction
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnProcess
from typing import Any, cast

from pacs_ai.children import SPAWN, on_parent_exit
from pacs_ai.config import Settings

log = logging.getLogger(__name__)

REPORT_INTERVAL_S = 0.5
RESTART_DELAY_S = 1.0
NOT_LISTENING = -1


class DimseWorkers:
    """The extra DIMSE processes of one server: started, watched, restarted, stopped."""

    def __init__(self, settings: Settings, port: int, own_load: Callable[[], int]) -> None:
        """``own_load``: the main process's open associations, to weigh against the workers'."""
        self.settings = settings.model_copy(update={"dimse_port": port})
        self.count = settings.dimse_workers - 1
        self._own_load = own_load
        # Open associations per worker, NOT_LISTENING until it serves (slot 0 is unused:
        # the main process counts its own), and connections each worker has closed. Whole
        # ints, one writer each: no lock needed.
        self._active: Any = SPAWN.Array("i", [NOT_LISTENING] * (self.count + 1), lock=False)
        self._closed: Any = SPAWN.Array("q", [0] * (self.count + 1), lock=False)
        self._handed = [0] * (self.count + 1)  # connections handed to each worker
        self._channels: dict[int, Connection] = {}
        self._processes: dict[int, SpawnProcess] = {}
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    def start(self) -> None:
        """Start every worker and the thread that restarts those that die."""
        for slot in range(1, self.count + 1):
            self._spawn(slot)
        self._supervisor = threading.Thread(
            target=self._supervise, name="dimse-workers", daemon=True
        )
        self._supervisor.start()

    def dispatch(self, connection: socket.socket) -> bool:
        """Hand ``connection`` to the least busy worker; False when this process should serve it.

        A worker's load is what it was handed less what it closed, exact the moment a
        connection is handed over (the reported counts lag by REPORT_INTERVAL_S). Ties go
        to a worker: the main process also runs HTTP and the AI pipeline.
        """
        best, best_load = 0, self._own_load()
        # Slots, not the channel dict: the supervisor may replace a channel meanwhile.
        for slot in range(1, self.count + 1):
            if self._active[slot] == NOT_LISTENING:
                continue
            load = self._handed[slot] - self._closed[slot]
            if load <= best_load:
                best, best_load = slot, load
        if best == 0:
            return False
        try:
            reduction.send_handle(
                self._channels[best], connection.fileno(), cast(int, self._processes[best].pid)
            )
        except OSError as exc:  # the worker just died: serve it here
            log.warning("DIMSE worker %d did not take a connection: %s", best, exc)
            return False
        self._handed[best] += 1
        return True

    def active_associations(self) -> dict[int, int]:
        """Open associations per listening worker, as last reported (every REPORT_INTERVAL_S).

        A worker that is starting, or dead and not yet replaced, is absent.
        """
        counts = {slot: int(self._active[slot]) for slot in range(1, self.count + 1)}
        return {slot: count for slot, count in counts.items() if count != NOT_LISTENING}

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ask every worker to finish (SIGTERM), wait, then kill what is left."""
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join()
        for process in self._processes.values():
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + timeout_s
        for process in self._processes.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("DIMSE worker %s did not stop; killing it", process.pid)
                process.kill()
                process.join()

    def _spawn(self, slot: int) -> None:
        self._active[slot] = NOT_LISTENING
        self._handed[slot] = self._closed[slot] = 0
        ours, theirs = SPAWN.Pipe()
        process = SPAWN.Process(
            target=run_worker,
            args=(self.settings, slot, self._active, self._closed, theirs),
            name=f"pacs-ai-dimse-{slot}",
            daemon=True,
        )
        process.start()
        theirs.close()
        old = self._channels.get(slot)
        self._channels[slot] = ours  # replaced in place: dispatch reads it from another thread
        if old is not None:
            old.close()
        self._processes[slot] = process
        log.info("DIMSE worker %d started (pid %s)", slot, process.pid)

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            sentinels = {p.sentinel: slot for slot, p in self._processes.items()}
            for sentinel in wait(list(sentinels), timeout=REPORT_INTERVAL_S):
                if self._stopping.is_set():
                    return
                slot = sentinels[cast(int, sentinel)]
                dead = self._processes[slot]
                dead.join()
                self._active[slot] = NOT_LISTENING
                log.error(
                    "DIMSE worker %d (pid %s) exited with %s; starting another",
                    slot,
                    dead.pid,
                    dead.exitcode,
                )
                if self._stopping.wait(RESTART_DELAY_S):
                    return
                self._spawn(slot)


def run_worker(
    settings: Settings, slot: int, active: Any, closed: Any, channel: Connection
) -> None:
    """A worker process: serves the connections the main process hands it, until told to stop."""
    # Imported here: the main process imports this module without needing the server's parts.
    from pynetdicom import _config as pynetdicom_config
    from pynetdicom import evt

    from pacs_ai.dimse.ae import start_server
    from pacs_ai.server import build_context

    logging.basicConfig(
        level=settings.log_level,
        format=f"%(asctime)s dimse-{slot} %(levelname)s %(name)s: %(message)s",
    )
    pynetdicom_config.LOG_HANDLER_LEVEL = "none"
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the main process, which stops us
    on_parent_exit(stop.set)

    context = build_context(settings, upgrade=False)
    server = start_server(context, listen=False)
    closing = threading.Lock()

    def count_closed(_event: evt.Event) -> None:
        with closing:
            closed[slot] += 1

    server.bind(evt.EVT_CONN_CLOSE, count_closed)
    threading.Thread(
        target=_serve_handed, args=(channel, server, stop), name="dimse-handed", daemon=True
    ).start()
    active[slot] = 0
    try:
        while not stop.wait(REPORT_INTERVAL_S):
            active[slot] = len(server.active_associations)
    finally:
        server.shutdown()
        if context.audit is not None:
            context.audit.close()
        context.database.dispose()
    parent = multiprocessing.parent_process()
    if parent is not None and not parent.is_alive():
        os._exit(0)  # the main process is gone: leave without waiting on anything it owned


def _serve_handed(channel: Connection, server: Any, stop: threading.Event) -> None:
    """Take connections from the main process and serve each like an accepted one."""
    while not stop.is_set():
        try:
            descriptor = reduction.recv_handle(channel)
        except (EOFError, OSError):  # the main process is gone or stopping
            stop.set()
            return
        connection = socket.socket(fileno=descriptor)
        try:
            peer = connection.getpeername()
        except OSError:  # the peer left while the connection travelled
            connection.close()
            continue
        server.process_request(connection, peer)
