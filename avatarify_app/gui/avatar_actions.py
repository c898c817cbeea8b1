"""Adding and removing the user's portraits (the gallery's Add... and Remove).

A portrait is framed once, by the session, when it is animated: adding one here only checks
that the file is a picture with a face (off the GUI thread) and keeps a copy of the photo,
read upright, flattened and scaled down to at most ``MAX_SIDE`` px, in the user's portrait
folder (what changed on the way is said in the status bar). (Framing it here as
well, and then again in the session, re-cropped and resampled an already framed picture.)
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from avatarify_app.errors import AvatarifyError
from avatarify_app.gui.notices import Notices
from avatarify_app.gui.state import AppState
from avatarify_app.gui.tasks import Tasks
from avatarify_app.pipeline import avatar_store as store

log = logging.getLogger(__name__)

class PortraitLibrary(QObject):
    """Adds (in the background) and removes the user's portraits; the gallery reloads on the signals."""

    added = Signal(object)  # Path of the new portrait
    removed = Signal(object)  # Path of the removed portrait

    def __init__(self, state: AppState, notices: Notices, tasks: Tasks, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.notices = notices
        self.tasks = tasks

    def add(self, path: str | Path) -> None:
        path = Path(path)
        self.notices.tell(f"Finding the face in {path.name}...")
        self.state.add_busy(+1)

        def done(result: tuple[Path, tuple[str, ...]]) -> None:
            saved, notes = result
            self.state.add_busy(-1)
            self.notices.tell(" ".join((f"Added {saved.name}.", *notes)), 15000 if notes else 4000)
            self.added.emit(saved)

        def failed(err: BaseException) -> None:
            self.state.add_busy(-1)
            self.notices.clear()
            self.notices.warn("Cannot add this portrait", f"{path.name}: {err}")

        self.tasks.submit(lambda: store.import_portrait(path), done, failed)

    def remove(self, path: str | Path) -> bool:
        avatar = next((a for a in store.list_avatars() if a.path == Path(path)), None)
        if avatar is None:
            return False
        try:
            store.remove_avatar(avatar)
        except AvatarifyError as err:
            self.notices.warn("Cannot remove this portrait", str(err))
            return False
        self.removed.emit(avatar.path)
        return True
