"""The capture part of a session: the source and the ``avatarify-capture`` thread that reads it.

The thread opens the source, reads frames and puts each into the latest-frame slot (a
real-time source overwrites a frame still waiting; a non-real-time one waits until it was
taken). A failing source is reported and reopened with backoff. ``set_source`` hands a new
source to the thread and bumps the generation, so frames of the old one still in flight
can be told apart (``Captured.generation``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from avatarify_app.pipeline.slot import EMPTY, Captured, Ended, LatestSlot
from avatarify_app.pipeline.sources import Source

log = logging.getLogger(__name__)

BACKOFF_S = (0.25, 5.0)  # first and longest wait before reopening a failed source

Report = Callable[..., None]  # report(stage, error, key=...)


class Capture:
    """Owns the source, the generation, the latest-frame slot and the capture thread.

    ``take`` is for the inference thread; ``set_source`` for any thread; ``start``,
    ``request_stop`` and ``join`` for the session's lifecycle.
    """

    def __init__(self, source: Source | None, report: Report) -> None:
        self._report = report
        self._lock = threading.Lock()
        self._source = source  # the one the thread reads (or will, after a switch)
        self._pending: list[Source | None] = []
        self._generation = 0
        self._changed = threading.Event()
        self._stop = threading.Event()
        self._slot = LatestSlot()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ queries
    @property
    def source(self) -> Source | None:
        return self._source

    @property
    def generation(self) -> int:
        with self._lock:
            return self._generation

    @property
    def dropped(self) -> int:
        """Real-time frames replaced in the slot before the inference thread took them."""
        return self._slot.dropped

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ----------------------------------------------------------------- controls
    def set_source(self, source: Source | None, on_switch: Callable[[int], None] | None = None) -> int:
        """Read ``source`` from now on (the thread closes the old one); returns the new generation.

        ``on_switch(generation)`` runs before any frame of the new source can be read (to
        register outputs that must get exactly its frames).
        """
        with self._lock:
            self._generation += 1
            generation = self._generation
            if on_switch is not None:
                on_switch(generation)
            self._pending.append(source)
        self._changed.set()
        return generation

    def take(self, timeout: float):
        """The next ``Captured`` or ``Ended`` item of the current generation, or ``EMPTY``."""
        item = self._slot.take(timeout)
        if item is EMPTY or item.generation != self.generation:
            return EMPTY  # nothing, or left over from a replaced source
        return item

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self._stop.clear()
        self._slot = LatestSlot()
        self._thread = threading.Thread(target=self._run, name="avatarify-capture", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        self._stop.set()
        self._slot.close()
        self._changed.set()

    def join(self, deadline: float) -> bool:
        """Wait for the thread until ``deadline`` (time.monotonic()); True when it ended."""
        t = self._thread
        if t is None or t is threading.current_thread():
            return True
        t.join(max(0.0, deadline - time.monotonic()))
        if t.is_alive():
            log.warning("thread %s did not stop in time", t.name)
            return False
        return True

    # ------------------------------------------------------------------ thread
    def _switch(self, generation: int) -> tuple[bool, Source | None, int]:
        with self._lock:
            if not self._pending:
                return False, self._source, generation
            new = self._pending[-1]
            self._pending.clear()
            self._source = new
            return True, new, self._generation

    def _run(self) -> None:
        source = self._source
        generation = self.generation
        slot = self._slot
        opened = ended = False
        backoff = BACKOFF_S[0]
        index = 0
        try:
            while not self._stop.is_set():
                changed, new, generation = self._switch(generation)
                if changed:
                    if opened:
                        self._close(source)
                    source, opened, ended, backoff = new, False, False, BACKOFF_S[0]
                if source is None or ended:
                    self._changed.wait(0.1)
                    self._changed.clear()
                    continue
                try:
                    if not opened:
                        source.open()
                        opened = True
                    got = source.read()
                except Exception as err:
                    self._report("source", err, key=getattr(source, "name", None))
                    if opened:
                        self._close(source)
                        opened = False
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, BACKOFF_S[1])
                    continue
                if got is None:
                    ended = True
                    self._close(source)
                    opened = False
                    slot.put(Ended(generation), wait=True)
                    continue
                backoff = BACKOFF_S[0]
                frame, t_capture = got
                realtime = bool(getattr(source, "realtime", True))
                if not slot.put(Captured(generation, index, frame, t_capture, realtime), wait=not realtime):
                    break
                index += 1
        finally:
            if opened and source is not None:
                self._close(source)

    def _close(self, source: Source) -> None:
        try:
            source.close()
        except Exception as err:
            self._report("source", err, key=getattr(source, "name", None))
