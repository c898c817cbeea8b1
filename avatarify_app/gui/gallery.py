"""The avatar strip: thumbnails of built-in and user portraits, add and remove."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImageReader, QPixmap
from PySide6.QtWidgets import (
    QHBoxLayout,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from avatarify_app.pipeline.avatar_store import Avatar

THUMB = 64
PATH_ROLE = Qt.ItemDataRole.UserRole
BUILTIN_ROLE = Qt.ItemDataRole.UserRole + 1


def _thumbnail(path: Path) -> QPixmap:
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    size = reader.size()
    if size.isValid() and size.width() > 0:
        reader.setScaledSize(size.scaled(THUMB * 2, THUMB * 2, Qt.AspectRatioMode.KeepAspectRatio))
    image = reader.read()
    if image.isNull():
        pix = QPixmap(THUMB, THUMB)
        pix.fill(Qt.GlobalColor.darkGray)
        return pix
    return QPixmap.fromImage(image)


class AvatarGallery(QWidget):
    """Signals ``picked(Path)`` when the user chooses an avatar; buttons ask to add/remove."""

    picked = Signal(object)
    add_requested = Signal()
    remove_requested = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QListWidget(self)
        self.list.setViewMode(QListView.ViewMode.IconMode)
        self.list.setFlow(QListView.Flow.LeftToRight)
        self.list.setWrapping(False)
        self.list.setMovement(QListView.Movement.Static)
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setGridSize(QSize(THUMB + 22, THUMB + 30))
        self.list.setFixedHeight(THUMB + 46)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.list.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys 1-9/A/D/arrows are app shortcuts
        self.list.setToolTip("Click a portrait to animate it (keys 1-9, A/D for previous/next).\n"
                             "Drop photos here or use Add... to bring your own.")
        self.list.itemClicked.connect(self._on_clicked)

        self.add_button = QPushButton("Add...", self)
        self.add_button.setToolTip("Add a portrait photo; the face is framed automatically.")
        self.add_button.clicked.connect(self.add_requested)
        self.remove_button = QPushButton("Remove", self)
        self.remove_button.setToolTip("Remove the selected portrait you added.")
        self.remove_button.clicked.connect(self._on_remove)
        self.remove_button.setEnabled(False)

        buttons = QVBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.list, 1)
        row.addLayout(buttons)

    # -- content --------------------------------------------------------------------
    def set_avatars(self, avatars: list[Avatar]) -> None:
        current = self.current_path()
        self.list.clear()
        for i, avatar in enumerate(avatars):
            label = f"{i + 1}. {avatar.name}" if i < 9 else avatar.name
            item = QListWidgetItem(QIcon(_thumbnail(avatar.path)), label)
            item.setData(PATH_ROLE, str(avatar.path))
            item.setData(BUILTIN_ROLE, avatar.builtin)
            item.setToolTip(f"{avatar.path}" + (" (built in)" if avatar.builtin else ""))
            self.list.addItem(item)
        if current is not None:
            self.select_path(current, emit=False)

    def count(self) -> int:
        return self.list.count()

    def paths(self) -> list[Path]:
        return [Path(self.list.item(i).data(PATH_ROLE)) for i in range(self.list.count())]

    def current_path(self) -> Path | None:
        item = self.list.currentItem()
        return Path(item.data(PATH_ROLE)) if item is not None else None

    def current_index(self) -> int:
        return self.list.currentRow()

    # -- selection ------------------------------------------------------------------
    def select_index(self, index: int, emit: bool = True) -> bool:
        if not 0 <= index < self.list.count():
            return False
        item = self.list.item(index)
        self.list.setCurrentItem(item)
        self.list.scrollToItem(item)
        self.remove_button.setEnabled(not bool(item.data(BUILTIN_ROLE)))
        if emit:
            self.picked.emit(Path(item.data(PATH_ROLE)))
        return True

    def select_path(self, path: Path | str, emit: bool = True) -> bool:
        target = Path(path)
        for i in range(self.list.count()):
            if Path(self.list.item(i).data(PATH_ROLE)) == target:
                return self.select_index(i, emit)
        return False

    def step(self, delta: int) -> bool:
        n = self.list.count()
        if n == 0:
            return False
        i = self.list.currentRow()
        i = (0 if delta > 0 else n - 1) if i < 0 else (i + delta) % n
        return self.select_index(i)

    def _on_clicked(self, item: QListWidgetItem) -> None:
        self.select_index(self.list.row(item))

    def _on_remove(self) -> None:
        path = self.current_path()
        if path is not None:
            self.remove_requested.emit(path)
