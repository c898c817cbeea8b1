"""The Qt binding keeps Python's reference counts: the window emits signals for every frame.

PySide6 6.12.0 returns ``True`` from ``SignalInstance.emit()`` without a reference, and a
queued emission drops one of ``None``: on Python < 3.12 (where they are not immortal) the
app then dies with "Fatal Python error: bool_dealloc / none_dealloc" after ~20 s of frames.
pyproject.toml keeps that version out; this test fails if a binding like it comes back.
"""

from __future__ import annotations

import sys
import threading

from PySide6.QtCore import QObject, Qt, Signal

EMITS = 2000
SLACK = 50  # references the interpreter itself may take or give back meanwhile


class _Emitter(QObject):
    value = Signal(object)
    ping = Signal()


def _counts() -> tuple[int, int, int]:
    return sys.getrefcount(True), sys.getrefcount(False), sys.getrefcount(None)


def test_direct_emits_keep_reference_counts(qtbot):
    emitter = _Emitter()
    got = []
    emitter.value.connect(got.append)
    before = _counts()
    for i in range(EMITS):
        emitter.value.emit(i)
        emitter.ping.emit()
    after = _counts()
    assert len(got) == EMITS
    assert all(a >= b - SLACK for a, b in zip(after, before, strict=True)), (before, after)


def test_queued_emits_from_a_thread_keep_reference_counts(qtbot):
    emitter = _Emitter()
    got = []
    emitter.value.connect(got.append, Qt.ConnectionType.QueuedConnection)
    before = _counts()

    def worker() -> None:
        for i in range(EMITS):
            emitter.value.emit(i)

    thread = threading.Thread(target=worker, name="binding-test")
    thread.start()
    thread.join(30)
    qtbot.waitUntil(lambda: len(got) == EMITS, timeout=30000)
    after = _counts()
    assert all(a >= b - SLACK for a, b in zip(after, before, strict=True)), (before, after)
