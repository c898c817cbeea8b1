"""Turn the session's worker-thread callbacks into Qt signals on the GUI thread.

Frames are coalesced: the worker overwrites one latest-event slot and posts at most one
queued notification, so a slow GUI never builds a backlog (newest frame wins, as in
the capture thread). Stats, errors and reference changes are few and are all
delivered, queued (a reference change is never lost to frame coalescing).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot

log = logging.getLogger(__name__)


class SessionBridge(QObject):
    """Observes one ``pipeline.Session`` (which may be replaced or absent) for the GUI thread."""

    frame = Signal(object)  # FrameEvent, on the GUI thread
    stats = Signal(object)  # Stats
    error = Signal(object)  # ErrorEvent
    reference = Signal(object)  # ReferenceEvent (the session's reference was set or cleared)
    session_changed = Signal(object)  # the new Session or None

    _frame_posted = Signal()  # worker -> GUI thread notification (queued)
    _stats_posted = Signal(object)
    _error_posted = Signal(object)
    _reference_posted = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._session: Any = None
        self._unsubscribe: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._latest: Any = None
        self._posted = False
        self.frames_received = 0  # worker-side count
        self.frames_delivered = 0  # GUI-side count (coalesced ones are skipped)
        self._frame_posted.connect(self._deliver_frame, Qt.ConnectionType.QueuedConnection)
        self._stats_posted.connect(self.stats, Qt.ConnectionType.QueuedConnection)
        self._error_posted.connect(self.error, Qt.ConnectionType.QueuedConnection)
        self._reference_posted.connect(self._deliver_reference, Qt.ConnectionType.QueuedConnection)

    @property
    def session(self) -> Any:
        return self._session

    # -- attach / detach ----------------------------------------------------------
    def attach(self, session: Any) -> None:
        """Observe ``session`` (detaching from a previous one, which is stopped)."""
        self.shutdown()
        self._session = session
        self._unsubscribe = [
            session.add_frame_observer(self._on_frame),
            session.add_stats_observer(self._on_stats),
            session.add_error_observer(self._on_error),
            session.add_reference_observer(lambda event: self._reference_posted.emit((session, event))),
        ]
        self.session_changed.emit(session)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Unsubscribe and close the current session (joins its threads, closes its sinks)."""
        session, self._session = self._session, None
        for unsubscribe in self._unsubscribe:
            try:
                unsubscribe()
            except Exception as err:  # an observer list gone already is harmless
                log.debug("unsubscribe failed: %s", err)
        self._unsubscribe = []
        if session is not None:
            close = getattr(session, "close", None) or session.stop  # close: stop and close its sinks
            close(timeout=timeout)
            self.session_changed.emit(None)
        with self._lock:
            self._latest = None

    # -- worker-thread callbacks ----------------------------------------------------
    def _on_frame(self, event: Any) -> None:
        with self._lock:
            self._latest = event
            self.frames_received += 1
            if self._posted:
                return
            self._posted = True
        self._frame_posted.emit()

    def _on_stats(self, stats: Any) -> None:
        self._stats_posted.emit(stats)

    def _on_error(self, event: Any) -> None:
        self._error_posted.emit(event)

    # -- GUI thread -------------------------------------------------------------------
    @Slot(object)
    def _deliver_reference(self, posted: Any) -> None:
        session, event = posted
        if session is self._session:  # not from a session replaced meanwhile
            self.reference.emit(event)

    @Slot()
    def _deliver_frame(self) -> None:
        with self._lock:
            event, self._latest = self._latest, None
            self._posted = False
        if event is not None:
            self.frames_delivered += 1
            self.frame.emit(event)
