"""The engine panel: the picker and each engine's own controls, all read from the registry.

The picker lists ``REGISTRY.specs()`` by display name. Each engine's options with ``gui=True``
become controls built by their kind (``option_control``), on one page per engine; only the
selected engine's page shows. A control's edit is emitted as ``option_changed(name, value)``;
what the panel shows always comes from ``state.engine`` (so a refused switch shows the
engine that still runs). A secret is typed into a password field and never shown.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from avatarify_app import paths
from avatarify_app.config import EngineConfig
from avatarify_app.engines.registry import REGISTRY, EngineOption, EngineSpec
from avatarify_app.gui.panels import set_quietly
from avatarify_app.gui.state import AppState, RunningEngine

log = logging.getLogger(__name__)

HALF_OFF_TIP = "Half precision is for engines running on a CUDA GPU; this one does not run on one now."
SPIN_LIMIT = 1e9  # the range of a number without its own minimum/maximum
SLIDER_STEPS = 1000  # positions of a float slider without a step


class OptionControl:
    """One option's widget: ``show(value)`` draws a value; edits call ``emit(value)``."""

    def __init__(self, option: EngineOption, widget: QWidget, show: Callable[[Any], None]) -> None:
        self.option = option
        self.widget = widget
        self.show = show


def _path_control(opt: EngineOption, emit: Callable[[Any], None], parent: QWidget) -> OptionControl:
    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    label = QLabel()
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setMinimumWidth(60)
    button = QPushButton("Choose...")
    button.setToolTip(opt.help)
    row.addWidget(label, 1)
    row.addWidget(button)
    current: list[Any] = [None]

    def show(value: Any) -> None:
        current[0] = value
        name = Path(str(value)).name if value else "none (default)"
        label.setText(label.fontMetrics().elidedText(name, Qt.TextElideMode.ElideMiddle, 170))
        label.setToolTip(str(value) if value else opt.help)

    def choose() -> None:
        start = str(Path(current[0]).parent) if current[0] else str(paths.CHECKPOINTS_DIR)
        if opt.kind == "folder":
            chosen = QFileDialog.getExistingDirectory(parent, opt.title, start)
        else:
            chosen, _ = QFileDialog.getOpenFileName(parent, opt.title, start, "All files (*)")
        if chosen:
            emit(chosen)

    button.clicked.connect(choose)
    box.choose_button = button  # type: ignore[attr-defined]  (tests click it)
    return OptionControl(opt, box, show)


def _text_control(opt: EngineOption, emit: Callable[[Any], None]) -> OptionControl:
    edit = QLineEdit()
    edit.setToolTip(opt.help)
    if opt.kind == "secret":
        edit.setEchoMode(QLineEdit.EchoMode.Password)
        edit.setPlaceholderText("(hidden)")
    edit.editingFinished.connect(lambda: emit(edit.text().strip() or None))

    def show(value: Any) -> None:
        set_quietly(edit, "setText", "" if value is None else str(value))

    return OptionControl(opt, edit, show)


def _choice_control(opt: EngineOption, emit: Callable[[Any], None]) -> OptionControl:
    combo = QComboBox()
    combo.setToolTip(opt.help)
    for choice in opt.choices:
        combo.addItem(str(choice), choice)
    combo.activated.connect(lambda i: emit(combo.itemData(i)))

    def show(value: Any) -> None:
        i = combo.findData(opt.default if value is None else value)
        set_quietly(combo, "setCurrentIndex", max(i, 0))

    return OptionControl(opt, combo, show)


def _bool_control(opt: EngineOption, emit: Callable[[Any], None]) -> OptionControl:
    check = QCheckBox()
    check.setToolTip(opt.help)
    check.toggled.connect(emit)

    def show(value: Any) -> None:
        set_quietly(check, "setChecked", bool(opt.default if value is None else value))

    return OptionControl(opt, check, show)


def _number_control(opt: EngineOption, emit: Callable[[Any], None]) -> OptionControl:
    is_int = opt.kind == "int"
    lo = opt.minimum if opt.minimum is not None else -SPIN_LIMIT
    hi = opt.maximum if opt.maximum is not None else SPIN_LIMIT
    if opt.minimum is not None and opt.maximum is not None:
        # a slider over the range, in ``step`` increments, with the value beside it
        step = opt.step or (1 if is_int else (hi - lo) / SLIDER_STEPS)
        positions = max(1, round((hi - lo) / step))
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        slider = QSlider(Qt.Orientation.Horizontal)
        slider.setRange(0, positions)
        slider.setToolTip(opt.help)
        slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        value_label = QLabel()
        value_label.setMinimumWidth(44)
        row.addWidget(slider, 1)
        row.addWidget(value_label)

        def value_at(pos: int) -> Any:
            v = lo + pos * step
            return round(v) if is_int else round(min(v, hi), 6)

        def text(v: Any) -> str:
            if opt.minimum_text and v <= lo:
                return opt.minimum_text
            return str(v) if is_int else f"{v:.3g}"

        def moved(pos: int) -> None:
            value_label.setText(text(value_at(pos)))
            if opt.live or not slider.isSliderDown():
                emit(value_at(pos))

        slider.valueChanged.connect(moved)
        if not opt.live:  # a rebuild per step while dragging would be wasted: emit on release
            slider.sliderReleased.connect(lambda: emit(value_at(slider.value())))

        def show(value: Any) -> None:
            v = opt.default if value is None else value
            v = lo if v is None else v
            set_quietly(slider, "setValue", round((float(v) - lo) / step))
            value_label.setText(text(value_at(slider.value())))

        box.slider = slider  # type: ignore[attr-defined]  (tests move it)
        box.value_label = value_label  # type: ignore[attr-defined]  (and read it)
        return OptionControl(opt, box, show)
    spin: QSpinBox | QDoubleSpinBox = QSpinBox() if is_int else QDoubleSpinBox()
    spin.setKeyboardTracking(False)  # commit typed numbers on Enter / focus out, not per key
    if is_int:
        spin.setRange(int(max(lo, -2**31 + 1)), int(min(hi, 2**31 - 1)))
    else:
        spin.setDecimals(min(6, max(1, math.ceil(-math.log10(opt.step)))) if opt.step else 2)
        spin.setRange(lo, hi)
    if opt.step:
        spin.setSingleStep(opt.step)
    spin.setToolTip(opt.help)
    if opt.minimum_text:
        spin.setSpecialValueText(opt.minimum_text)  # shown at the minimum
    spin.valueChanged.connect(emit)

    def show_spin(value: Any) -> None:
        v = opt.default if value is None else value
        set_quietly(spin, "setValue", (int(v) if is_int else float(v)) if v is not None else max(lo, 0))

    return OptionControl(opt, spin, show_spin)


def option_control(opt: EngineOption, emit: Callable[[Any], None], parent: QWidget) -> OptionControl:
    """The widget for ``opt`` by its kind (see the module docstring)."""
    if opt.kind in ("path", "folder"):
        return _path_control(opt, emit, parent)
    if opt.kind in ("text", "secret"):
        return _text_control(opt, emit)
    if opt.kind == "choice":
        return _choice_control(opt, emit)
    if opt.kind == "bool":
        return _bool_control(opt, emit)
    return _number_control(opt, emit)


class EnginePage(QWidget):
    """One engine's summary and controls."""

    def __init__(self, spec: EngineSpec, emit: Callable[[str, Any], None]) -> None:
        super().__init__()
        self.spec = spec
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        summary = QLabel(spec.summary)
        summary.setWordWrap(True)
        summary.setStyleSheet("color: gray;")
        form.addRow(summary)
        self.controls: dict[str, OptionControl] = {}
        for opt in spec.options:
            if not opt.gui:
                continue
            control = option_control(opt, lambda v, name=opt.name: emit(name, v), self)
            control.widget.setObjectName(f"option_{spec.name}_{opt.name}")
            form.addRow(opt.title, control.widget)
            control.show(None)  # the default until the engine is selected with its own values
            self.controls[opt.name] = control

    def show_config(self, config: EngineConfig) -> None:
        for name, control in self.controls.items():
            control.show(config.options.get(name))


class EnginePanel(QGroupBox):
    """Engine picker, the selected engine's controls, half precision and the device in use."""

    engine_picked = Signal(str)  # engine name
    option_changed = Signal(str, object)  # option name, value (of the selected engine)
    half_toggled = Signal(bool)

    def __init__(self, state: AppState) -> None:
        super().__init__("Engine")
        self.state = state
        col = QVBoxLayout(self)
        self.engine_combo = QComboBox()
        self.pages: dict[str, EnginePage] = {}
        for spec in REGISTRY.specs():
            self.engine_combo.addItem(spec.display_name, spec.name)
            self.engine_combo.setItemData(self.engine_combo.count() - 1, spec.summary, Qt.ItemDataRole.ToolTipRole)
            page = EnginePage(spec, self._emit_option)
            page.setVisible(False)
            self.pages[spec.name] = page
        top = QFormLayout()
        top.addRow("Engine", self.engine_combo)
        col.addLayout(top)
        for page in self.pages.values():
            col.addWidget(page)
        self.half_check = QCheckBox("Half precision (GPU)")
        self.half_check.setEnabled(False)
        self.half_check.setToolTip(HALF_OFF_TIP)
        col.addWidget(self.half_check)
        self.device_label = QLabel("device: -")
        self.device_label.setWordWrap(True)
        col.addWidget(self.device_label)
        self.engine_combo.activated.connect(lambda i: self.engine_picked.emit(self.engine_combo.itemData(i)))
        self.half_check.toggled.connect(self.half_toggled)
        state.engine_changed.connect(lambda _config: self._show())
        state.runtime_changed.connect(lambda _runtime: self._show())
        self._show()

    def _emit_option(self, name: str, value: Any) -> None:
        self.option_changed.emit(name, value)

    def shown_engine(self) -> str | None:
        """The engine whose page shows: the one asked for, or for ``auto`` the one that runs."""
        name = self.state.engine.name
        if name not in self.pages:
            name = self.state.runtime.engine or ""
        return name if name in self.pages else None

    def page(self, name: str) -> EnginePage | None:
        return self.pages.get(name)

    def _show(self) -> None:
        config, runtime = self.state.engine, self.state.runtime
        shown = self.shown_engine()
        if shown is not None:
            set_quietly(self.engine_combo, "setCurrentIndex", self.engine_combo.findData(shown))
        for name, page in self.pages.items():
            if name == shown:
                page.show_config(config)
            page.setVisible(name == shown)
        self._show_half(config, runtime, self.pages[shown].spec if shown else None)
        self.device_label.setText(f"device: {runtime.device or '-'}")

    def _show_half(self, config: EngineConfig, runtime: RunningEngine, spec: EngineSpec | None) -> None:
        offered = spec is not None and spec.half
        self.half_check.setVisible(offered)
        usable = offered and runtime.cuda and runtime.engine == (spec.name if spec else None)
        self.half_check.setEnabled(usable)
        self.half_check.setToolTip("Half precision for this engine's networks (faster on most GPUs). "
                                   "Default: on for CUDA." if usable else HALF_OFF_TIP)
        set_quietly(self.half_check, "setChecked", usable and config.resolved_half(True))
