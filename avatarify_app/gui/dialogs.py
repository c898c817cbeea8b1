"""Non-blocking message boxes: warnings that stay readable, and the keyboard shortcuts."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

MAX_DIALOG_TEXT = 420
SHORTCUTS = ("1-9  pick a portrait        A / D  previous / next\n"
             "X  calibrate (3-2-1)        F  auto-calibrate\n"
             "R  mirror     P  passthrough     L  landmarks     G  debug view\n"
             "W / S  zoom     arrows  move the crop     0  reset framing\n"
             "Ctrl+O  add portrait   Ctrl+Shift+O  video file   Ctrl+R  record")


def shorten(text: str) -> str:
    """The head of ``text`` and the tail of its last part, each at most ``MAX_DIALOG_TEXT`` long."""
    if len(text) <= MAX_DIALOG_TEXT:
        return text
    head, _, tail = text.partition("\n\n")
    short = (head[: MAX_DIALOG_TEXT - 3] + "...") if len(head) > MAX_DIALOG_TEXT else head
    if tail:
        short += "\n\n" + tail[-MAX_DIALOG_TEXT:]
    return short


def open_warning(parent: QWidget, title: str, text: str) -> None:
    """A window-modal warning that does not block frames; long text goes under Show Details."""
    short = shorten(text)
    box = QMessageBox(QMessageBox.Icon.Warning, title, short, QMessageBox.StandardButton.Ok, parent)
    if short != text:
        box.setDetailedText(text)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
    box.open()


def open_shortcuts(parent: QWidget) -> None:
    box = QMessageBox(QMessageBox.Icon.Information, "Keyboard shortcuts", SHORTCUTS,
                      QMessageBox.StandardButton.Ok, parent)
    box.open()
