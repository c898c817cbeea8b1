"""The Qt binding keeps Python's reference counts: the window emits signals for every frame.

PySide6 6.12.0 returns ``True`` from ``SignalInstance.emit()`` without a reference, and a
queued emission drops one of ``None``: on Python < 3.12 (where they are not immortal) the
app then dies with "Fatal Python error: bool_dealloc / none_dealloc" after ~20 s of frames.
pyproject.toml keeps that version out; this test fails if a binding like it comes back.

The counts are taken in a fresh process: in the test process, objects that earlier tests left
for the garbage collector give back references to True/False/None at any moment.
"""

from __future__ import annotations

import subprocess
import sys

CHECK = r"""
import sys, threading
from PySide6.QtCore import QCoreApplication, QObject, Qt, Signal

app = QCoreApplication([])

class Emitter(QObject):
    value = Signal(object)
    ping = Signal()

def counts():
    return sys.getrefcount(True), sys.getrefcount(False), sys.getrefcount(None)

EMITS = 20000
direct = Emitter(); got = []
direct.value.connect(got.append)
before = counts()
for i in range(EMITS):
    direct.value.emit(i)
    direct.ping.emit()
after_direct = counts()

queued = Emitter(); got_q = []
queued.value.connect(got_q.append, Qt.ConnectionType.QueuedConnection)
before_q = counts()
t = threading.Thread(target=lambda: [queued.value.emit(i) for i in range(EMITS)])
t.start(); t.join()
while len(got_q) < EMITS:
    app.processEvents()
after_q = counts()
print(len(got), len(got_q), *[a - b for a, b in zip(after_direct, before)], *[a - b for a, b in zip(after_q, before_q)])
"""


def test_direct_and_queued_emits_keep_reference_counts():
    proc = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]  # a leaking binding aborts ("bool_dealloc")
    direct, queued, *deltas = (int(v) for v in proc.stdout.split())
    assert direct == queued == 20000
    assert all(abs(d) < 200 for d in deltas), deltas
