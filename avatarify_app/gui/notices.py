"""What the controllers tell the user: problems (a dialog) and passing messages (the status bar)."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal


class Notices(QObject):
    """One channel for every part: the window shows ``problem`` as a dialog, ``message`` in the
    status bar (``timeout_ms`` 0 keeps it until the next one; an empty text clears it)."""

    problem = Signal(str, str)  # title, text
    message = Signal(str, int)  # text, timeout_ms

    def tell(self, text: str, timeout_ms: int = 0) -> None:
        self.message.emit(text, timeout_ms)

    def clear(self) -> None:
        self.message.emit("", 0)

    def warn(self, title: str, text: str) -> None:
        self.problem.emit(title, text)
