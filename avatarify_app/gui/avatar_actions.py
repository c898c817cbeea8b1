"""Choosing, adding and removing portraits (the gallery's actions) for ``MainWindow``,
and files dropped on the window (photos become portraits, videos drive the avatar).

The files and what is kept per portrait live in ``avatars`` (no Qt); this mixin turns
the gallery's requests into session calls and background imports.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from avatarify_app.errors import AvatarifyError
from avatarify_app.frames import IMAGE_SUFFIXES
from avatarify_app.gui import avatars as store
from avatarify_app.gui.sources import VIDEO_SUFFIXES


class AvatarActionsMixin:
    """The portrait ``MainWindow`` animates (uses its widgets and state)."""

    def reload_gallery(self) -> None:
        self.gallery.set_avatars(store.list_avatars())

    def set_avatar(self, path: Path | str) -> None:
        """Animate this portrait; restores its calibration and framing if it has them."""
        path = Path(path)
        self._avatar_path = path
        self.settings.set("avatar/path", str(path))
        # The overlay and the debug view show the session's aligned crop of the portrait
        # (FrameEvent.avatar), which arrives with the frames once the session framed it.
        framing = store.load_framing(path)
        self._set_framing(*(framing or (1.0, 0.0, 0.0)), save=False)
        if self.session is not None:
            self._apply_avatar_to_session(path)
        self._update_guide()

    def _apply_avatar_to_session(self, path: Path) -> None:
        session = self.session
        session.set_avatar(str(path))
        session.update_options(self._current_options())
        self._restore_calibration(path)

    def show_avatar_notes(self) -> None:
        """Say in the status bar what the session noticed about the portrait it now animates
        (``Session.avatar_notes``), once per portrait; called with every stats update."""
        notes = self.session.avatar_notes if self.session is not None else ()
        if notes and notes is not getattr(self, "_avatar_notes_shown", None):
            self._avatar_notes_shown = notes
            self.statusBar().showMessage(" ".join(notes), 15000)

    def choose_avatar_files(self) -> None:
        patterns = " ".join(f"*{s}" for s in IMAGE_SUFFIXES)
        files, _ = QFileDialog.getOpenFileNames(self, "Add portraits", "", f"Images ({patterns})")
        for f in files:
            self.add_avatar_file(f)

    def add_avatar_file(self, path: str | Path) -> None:
        """Frame the face off the GUI thread, save it in the user folder, then select it."""
        path = Path(path)
        self.statusBar().showMessage(f"Finding the face in {path.name}...")
        self._busy(+1)

        def done(result: tuple[Path, tuple[str, ...]]) -> None:
            saved, notes = result
            self._task_finished()
            self.statusBar().showMessage(" ".join((f"Added {saved.name}.", *notes)), 15000 if notes else 4000)
            self.reload_gallery()
            self.gallery.select_path(saved)

        def failed(err: BaseException) -> None:
            self._task_finished()
            self.statusBar().clearMessage()
            self.show_error("Cannot add this portrait", f"{path.name}: {err}")

        self.tasks.submit(lambda: store.import_avatar_noted(path), done, failed)

    def remove_avatar(self, path: Path) -> None:
        avatar = next((a for a in store.list_avatars() if a.path == Path(path)), None)
        if avatar is None:
            return
        try:
            store.remove_avatar(avatar)
        except AvatarifyError as err:
            self.show_error("Cannot remove this portrait", str(err))
            return
        index = self.gallery.current_index()
        self.reload_gallery()
        if self.gallery.count():
            self.gallery.select_index(min(index, self.gallery.count() - 1))

    # drag and drop of photos (portraits) or videos (driving source)
    def dragEnterEvent(self, event) -> None:
        if any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        for url in event.mimeData().urls():
            if not url.isLocalFile():
                continue
            p = Path(url.toLocalFile())
            if p.suffix.lower() in VIDEO_SUFFIXES:
                self.open_source(str(p))
            else:
                self.add_avatar_file(p)
        event.acceptProposedAction()
