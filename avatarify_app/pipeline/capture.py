"""The capture side of a session: the ``avatarify-capture`` thread.

It opens the source, reads frames and puts each into the latest-frame slot (a real-time
source overwrites a frame still waiting; a non-real-time one waits until it was taken).
A failing source is reported and reopened with backoff; ``set_source()`` hands a new one
over through the session's pending list and bumps the generation.
"""

from __future__ import annotations

from avatarify_app.pipeline.slot import END
from avatarify_app.pipeline.sources import Source

BACKOFF_S = (0.25, 5.0)  # first and longest wait before reopening a failed source


class CaptureSide:
    """``Session``'s capture thread (a mixin: it works on the session's own state)."""

    def _next_source(self, current: Source | None, generation: int) -> tuple[bool, Source | None, int]:
        with self._lock:
            if not self._pending_source:
                return False, current, generation
            new = self._pending_source[-1]
            self._pending_source.clear()
            generation = self._generation
        self._source = new
        return True, new, generation

    def _capture_loop(self) -> None:
        source = self._source
        with self._lock:
            generation = self._generation
        opened = ended = False
        backoff = BACKOFF_S[0]
        index = 0
        try:
            while not self._stop.is_set():
                changed, new, generation = self._next_source(source, generation)
                if changed:
                    if opened:
                        self._close_source(source)
                    source, opened, ended, backoff = new, False, False, BACKOFF_S[0]
                if source is None or ended:
                    self._source_changed.wait(0.1)
                    self._source_changed.clear()
                    continue
                try:
                    if not opened:
                        source.open()
                        opened = True
                    got = source.read()
                except Exception as err:
                    self._report("source", err)
                    if opened:
                        self._close_source(source)
                        opened = False
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, BACKOFF_S[1])
                    continue
                if got is None:
                    ended = True
                    self._close_source(source)
                    opened = False
                    self._slot.put((generation, END), wait=True)
                    continue
                backoff = BACKOFF_S[0]
                frame, t_capture = got
                realtime = bool(getattr(source, "realtime", True))
                if not self._slot.put((generation, index, frame, t_capture), wait=not realtime):
                    break
                index += 1
        finally:
            if opened and source is not None:
                self._close_source(source)

    def _close_source(self, source: Source) -> None:
        try:
            source.close()
        except Exception as err:
            self._report("source", err)
