"""What every process the server spawns shares: the start method, and leaving with its parent."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from multiprocessing.connection import wait

SPAWN = multiprocessing.get_context("spawn")
"""Spawned, not forked: a child must not inherit the server's threads, locks and sockets."""


def on_parent_exit(action: Callable[[], None]) -> bool:
    """In a spawned child, run ``action`` once the parent process ends, however it ended.

    Returns False when this process has no parent to watch.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return False

    def watch() -> None:
        wait([parent.sentinel])
        action()

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    return True
