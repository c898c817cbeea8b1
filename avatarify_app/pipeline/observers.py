"""The session's observer lists and its rate-limited error reporting.

Observers are called from the session's worker threads; one that raises is logged and the
others still run. All lists are guarded by the session's lock (passed in).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from avatarify_app.errors import AvatarifyError
from avatarify_app.pipeline.events import ErrorEvent

log = logging.getLogger(__name__)

KINDS = ("frame", "stats", "error", "reference")
ERROR_REPEAT_S = 5.0  # the same error from the same stage is reported at most this often

_STAGE_TEXT = {
    "source": "The camera or video stopped working",
    "tracking": "Face tracking failed",
    "engine": "The animation engine failed",
    "sink": "An output failed",
    "avatar": "The avatar could not be used",
}


class Observers:
    """Callbacks by kind (``KINDS``) and the error reporter that feeds the "error" ones."""

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self._lists: dict[str, list[Callable[[Any], None]]] = {kind: [] for kind in KINDS}
        self._last_reported: dict[tuple, float] = {}

    def subscribe(self, kind: str, callback: Callable[[Any], None]) -> Callable[[], None]:
        """Add ``callback`` to ``kind``; returns the function that removes it again."""
        observers = self._lists[kind]
        with self._lock:
            observers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in observers:
                    observers.remove(callback)

        return unsubscribe

    def current(self, kind: str) -> list[Callable[[Any], None]]:
        """A copy of the callbacks of ``kind`` (taken under the lock)."""
        with self._lock:
            return list(self._lists[kind])

    def call(self, kind: str, observers: list[Callable[[Any], None]], event: Any) -> None:
        """Call each of ``observers`` with ``event``; a failing one is logged, the rest still run."""
        for cb in observers:
            try:
                cb(event)
            except Exception:
                log.exception("%s observer failed", kind)

    def notify(self, kind: str, event: Any) -> None:
        self.call(kind, self.current(kind), event)

    def report(self, stage: str, error: BaseException) -> None:
        """Tell the error observers (the same error from the same stage at most every ERROR_REPEAT_S)."""
        key = (stage, type(error).__name__, str(error))
        now = time.monotonic()
        with self._lock:
            last = self._last_reported.get(key)
            if last is not None and now - last < ERROR_REPEAT_S:
                return
            if len(self._last_reported) > 256:
                self._last_reported.clear()
            self._last_reported[key] = now
            observers = list(self._lists["error"])
        if isinstance(error, AvatarifyError):
            message = str(error)
        else:
            message = f"{_STAGE_TEXT.get(stage, stage)}: {type(error).__name__}: {error}"
        log.info("reported %s error: %s", stage, message)
        self.call("error", observers, ErrorEvent(stage, error, message))
