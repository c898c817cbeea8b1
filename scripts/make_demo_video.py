"""Build assets/demo/driving.mp4: the driving clip the app uses when there is no camera.

    .venv/bin/python scripts/make_demo_video.py

It is made here, from a public-domain picture that scikit-image ships (Eileen Collins,
NASA), by moving the whole photo with a smooth head-like motion: turns (in-plane
rotation up to 10 degrees), nods (vertical shifts), sways and a slow zoom. Nothing is
downloaded. The clip is 640x480 at 25 fps, 12 seconds, H.264 when the bundled ffmpeg
has it (mp4v otherwise).
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "assets" / "demo" / "driving.mp4"
FPS = 25
SECONDS = 12
SIZE = (640, 480)


def head_motion(t: float) -> tuple[float, float, float, float]:
    """Angle (deg), dx, dy (px) and scale at time t (s): sums of slow sines, smooth everywhere."""
    angle = 9.0 * np.sin(2 * np.pi * t / 4.0) + 2.0 * np.sin(2 * np.pi * t / 1.7)
    dx = 22.0 * np.sin(2 * np.pi * t / 5.0 + 0.5)
    dy = 10.0 * np.sin(2 * np.pi * t / 2.2) + 4.0 * np.sin(2 * np.pi * t / 0.9)
    scale = 1.0 + 0.06 * np.sin(2 * np.pi * t / 6.0)
    return float(angle), float(dx), float(dy), float(scale)


def main() -> int:
    import imageio_ffmpeg
    from skimage import data

    photo = np.ascontiguousarray(data.astronaut())  # 512x512 RGB
    # Place the photo on a 640x480 canvas, face near the centre.
    canvas_w, canvas_h = SIZE
    scale0 = 1.05
    face = (224.0, 140.0)  # face centre in the photo (from assets/avatars/astronaut.json)
    writer = imageio_ffmpeg.write_frames(
        str(OUT), SIZE, fps=FPS, codec="libx264", pix_fmt_out="yuv420p", quality=5,
        macro_block_size=16, ffmpeg_log_level="error",
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    writer.send(None)
    for i in range(FPS * SECONDS):
        angle, dx, dy, s = head_motion(i / FPS)
        m = cv2.getRotationMatrix2D(face, angle, scale0 * s)
        m[0, 2] += canvas_w / 2 - face[0] + dx
        m[1, 2] += canvas_h * 0.42 - face[1] + dy
        frame = cv2.warpAffine(photo, m, SIZE, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
