"""Scene cuts in a stream of frames: where a driving video jumps to another shot.

The detector is PySceneDetect's ``AdaptiveDetector`` (package ``scenedetect``), fed with the
frames we decode anyway (``pipeline.video.iter_video``), so no video is read twice. It scores
each frame by how much its brightness changed from the previous frame (``ContentDetector``'s
score, luma only, on a copy ``WIDTH`` px wide) and calls a cut where that score is both large
(``MIN_CONTENT``) and several times (``ADAPTIVE_THRESHOLD``) the average score of the
``WINDOW`` frames before and after it. Fast head motion changes every frame a lot, so no
single frame stands out and it is not a cut; a cut is one frame unlike its neighbours.

Settings (measured with scripts/cut_counts.py on smooth and talking clips without cuts and
on clips concatenated from different and from similar-looking shots): luma only, because
hue and saturation do not change in black-and-white footage and would dilute its score
by three; small frames, because whole-frame motion blurs away at 64 px while another
shot does not; a ratio of 2 (PySceneDetect's default is 3), because a cut between two
similar shots in the middle of fast motion stands out by less than 3 (2.7 on our clips,
while no frame without a cut reached 1.5 at a score over 15).

Because it compares a frame with the frames after it, a cut is known ``WINDOW`` frames
late: ``label_cuts`` holds that many frames back and yields each one with its answer.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Iterator

import numpy as np

from avatarify_app.errors import ConfigError

log = logging.getLogger(__name__)

CUT_MODES = ("auto", "off")
# AdaptiveDetector's settings (see the module docstring for the ones that are not its defaults).
ADAPTIVE_THRESHOLD = 2.2  # a cut's score is at least this many times its neighbours' average
MIN_CONTENT = 16.0  # ... and at least this large (mean change of brightness, 0-255)
WINDOW = 2  # frames on each side of a frame that it is compared with
# The shortest shot in frames (PySceneDetect's default is 15): a cut 2 frames into a video
# (a black lead-in) or a few frames after another cut is still one.
MIN_SHOT_FRAMES = 2
WIDTH = 32  # frames are scaled down to this width first


def check_mode(mode: str) -> str:
    if mode not in CUT_MODES:
        raise ConfigError(f"Unknown --cuts mode {mode!r}.", "Use --cuts auto (find scene cuts) or --cuts off.")
    return mode


class CutDetector:
    """Scene cuts of a stream of frames (uint8 HxWx3 RGB), pushed one at a time.

    ``push(frame)`` returns the indices (0-based, in push order) of the cuts that this frame
    confirmed: always of the frame ``delay`` frames back, so each frame's answer is known once
    ``delay`` more frames were pushed (or none will come). Index 0 is never a cut.
    """

    def __init__(self, fps: float = 25.0, *, adaptive_threshold: float = ADAPTIVE_THRESHOLD,
                 min_content: float = MIN_CONTENT, window: int = WINDOW,
                 min_shot_frames: int = MIN_SHOT_FRAMES) -> None:
        from scenedetect import AdaptiveDetector

        self.fps = float(fps) if fps and fps > 0 else 25.0
        self.delay = int(window)
        self._detector = AdaptiveDetector(adaptive_threshold=adaptive_threshold, min_scene_len=min_shot_frames,
                                          window_width=window, min_content_val=min_content, luma_only=True)
        self._n = 0

    def push(self, frame: np.ndarray) -> list[int]:
        import cv2
        from scenedetect import FrameTimecode

        h, w = frame.shape[:2]
        if w > WIDTH:
            frame = cv2.resize(frame, (WIDTH, max(1, round(h * WIDTH / w))), interpolation=cv2.INTER_AREA)
        bgr = np.ascontiguousarray(frame[:, :, ::-1])  # the detector converts BGR to HSV
        cuts = self._detector.process_frame(FrameTimecode(self._n, self.fps), bgr)
        self._n += 1
        return [c.frame_num for c in cuts if c.frame_num > 0]


def label_cuts(frames: Iterable[np.ndarray], fps: float = 25.0, mode: str = "auto"
               ) -> Iterator[tuple[int, np.ndarray, bool]]:
    """(index, frame, True when the frame starts a shot) for every frame of ``frames``; the
    first frame starts one. With ``mode`` "off" no other frame does. Frames come out
    ``CutDetector.delay`` frames after they went in (the last ones once ``frames`` ends)."""
    if check_mode(mode) == "off":
        for i, frame in enumerate(frames):
            yield i, frame, i == 0
        return
    detector = CutDetector(fps)
    held: deque[tuple[int, np.ndarray]] = deque()
    cuts: set[int] = set()
    for i, frame in enumerate(frames):
        held.append((i, frame))
        cuts.update(detector.push(frame))
        while len(held) > detector.delay:
            j, f = held.popleft()
            yield j, f, j == 0 or j in cuts
    while held:
        j, f = held.popleft()
        yield j, f, j == 0 or j in cuts
    if cuts:
        log.info("scene cuts at frames %s", sorted(cuts))
