"""Reconstruction: the FOMM paper's reconstruction protocol on one video (Sec. 4.1).

The video is cut into continuous shots at scene changes (``offline.cuts``; ``cuts="off"``
takes it as one shot). In each shot the first frame is the source and the reference, and
every frame of the shot is reconstructed from it with the driving motion of the real
frame; the generated frames are compared with the real ones: L1, AKD and MKR (see
``offline.metrics``; AED is not computed).

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
from avatarify_app.offline.cuts import label_cuts
from avatarify_app.offline.metrics import CROP, ReconstructionScore
from avatarify_app.pipeline.video import iter_video, probe_video

log = logging.getLogger(__name__)

MIN_SHOT = 2


def _frames(path: str | Path, max_frames: int):
    yield from enumerate(iter_video(path, max_frames=max_frames))


def _labelled(path: str | Path, max_frames: int, cuts: str, fps: float):
    """(index, frame, starts a shot) of the video, read once (see ``offline.cuts``)."""
    return label_cuts(iter_video(path, max_frames=max_frames), fps, cuts)


def _fps(path: str | Path) -> float:
    return float(probe_video(path).get("fps") or 25.0)


def split_shots(path: str | Path, max_frames: int = 0, cuts: str = "auto") -> list[list[int]]:
    """Frame indices of each continuous shot (``cuts`` "auto": cut at scene changes found by
    ``offline.cuts``; "off": the whole video is one shot)."""
    shots: list[list[int]] = []
    for i, _f, starts in _labelled(path, max_frames, cuts, _fps(path)):
        if starts:
            shots.append([])
        shots[-1].append(i)
    return shots


def load_shots(path: str | Path, no_crop: bool = False, moving_crop: bool = False,
               max_frames: int = 0, cuts: str = "auto") -> list[list[tuple[np.ndarray, np.ndarray | None]]]:
    """Per shot, (256 crop, landmarks in crop px or None) of the frames where a face was found.

    The video is read once for the shots and the tracking (``no_crop`` and ``moving_crop``: the
    crops come out of that pass), and once more to cut the fixed crop of each shot, whose box
    is known only once the shot was tracked to its end."""
    fps = _fps(path)
    if no_crop:
        shots: list[list[tuple[np.ndarray, np.ndarray | None]]] = []
        for _i, f, starts in _labelled(path, max_frames, cuts, fps):
            if starts:
                shots.append([])
            shots[-1].append((resize(f, (CROP, CROP)), None))
        return [s for s in shots if len(s) >= MIN_SHOT]
    from avatarify_app.tracking import CropBox, StreamTracker

    shot_frames: list[list[int]] = []
    tracked: dict[int, tuple[CropBox, np.ndarray]] = {}
    result: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    tracker = StreamTracker()
    try:
        for i, f, starts in _labelled(path, max_frames, cuts, fps):
            if starts:
                if shot_frames:  # nothing carries over a cut
                    tracker.reset()
                shot_frames.append([])
            shot_frames[-1].append(i)
            r = tracker.process(f, i / fps)
            if r is None:
                continue
            tracked[i] = (r.box, r.face.landmarks)
            if moving_crop:
                result[i] = (r.crop, r.landmarks)
    finally:
        tracker.close()
    if not moving_crop:
        shot_of = {i: n for n, s in enumerate(shot_frames) for i in s}
        boxes: dict[int, CropBox] = {}
        for n, s in enumerate(shot_frames):
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
    out = [[result[i] for i in s if i in result] for s in shot_frames]
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
            if out.shape != crop.shape:  # an engine whose output_size is not its input's
                out = resize(out, (crop.shape[1], crop.shape[0]))
            score.add(out, crop, probe)
            if progress is not None:
                progress.update(1)
    return score
