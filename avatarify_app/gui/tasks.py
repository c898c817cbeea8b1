"""Run slow work (portrait alignment, checkpoint checks, camera scans) off the GUI thread.

``Tasks.submit(fn, on_done, on_error)`` runs ``fn()`` on a private ``QThreadPool``; the
callbacks run on the GUI thread (signals queued from the pool thread).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

log = logging.getLogger(__name__)


class _Relay(QObject):
    """Lives on the GUI thread; the pool thread emits, the GUI thread calls back."""

    done = Signal(object)
    failed = Signal(object)


class _Job(QRunnable):
    def __init__(self, fn: Callable[[], Any], relay: _Relay) -> None:
        super().__init__()
        self._fn = fn
        self._relay = relay
        self.setAutoDelete(True)

    def run(self) -> None:
        try:
            result = self._fn()
        except Exception as err:  # reported to the GUI, which shows it
            log.debug("background task failed: %s", err, exc_info=True)
            self._relay.failed.emit(err)
        else:
            self._relay.done.emit(result)


class Tasks(QObject):
    """A small pool for background jobs; ``pending`` counts jobs not yet called back."""

    def __init__(self, parent: QObject | None = None, max_threads: int = 2) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max_threads)
        self._relays: set[_Relay] = set()

    @property
    def pending(self) -> int:
        return len(self._relays)

    def submit(self, fn: Callable[[], Any], on_done: Callable[[Any], None] | None = None,
               on_error: Callable[[BaseException], None] | None = None) -> None:
        relay = _Relay(self)
        self._relays.add(relay)

        @Slot(object)
        def finished_ok(result: Any) -> None:
            self._release(relay)
            if on_done is not None:
                on_done(result)

        @Slot(object)
        def finished_err(err: BaseException) -> None:
            self._release(relay)
            if on_error is not None:
                on_error(err)
            else:
                log.warning("background task failed: %s", err)

        relay.done.connect(finished_ok)
        relay.failed.connect(finished_err)
        self._pool.start(_Job(fn, relay))

    def _release(self, relay: _Relay) -> None:
        self._relays.discard(relay)
        relay.deleteLater()

    def wait(self, msecs: int = 10000) -> bool:
        """Block until every running job returned (used when the window closes)."""
        return self._pool.waitForDone(msecs)
