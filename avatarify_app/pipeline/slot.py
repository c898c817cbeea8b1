"""The latest-frame slot: a one-item hand-over from the capture thread to the inference thread,
and what is handed over (``Captured`` frames and the ``Ended`` mark of a finite source).

A real-time producer overwrites a waiting item (counted in ``dropped``: newest frame wins,
nothing queues); a lossless one waits until the previous item was taken. An ``Ended`` mark
is never counted as dropped.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

EMPTY = object()  # what take() returns when there was nothing to take


@dataclass(frozen=True)
class Captured:
    """One frame read from the source of ``generation`` (see ``capture.Capture.set_source``)."""

    generation: int
    index: int
    frame: np.ndarray
    t_capture: float  # time.perf_counter() when it was read
    realtime: bool  # from a real-time source (camera, paced file): outputs may drop frames


@dataclass(frozen=True)
class Ended:
    """The source of ``generation`` ended (a non-looping file) after its last frame."""

    generation: int


class LatestSlot:
    """A one-item hand-over between the capture and inference threads."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Any = EMPTY
        self._closed = False
        self.dropped = 0

    def put(self, item: Any, wait: bool = False) -> bool:
        """Store ``item``; a waiting item is replaced (and counted) unless ``wait``. False when closed."""
        with self._cond:
            while wait and self._item is not EMPTY and not self._closed:
                self._cond.wait(0.1)
            if self._closed:
                return False
            if self._item is not EMPTY and not isinstance(self._item, Ended):
                self.dropped += 1
            self._item = item
            self._cond.notify_all()
            return True

    def take(self, timeout: float) -> Any:
        """The item, or ``EMPTY`` after ``timeout`` seconds or when closed."""
        with self._cond:
            if self._item is EMPTY and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, EMPTY
            if item is not EMPTY:
                self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
