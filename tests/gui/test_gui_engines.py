"""The engine panel and controller: everything from the registry, nothing named in the GUI.

A test-only engine is registered here (and only here) to show that an engine added to the
registry appears in the picker with controls built from its options, without touching any
other module. The session is real; its engines are the fakes' (which take any name).
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from gui_helpers import TIMEOUT, wait_frames
from live_fakes import FACE_SIZE, ControlledEngine, Fakes
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLabel, QLineEdit, QPushButton, QSlider

from avatarify_app.config import EngineConfig
from avatarify_app.engines.registry import REGISTRY, Availability, EngineOption, EngineSpec
from avatarify_app.gui.settings import AppSettings

SECRET = "s3cr3t-token-value"



def show_engine_tab(window) -> None:
    """The engine's controls live on the controls dock's Engine tab."""
    window.controls_tabs.setCurrentIndex(window.controls_tabs.count() - 1)

def _build_test_engine(config, motion):
    """What the registry builds for the test engine (a session that uses the registry): a fake
    that reports its own stages, as a remote engine does."""
    return ControlledEngine(name="testonly", device="cpu (test engine)", size=FACE_SIZE, tint=True,
                            stage_ms={"network": 12.4, "server": 8.9})


TEST_SPEC = EngineSpec(
    name="testonly",
    display_name="Test-only engine",
    summary="registered by a test; every kind of option",
    factory=_build_test_engine,
    detect=lambda config: Availability(True, "always (test)"),
    half=True,
    auto=False,
    options=(
        EngineOption("weights", "path", help="a weights file", label="Weights"),
        EngineOption("model_dir", "folder", help="a folder"),
        EngineOption("server", "text", help="a server address"),
        EngineOption("token", "secret", help="an access token"),
        EngineOption("quality", "choice", default="fast", choices=("fast", "best")),
        EngineOption("sharpen", "bool", default=False),
        EngineOption("strength", "float", default=0.5, minimum=0.0, maximum=1.0, step=0.05, live=True,
                     minimum_text="off"),
        EngineOption("batch", "int", default=2, minimum=1, maximum=8),
        EngineOption("timeout", "float", default=3.0),
        EngineOption("internal", "text", gui=False),
    ),
)


@pytest.fixture
def test_engine():
    unregister = REGISTRY.register(TEST_SPEC)
    yield TEST_SPEC
    unregister()


def select_engine(window, name: str) -> None:
    combo = window.engine_panel.engine_combo
    index = combo.findData(name)
    assert index >= 0, f"{name} is not in the picker"
    combo.setCurrentIndex(index)
    combo.activated.emit(index)


def wait_engine(qtbot, window, name: str, **options) -> None:
    """Until the session runs ``name`` with ``options`` and the switch is confirmed."""
    def running() -> bool:
        config = window.session.engine_config
        return (config.name == name and all(config.options.get(k) == v for k, v in options.items())
                and not window.state.engine_pending and window.state.runtime.engine == name)

    qtbot.waitUntil(running, timeout=TIMEOUT)


def control(window, option: str):
    return window.engine_panel.page("testonly").controls[option].widget


def test_a_registered_engine_appears_with_its_controls(qtbot, make_window, test_engine):
    window = make_window()
    show_engine_tab(window)
    wait_frames(qtbot, window)
    combo = window.engine_panel.engine_combo
    assert [combo.itemText(i) for i in range(combo.count())] == [s.display_name for s in REGISTRY.specs()]
    assert [combo.itemData(i) for i in range(combo.count())][-1] == "testonly"

    page = window.engine_panel.page("testonly")
    assert not page.isVisible()  # only the selected engine's controls show
    kinds = {name: type(c.widget) for name, c in page.controls.items()}
    assert set(kinds) == {o.name for o in TEST_SPEC.options if o.gui}  # "internal" (gui=False) is not offered
    assert isinstance(control(window, "weights").choose_button, QPushButton)
    assert control(window, "weights").findChild(QLabel).text() == "none (default)"
    assert isinstance(control(window, "model_dir").choose_button, QPushButton)
    assert kinds["server"] is QLineEdit and control(window, "server").echoMode() == QLineEdit.EchoMode.Normal
    assert kinds["token"] is QLineEdit and control(window, "token").echoMode() == QLineEdit.EchoMode.Password
    assert kinds["quality"] is QComboBox
    assert [control(window, "quality").itemText(i) for i in range(2)] == ["fast", "best"]
    assert kinds["sharpen"] is QCheckBox
    strength = control(window, "strength").slider
    assert isinstance(strength, QSlider) and strength.maximum() == 20  # 0..1 in steps of 0.05
    assert control(window, "strength").value_label.text() == "0.5"
    strength.setValue(0)  # the minimum shows what it means (EngineOption.minimum_text)
    assert control(window, "strength").value_label.text() == "off"
    strength.setValue(10)
    assert isinstance(control(window, "batch").slider, QSlider) and control(window, "batch").slider.maximum() == 7
    assert kinds["timeout"] is QDoubleSpinBox and control(window, "timeout").value() == 3.0

    select_engine(window, "testonly")
    wait_engine(qtbot, window, "testonly")
    assert page.isVisible()
    assert all(not p.isVisible() for name, p in window.engine_panel.pages.items() if name != "testonly")
    assert window.fakes.engine.name == "testonly"
    assert window.engine_panel.half_check.isVisible()  # this engine has a half-precision path
    assert AppSettings().get_str("engine/name") == "testonly"


def test_options_rebuild_or_go_live_and_are_remembered(qtbot, make_window, test_engine, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    window = make_window()
    show_engine_tab(window)
    select_engine(window, "testonly")
    wait_engine(qtbot, window, "testonly")
    fakes = window.fakes

    # a choice rebuilds the engine with it
    built = len(fakes.engines)
    quality = control(window, "quality")
    quality.setCurrentIndex(1)
    quality.activated.emit(1)
    wait_engine(qtbot, window, "testonly", quality="best")
    assert len(fakes.engines) == built + 1

    # a live option goes to the running engine without a rebuild
    built = len(fakes.engines)
    engine = fakes.engine
    control(window, "strength").slider.setValue(16)
    qtbot.waitUntil(lambda: engine.controls == [{"strength": 0.8}], timeout=TIMEOUT)
    assert len(fakes.engines) == built
    assert window.state.engine.options["strength"] == 0.8

    # a path option (file dialog stood in for) and a secret
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"x")
    from avatarify_app.gui import engine_panel

    pick = SimpleNamespace(getOpenFileName=lambda *a, **k: (str(weights), ""),
                           getExistingDirectory=lambda *a, **k: str(tmp_path))
    original = engine_panel.QFileDialog
    engine_panel.QFileDialog = pick
    try:
        control(window, "weights").choose_button.click()
        wait_engine(qtbot, window, "testonly", weights=str(weights))
        control(window, "model_dir").choose_button.click()
        wait_engine(qtbot, window, "testonly", model_dir=str(tmp_path))
    finally:
        engine_panel.QFileDialog = original
    assert control(window, "weights").findChild(QLabel).text() == "w.bin"
    token = control(window, "token")
    token.setText(SECRET)
    token.editingFinished.emit()
    wait_engine(qtbot, window, "testonly", token=SECRET)
    window.close()

    assert SECRET not in caplog.text  # never logged
    again = make_window()
    show_engine_tab(again)
    wait_engine(qtbot, again, "testonly", quality="best", token=SECRET, weights=str(weights))
    assert again.session.engine_config.options["strength"] == 0.8
    assert control(again, "quality").currentText() == "best"
    assert control(again, "strength").slider.value() == 16
    assert control(again, "token").text() == SECRET and control(again, "token").echoMode() == QLineEdit.EchoMode.Password
    assert SECRET not in caplog.text


def test_half_precision_follows_the_checkbox_on_cuda(qtbot, make_window, test_engine):
    window = make_window()
    show_engine_tab(window)
    select_engine(window, "testonly")
    wait_engine(qtbot, window, "testonly")
    half = window.engine_panel.half_check
    qtbot.waitUntil(lambda: "cpu (fake)" in window.engine_panel.device_label.text(), timeout=TIMEOUT)
    assert half.isVisible() and not half.isEnabled()  # not on a CUDA device
    window.close()

    gpu = make_window(fakes=Fakes(engine_kw={"device": "cuda:0 Fake GPU"}))  # the saved engine, default half
    show_engine_tab(gpu)
    half = gpu.engine_panel.half_check
    qtbot.waitUntil(lambda: half.isEnabled(), timeout=TIMEOUT)
    assert gpu.session.engine_config.half is None and half.isChecked()  # None = the default: on for CUDA
    half.setChecked(False)  # off, explicitly: the engine is rebuilt with half=False
    qtbot.waitUntil(lambda: gpu.session.engine_config.half is False and not gpu.state.engine_pending,
                    timeout=TIMEOUT)
    assert not half.isChecked()
    assert AppSettings().get_str("engine/half") == "off"
    half.setChecked(True)
    qtbot.waitUntil(lambda: gpu.session.engine_config.half is True and not gpu.state.engine_pending,
                    timeout=TIMEOUT)
    assert AppSettings().get_str("engine/half") == "on"
    gpu.close()

    # --no-half on the command line wins over the saved choice, for that run only
    cli = make_window(fakes=Fakes(engine_kw={"device": "cuda:0 Fake GPU"}),
                      engine_config=EngineConfig(name="testonly", half=False))
    half = cli.engine_panel.half_check
    qtbot.waitUntil(lambda: half.isEnabled(), timeout=TIMEOUT)
    assert cli.session.engine_config.half is False and not half.isChecked()
    qtbot.waitUntil(lambda: not cli.state.engine_pending, timeout=TIMEOUT)
    assert AppSettings().get_str("engine/half") == "on"


def test_no_half_precision_box_for_an_engine_without_it(qtbot, make_window):
    window = make_window(fakes=Fakes(engine_kw={"device": "cuda:0 Fake GPU"}))
    show_engine_tab(window)
    wait_frames(qtbot, window)
    qtbot.waitUntil(lambda: "cuda" in window.engine_panel.device_label.text(), timeout=TIMEOUT)
    spec = REGISTRY.get(window.session.stats().engine)
    assert not spec.half
    assert not window.engine_panel.half_check.isVisible() and not window.engine_panel.half_check.isEnabled()


def test_a_checkpoint_is_loaded_once(qtbot, make_window, tmp_path, monkeypatch):
    """Loading a checkpoint from the window reads it once, in the session (not checked first)."""
    import avatarify_app.models  # noqa: F401  (torch imports before the timed part)
    from avatarify_app.models.fomm import checkpoint

    reads = []
    real = checkpoint.load_weights
    monkeypatch.setattr(checkpoint, "load_weights", lambda *a, **k: reads.append(a[0]) or real(*a, **k))
    window = make_window()
    show_engine_tab(window)
    wait_frames(qtbot, window)
    running = window.session.stats().engine
    bad = tmp_path / "bad.pth.tar"
    bad.write_bytes(b"\x00garbage" * 100)
    window.load_checkpoint(str(bad))
    qtbot.waitUntil(lambda: len(window.errors_shown) >= 1, timeout=TIMEOUT)
    assert len(reads) == 1, reads
    title, text = window.errors_shown[0]
    assert "checkpoint" in title.lower() and "keeps running" in text, window.errors_shown
    qtbot.waitUntil(lambda: not window.state.engine_pending, timeout=TIMEOUT)
    assert window.session.stats().engine == running
    assert window.engine_panel.engine_combo.currentData() == running, (running, window.state.engine,
                                                                       window.state.runtime)
    assert len(window.errors_shown) == 1, window.errors_shown
    wait_frames(qtbot, window, 3)


def test_status_bar_names_engine_device_timings_and_why(qtbot, make_window, test_engine):
    """Engines built by the registry: auto says why it chose; an engine's own stages show."""
    window = make_window(fakes=Fakes(registry=True), engine_config=EngineConfig(name="auto"))
    show_engine_tab(window)
    wait_frames(qtbot, window)
    label = window.status.engine_label
    chosen = window.session.stats().engine
    qtbot.waitUntil(lambda: "auto:" in label.text(), timeout=TIMEOUT)
    reason = REGISTRY.get(chosen).detect(EngineConfig(name=chosen)).reason
    assert f"engine: {chosen}" in label.text() and f"auto: {reason}" in label.text()  # why, in short
    assert f"{chosen}: chosen ({reason})" in label.toolTip()  # every reason in the tooltip
    assert window.engine_panel.engine_combo.currentData() == chosen  # the picker shows what auto chose

    select_engine(window, "testonly")  # asked for by name: no "auto" reason
    wait_engine(qtbot, window, "testonly")
    qtbot.waitUntil(lambda: "network 12 ms" in label.text(), timeout=TIMEOUT)
    text = label.text()
    assert "engine: testonly" in text and "cpu (test engine)" in text and "server 9 ms" in text
    assert "auto:" not in text


def test_the_controls_tab_is_remembered(make_window):
    window = make_window()
    assert window.controls_tabs.tabText(window.controls_tabs.currentIndex()) == "Live"  # a first start
    show_engine_tab(window)
    window.close()
    again = make_window()
    assert again.controls_tabs.tabText(again.controls_tabs.currentIndex()) == "Engine"


