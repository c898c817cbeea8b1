"""The session's observer lists and its rate-limited error reporting.

Observers are called from the session's worker threads; one that raises is logged and the
others still run.

The rate limit is keyed on the error's *kind*, never on its text (a message that carries a
counter, a time or a frame number would defeat it): the stage, the exception's type, a
stable key the reporter gives (a sink's or source's name, "predict", ...) and where the
exception was raised (the innermost traceback frame's file and line).
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
REPORT_REPEAT_S = 5.0  # an error of one kind (see the module docstring) is reported at most this often

_STAGE_TEXT = {
    "source": "The camera or video stopped working",
    "tracking": "Face tracking failed",
    "engine": "The animation engine failed",
    "sink": "An output failed",
    "avatar": "The avatar could not be used",
}


class Observers:
    """Callbacks by kind (``KINDS``) and the error reporter that feeds the "error" ones."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
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

    def report(self, stage: str, error: BaseException, *, key: str | None = None,
               request: int | None = None) -> bool:
        """Tell the error observers, at most once per ``REPORT_REPEAT_S`` for one kind of error.

        ``key``: a stable name for what failed (never a message); ``request``: the caller's
        request number when the error answers one (e.g. a rejected auto-calibration).
        Returns whether the observers were told.
        """
        kind = error_kind(stage, error, key)
        now = time.monotonic()
        with self._lock:
            last = self._last_reported.get(kind)
            if last is not None and now - last < REPORT_REPEAT_S:
                return False
            if len(self._last_reported) > 256:
                self._last_reported.clear()
            self._last_reported[kind] = now
            observers = list(self._lists["error"])
        if isinstance(error, AvatarifyError):
            message = str(error)
        else:
            message = f"{_STAGE_TEXT.get(stage, stage)}: {type(error).__name__}: {error}"
        log.info("reported %s error: %s", stage, message)
        self.call("error", observers, ErrorEvent(stage, error, message, request))
        return True


def error_kind(stage: str, error: BaseException, key: str | None = None) -> tuple:
    """What makes two errors "the same" for the rate limit: never the message text."""
    origin = None
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is not None:
        origin = (tb.tb_frame.f_code.co_filename, tb.tb_lineno)
    cls = type(error)
    return stage, f"{cls.__module__}.{cls.__qualname__}", key, origin
