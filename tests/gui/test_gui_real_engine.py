"""The window over the real pipeline (mediapipe tracker, built-in landmarks engine)."""

from __future__ import annotations

import numpy as np
import pytest

from avatarify_app import paths


@pytest.mark.slow  # ~15 s on 2 cores (mediapipe + landmark engine start-up)
def test_real_pipeline_animates_and_gui_stays_responsive(qtbot, media_dir):
    from gui_timing import timer_delays

    from avatarify_app.config import EngineConfig
    from avatarify_app.gui.main_window import MainWindow
    from avatarify_app.gui.settings import AppSettings

    avatar = next(iter(sorted(paths.AVATARS_DIR.glob("*.png"))), None)
    window = MainWindow(AppSettings(), camera=str(media_dir / "Megamind.avi"),
                        avatar=str(avatar) if avatar else None, engine_config=EngineConfig(name="landmarks"),
                        virtual_camera=False, scan_cameras=False)
    qtbot.addWidget(window)
    window.show()
    window.start()
    try:
        qtbot.waitUntil(lambda: window.live_view.last_event is not None and window.live_view.last_event.status == "ok",
                        timeout=30000)
        window.calibration_panel.landmarks_check.setChecked(True)
        painted = window.live_view.avatar_view.frames_painted
        delays = timer_delays(qtbot, lambda: True, 3000)
        frames = window.live_view.avatar_view.frames_painted - painted
        p95 = float(np.percentile(delays, 95))
        print(f"real engine: event-loop delay p50 {np.percentile(delays, 50):.1f} ms, p95 {p95:.1f} ms, "
              f"max {max(delays):.1f} ms; {frames} frames painted in 3 s; {window.status.fps_label.text()}, "
              f"{window.status.latency_label.text()}")
        assert frames >= 5
        assert p95 < 100
        assert "landmarks" in window.status.engine_label.text()
        assert window.errors_shown == []
    finally:
        window.close()
