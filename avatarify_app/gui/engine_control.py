"""The engine for ``MainWindow``: picking one, loading a FOMM checkpoint (checked off the GUI
thread), half precision while it runs on CUDA, and falling back when a switch fails.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from avatarify_app import paths
from avatarify_app.config import EngineConfig
from avatarify_app.errors import CheckpointError
from avatarify_app.gui.panels import HALF_OFF_TIP


def validate_checkpoint(path: str) -> str:
    """Load a FOMM checkpoint strictly (off the GUI thread); raise CheckpointError saying what is wrong."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"Checkpoint not found: {p}", "Choose an existing .pth.tar file.")
    from avatarify_app.models import load_fomm

    load_fomm(p)
    return str(p)


class EngineMixin:
    """The engine of ``MainWindow`` (uses its widgets and state)."""

    def _show_cuda(self, cuda: bool) -> None:
        """Offer half precision while the engine runs on a CUDA GPU (the engine resolved the device)."""
        if cuda == self._cuda:
            return
        self._cuda = cuda
        self.half_check.setEnabled(cuda)
        self.half_check.setToolTip("Half precision for the FOMM generator (faster on most GPUs)."
                                   if cuda else HALF_OFF_TIP)
        self.half_check.blockSignals(True)
        self.half_check.setChecked(cuda and bool(self._engine_config.half))
        self.half_check.blockSignals(False)

    def _select_engine_in_combo(self, name: str) -> None:
        i = self.engine_combo.findData(name)
        if i >= 0:
            self.engine_combo.setCurrentIndex(i)

    def _show_checkpoint(self) -> None:
        ckpt = self._engine_config.checkpoint
        self.checkpoint_label.setText(f"checkpoint: {Path(ckpt).name}" if ckpt else
                                      "checkpoint: none loaded (FOMM searches checkpoints/)")

    def _on_engine_activated(self, index: int) -> None:
        name = self.engine_combo.itemData(index)
        if name != self._engine_config.name:
            self.set_engine(dataclasses.replace(self._engine_config, name=name))

    def set_engine(self, config: EngineConfig) -> None:
        """Switch engines; on failure the error dialog shows and the previous engine stays."""
        self._engine_config = config
        self._select_engine_in_combo(config.name)
        self._show_checkpoint()
        if self.session is not None:
            self._engine_pending = True
            self.engine_label.setText(f"engine: loading {config.name}...")
            self.session.set_engine(config)
        else:
            self._remember_engine(config)

    def _remember_engine(self, config: EngineConfig) -> None:
        self.settings.set("engine/name", config.name)
        self.settings.set("engine/checkpoint", config.checkpoint or "")

    def _engine_switch_failed(self) -> str:
        """Show the engine that really runs (the previous one) or fall back to landmarks."""
        self._engine_pending = False
        session = self.session
        running = session.stats().engine if session is not None else None
        if running is None and self._engine_config.name != "landmarks":
            fallback = EngineConfig(name="landmarks", device=self._engine_config.device)
            self.set_engine(fallback)
            return "the built-in landmarks engine"
        if session is not None and running is not None:
            self._engine_config = session.engine_config
        self._select_engine_in_combo(self._engine_config.name)
        self._show_checkpoint()
        return f"the {self._engine_config.name} engine"

    def choose_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load a FOMM checkpoint", str(paths.CHECKPOINTS_DIR),
                                              "Checkpoints (*.pth.tar *.pth *.tar *.pt);;All files (*)")
        if path:
            self.load_checkpoint(path)

    def load_checkpoint(self, path: str) -> None:
        """Validate off the GUI thread, then switch to FOMM with it (or show why not)."""
        self.statusBar().showMessage(f"Checking {Path(path).name}...")
        self._busy(+1)
        self.checkpoint_button.setEnabled(False)

        def done(valid: str) -> None:
            self._task_finished()
            self.checkpoint_button.setEnabled(True)
            self.statusBar().showMessage(f"Loading FOMM with {Path(valid).name}...", 4000)
            self.set_engine(self._engine_config.with_options(checkpoint=valid).replace(name="fomm"))

        def failed(err: BaseException) -> None:
            self._task_finished()
            self.checkpoint_button.setEnabled(True)
            self.statusBar().clearMessage()
            self.show_error("Cannot load this checkpoint",
                            f"{err}\n\nThe app keeps running with the {self._engine_config.name} engine.")

        self.tasks.submit(lambda: validate_checkpoint(path), done, failed)

    def _on_half_toggled(self, on: bool) -> None:
        self.settings.set("engine/half", on)
        self.set_engine(dataclasses.replace(self._engine_config, half=True if on else None))

