"""Adding an engine is one registration: a test-only engine registered here (no other module
touched) is offered by every command's --engine, gets its own flags, runs in animate, bench
and the live pipeline, and is picked by --engine auto in its turn."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from avatarify_app.cli import build_parser, main
from avatarify_app.config import EngineConfig
from avatarify_app.engines import REGISTRY, Availability, EngineOption, EngineSpec
from avatarify_app.paths import ASSETS_DIR, AVATARS_DIR

DEMO = ASSETS_DIR / "demo" / "driving.mp4"
AVATAR = AVATARS_DIR / "astronaut.png"


class TintEngine:
    """The source, tinted towards the driving crop's mean colour by ``strength``."""

    name = "tint"
    device = "cpu (test engine)"
    size = 128

    def __init__(self, strength: float) -> None:
        self.strength = strength
        self.calls = 0
        self._source = None
        self._reference = None

    def set_source(self, image, landmarks=None):
        assert image.shape == (self.size, self.size, 3)
        self._source = image.astype(np.float32)

    def set_reference(self, image, landmarks=None):
        self._reference = None if image is None else image.copy()

    def has_reference(self):
        return self._reference is not None

    def set_options(self, options):
        pass

    def set_controls(self, values):
        self.strength = float(values.get("strength", self.strength))

    def predict(self, image, landmarks=None):
        assert image.shape == (self.size, self.size, 3)
        self.calls += 1
        if self._reference is None:
            self._reference = image.copy()
        mean = image.reshape(-1, 3).mean(0)
        out = (1 - self.strength) * self._source + self.strength * mean
        return np.ascontiguousarray(np.clip(out, 0, 255).astype(np.uint8))

    def timings(self):
        return {"tint": 0.1}

    def debug_info(self):
        return {}

    def close(self):
        pass


def make_spec(available: bool = True) -> EngineSpec:
    return EngineSpec(
        name="tint",
        display_name="Tint (test engine)",
        summary="a test-only engine",
        factory=lambda config, motion: TintEngine(config.option("strength", 0.5)),
        detect=lambda config: Availability(available, "always here" if available else "switched off"),
        options=(EngineOption("strength", "float", default=0.5, minimum=0.0, maximum=1.0, live=True,
                              help="how much of the driving colour"),),
    )


@pytest.fixture
def tint():
    remove = REGISTRY.register(make_spec())
    yield
    remove()


def test_every_command_offers_it_with_its_own_flag(tint):
    for command in ("animate", "evaluate", "bench", "live", "gui"):
        parser = build_parser(only=command)
        sub = next(a for a in parser._actions if a.dest == "command").choices[command]
        engine = next(a for a in sub._actions if a.dest == "engine")
        assert "tint" in engine.choices, command
        assert any("--strength" in a.option_strings for a in sub._actions), command
    args = build_parser(only="bench").parse_args(["bench", "--engine", "tint", "--strength", "0.25"])
    from avatarify_app.engines import engine_config_from_args

    assert engine_config_from_args(args) == EngineConfig(name="tint", options={"strength": 0.25})
    with pytest.raises(Exception, match="outside"):
        REGISTRY.checked(EngineConfig(name="tint", options={"strength": 3.0}))


def test_it_leaves_the_registry_when_unregistered():
    remove = REGISTRY.register(make_spec())
    assert "tint" in REGISTRY.names()
    remove()
    assert "tint" not in REGISTRY.names()
    with pytest.raises(ValueError, match="registered already"):
        REGISTRY.register(EngineSpec("landmarks", "x", "x", factory=None, detect=None))


def test_auto_tries_it_in_its_turn(monkeypatch):
    monkeypatch.setattr("avatarify_app.engines.fomm.find_checkpoint", lambda directory=None: None)
    remove = REGISTRY.register(make_spec(available=True))
    try:
        # Registered after the built-in ones: the landmark engine (always there) comes first.
        assert REGISTRY.choose(EngineConfig()).name == "landmarks"
    finally:
        remove()


def test_animate_bench_and_live_run_it(tint, tmp_path, capsys):
    out = tmp_path / "tinted.mp4"
    assert main(["animate", "--engine", "tint", "--strength", "1.0", "--source", str(AVATAR),
                 "--driving", str(DEMO), "--output", str(out), "--no-crop"]) == 0
    cap = cv2.VideoCapture(str(out))
    ok, first = cap.read()
    cap.release()
    assert ok and first.shape[:2] == (128, 128)  # --no-crop: the engine's own output size
    assert first.reshape(-1, 3).std(0).max() < 8  # strength 1: flat driving colour, not the portrait
    capsys.readouterr()

    assert main(["bench", "--engine", "tint", "--frames", "3", "--warmup", "1", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["engine"] == "tint" and summary["frames"] == 3 and "tint" in summary["stages_ms"]

    rec = tmp_path / "live.mp4"
    assert main(["live", "--headless", "--engine", "tint", "--camera", str(DEMO), "--avatar", str(AVATAR),
                 "--frames", "8", "--record", str(rec), "--no-vcam", "--stats-every", "0", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["engine"] == "tint" and summary["frames"] >= 8 and rec.is_file()
