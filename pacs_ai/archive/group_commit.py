"""Group commit: concurrent writers share one transaction, and so one fsync.

A durable commit costs a disk flush. When several associations store at once, the first
writer to get the turn commits the work of everyone who queued up meanwhile; each caller
still returns only after the commit that holds its work (PostgreSQL and SQLite both flush
on commit, so durability is unchanged).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class _Pending(Generic[Item, Result]):
    item: Item
    done: bool = False
    result: Result | None = None
    error: BaseException | None = None


class GroupCommit(Generic[Item, Result]):
    """Runs ``run_batch`` over queued items, one batch at a time, leader-follower style.

    ``run_batch`` gets the items in arrival order and returns, per item, its result or the
    exception that item alone should raise.
    """

    def __init__(
        self, run_batch: Callable[[Sequence[Item]], Sequence[Result | BaseException]]
    ) -> None:
        self._run_batch = run_batch
        self._queue: list[_Pending[Item, Result]] = []
        self._queue_lock = threading.Lock()
        self._turn = threading.Lock()

    def submit(self, item: Item) -> Result:
        """Queue ``item`` and return once a committed batch has handled it."""
        pending: _Pending[Item, Result] = _Pending(item)
        with self._queue_lock:
            self._queue.append(pending)
        with self._turn:
            if not pending.done:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._run(batch)
        if pending.error is not None:
            raise pending.error
        return pending.result  # type: ignore[return-value]

    def _run(self, batch: list[_Pending[Item, Result]]) -> None:
        try:
            outcomes = self._run_batch([p.item for p in batch])
        except BaseException as exc:  # the whole batch failed: each caller sees why
            outcomes = [exc] * len(batch)
        for pending, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                pending.error = outcome
            else:
                pending.result = outcome
            pending.done = True
