"""Reconstruction: the FOMM paper's reconstruction protocol on one video (Sec. 4.1).

The video is cut into continuous shots at scene changes. In each shot the first frame is
the source and the reference, and every frame of the shot is reconstructed from it with
the driving motion of the real frame; the generated frames are compared with the real ones:
L1, AKD and MKR (see ``offline.metrics``; AED is not computed).

Crops: like the paper's VoxCeleb test clips, each shot is cut with ONE fixed square box
(the union of the stream tracker's per-frame boxes over the shot), so the camera frame
stays put and only the head moves, as it does for a live avatar. ``--moving-crop`` uses
the tracker's per-frame (smoothed) boxes instead; ``--no-crop`` takes the frames as they
are (already aligned face crops, resized to 256).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from avatarify_app.errors import NoFaceError
from avatarify_app.frames import resize
from avatarify_app.offline.cuts import CutDetector
from avatarify_app.offline.metrics import ReconstructionScore
from avatarify_app.pipeline.video import iter_video, probe_video

log = logging.getLogger(__name__)

CROP = 256
MIN_SHOT = 2


def _frames(path: str | Path, max_frames: int):
    yield from enumerate(iter_video(path, max_frames=max_frames))


def split_shots(path: str | Path, max_frames: int = 0) -> list[list[int]]:
    """Frame indices of each continuous shot (cut where consecutive thumbnails differ a lot)."""
    shots: list[list[int]] = [[]]
    cuts = CutDetector()
    for i, f in _frames(path, max_frames):
        if cuts.is_cut(f):
            shots.append([])
        shots[-1].append(i)
    return [s for s in shots if s]


def load_shots(path: str | Path, no_crop: bool = False, moving_crop: bool = False,
               max_frames: int = 0) -> list[list[tuple[np.ndarray, np.ndarray | None]]]:
    """Per shot, (256 crop, landmarks in crop px or None) of the frames where a face was found."""
    meta = probe_video(path)
    fps = float(meta.get("fps") or 25.0)
    if no_crop:
        shots = split_shots(path, max_frames)
        frames = {i: resize(f, (CROP, CROP)) for i, f in _frames(path, max_frames)}
        return [[(frames[i], None) for i in s] for s in shots if len(s) >= MIN_SHOT]
    from avatarify_app.tracking import CropBox, StreamTracker

    shots = split_shots(path, max_frames)
    shot_of = {i: n for n, s in enumerate(shots) for i in s}
    tracked: dict[int, tuple[CropBox, np.ndarray]] = {}
    result: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    tracker, current = StreamTracker(), 0
    try:
        for i, f in _frames(path, max_frames):
            if shot_of[i] != current:  # nothing carries over a cut
                tracker.reset()
                current = shot_of[i]
            r = tracker.process(f, i / fps)
            if r is None:
                continue
            tracked[i] = (r.box, r.face.landmarks)
            if moving_crop:
                result[i] = (r.crop, r.landmarks)
    finally:
        tracker.close()
    if not moving_crop:
        boxes: dict[int, CropBox] = {}
        for n, s in enumerate(shots):
            seen = [tracked[i][0].as_xyxy() for i in s if i in tracked]
            if not seen:
                continue
            xy = np.array(seen)
            x0, y0 = xy[:, :2].min(0)
            x1, y1 = xy[:, 2:].max(0)
            boxes[n] = CropBox(float(x0 + x1) / 2, float(y0 + y1) / 2, float(max(x1 - x0, y1 - y0)))
        for i, f in _frames(path, max_frames):
            if i in tracked:
                box = boxes[shot_of[i]]
                result[i] = (box.extract(f, CROP), box.to_crop(tracked[i][1], CROP).astype(np.float32))
    out = [[result[i] for i in s if i in result] for s in shots]
    return [s for s in out if len(s) >= MIN_SHOT]


def reconstruct(engine, shots, probe=None, progress=None):
    """Run the protocol; returns a metrics.ReconstructionScore."""
    score = ReconstructionScore(size=CROP)
    for shot in shots:
        src, src_lms = shot[0]
        engine.set_source(src, src_lms)
        engine.set_reference(None)
        engine.set_reference(src, src_lms)
        for crop, lms in shot:
            try:
                out = engine.predict(crop, lms)
            except NoFaceError:
                out = src
            score.add(out, crop, probe)
            if progress is not None:
                progress.update(1)
    return score
