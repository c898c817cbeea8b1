"""Offline animation: a portrait driven by a whole video (what ``animate`` runs).

The driving video is split into continuous shots (``cuts.label_cuts``; ``cuts="off"`` keeps it
whole); each shot is tracked afresh and animated relative to its own reference frame (its first frame with a face, or the
best pose match), so the avatar starts each shot from its own pose and motion never jumps
across a cut. With a reference inside a shot, the shot is animated forward from it to its
end and backward from it to its start, then joined.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatarify_app.config import EngineConfig, MotionOptions
from avatarify_app.errors import NoFaceError, SourceError
from avatarify_app.frames import as_frame, read_image, resize
from avatarify_app.offline.cuts import check_mode, label_cuts
from avatarify_app.offline.metrics import CROP
from avatarify_app.pipeline.video import VideoWriter, read_video
from avatarify_app.tracking import paste_back
from avatarify_app.tracking.crop import recrop, sharp_face, to_size

log = logging.getLogger(__name__)



def progress(total: int, desc: str):
    """A progress bar on stderr (tqdm), cleared when done."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="frame", file=sys.stderr, leave=False)


def track_video(path: str | Path, no_crop: bool, desc: str = "tracking", cuts: str = "auto",
                size: int = CROP) -> tuple[list, dict, list[range]]:
    """(per driving frame (crop of ``size`` px, landmarks or None) or None where no face was found,
    metadata, the continuous shots as index ranges). The tracker starts afresh at each cut
    (``cuts`` "auto": found by ``offline.cuts``; "off": the video is one shot)."""
    frames, meta = read_video(path)
    fps = float(meta.get("fps") or 25.0)
    n = round(float(meta.get("duration") or 0) * fps) or None
    out: list[tuple[np.ndarray, np.ndarray | None] | None] = []
    starts: list[int] = []
    tracker = None
    if not no_crop:
        from avatarify_app.tracking import StreamTracker

        tracker = StreamTracker()
    try:
        with progress(n or 0, "reading" if no_crop else desc) as bar:
            for i, f, starts_shot in label_cuts(frames, fps, cuts):
                if starts_shot:
                    starts.append(i)
                    if tracker is not None and i > 0:
                        tracker.reset()
                if tracker is None:
                    out.append((resize(f, (size, size)), None))
                else:
                    r = tracker.process(f, i / fps)
                    out.append(None if r is None else recrop(f, r.box, r.crop, r.landmarks, size))
                bar.update(1)
    finally:
        if tracker is not None:
            tracker.close()
    shots = [range(a, b) for a, b in zip(starts, [*starts[1:], len(out)], strict=True)]
    return out, meta, shots


def best_frame(source_landmarks: np.ndarray | None, source_crop: np.ndarray, driving: list,
               indices: Iterable[int] | None = None) -> int | None:
    """Index of the driving frame (of ``indices``, default all) whose landmarks best match the
    source's (pose and expression); None when none of them shows a face."""
    from avatarify_app.tracking import FaceMesh, pose_match

    mesh: FaceMesh | None = None
    try:
        if source_landmarks is None or any(d is not None and d[1] is None for d in driving):
            mesh = FaceMesh(static=True)
        if source_landmarks is None:
            source_landmarks = mesh.landmarks(source_crop)
        if source_landmarks is None:
            return None
        best, best_score = None, -1.0
        for i in range(len(driving)) if indices is None else indices:
            item = driving[i]
            if item is None:
                continue
            lms = item[1] if item[1] is not None else mesh.landmarks(item[0])
            if lms is None:
                continue
            score = pose_match(source_landmarks, lms)
            if score > best_score:
                best, best_score = i, score
    finally:
        if mesh is not None:
            mesh.close()
    log.info("best driving frame %s (pose match %.3f)", best, best_score)
    return best


def first_face(driving: list, indices: Iterable[int]) -> int | None:
    """The first index of ``indices`` whose driving item shows a face, or None."""
    return next((i for i in indices if driving[i] is not None), None)


def animate_crops(engine, source: np.ndarray, driving: list, shots: list[range],
                  references: list[int | None], bar=None) -> list[np.ndarray]:
    """Animated 256 crops, one per driving item. Each shot is animated relative to its own
    reference frame (motion never carries over a cut), forward from it to the shot's end and
    backward to its start; frames without a face repeat their neighbour in that order, a shot
    without a face shows the source."""
    size = int(engine.size)
    out_size = int(getattr(engine, "output_size", size))
    source = to_size(source, None, out_size)[0]
    out: list[np.ndarray] = [source] * len(driving)

    def run(indices: Iterable[int], last: np.ndarray) -> None:
        for i in indices:
            item = driving[i]
            if item is not None:
                try:
                    last = engine.predict(*to_size(item[0], item[1], size))
                except NoFaceError:
                    pass
            out[i] = last
            if bar is not None:
                bar.update(1)

    for shot, ref in zip(shots, references, strict=True):
        if ref is None:
            if bar is not None:
                bar.update(len(shot))
            continue
        for forward in (True, False):
            engine.set_reference(None)
            engine.set_reference(*to_size(driving[ref][0], driving[ref][1], size))
            if forward:
                run(range(ref, shot.stop), source)
            else:  # backward: frames without a face repeat what follows them in time
                run(range(ref - 1, shot.start - 1, -1), out[ref])
    return out


@dataclass(frozen=True)
class AnimationResult:
    path: Path
    frames: int
    size: tuple[int, int]
    fps: float
    has_audio: bool
    engine: str
    shots: int
    references: tuple[int, ...]
    notes: tuple[str, ...] = ()  # about the portrait (tracking.AlignedFace.notes)


def animate_video(source: str | Path, driving: str | Path, output: str | Path, config: EngineConfig,
                  motion: MotionOptions, *, no_crop: bool = False, find_best_frame: bool = False,
                  cuts: str = "auto", create_engine=None) -> AnimationResult:
    """Animate the portrait ``source`` with the video ``driving`` into ``output`` (MP4).

    By default the output is the whole portrait with the animated 256 face crop pasted back
    (``tracking.paste_back``) where ``tracking.align_portrait`` cut it; with ``no_crop`` the
    inputs are taken as aligned square crops and the output is the 256 crop. One frame per
    driving frame at the driving video's rate; frames without a face repeat the last animated
    one; the driving video's audio is kept. ``cuts``: "auto" animates each shot from its own
    reference (see the module docstring), "off" takes the whole video as one shot.
    """
    from avatarify_app.engines import create_engine as default_create

    check_mode(cuts)
    create_engine = create_engine or default_create
    loaded = read_image(source)
    image, notes = loaded.frame, loaded.notes
    # The engine (and its checkpoint) first: a bad checkpoint fails before the video is tracked.
    engine = create_engine(config, motion)
    try:
        if no_crop:
            src_crop, src_lms, aligned = as_frame(resize(image, (engine.size, engine.size))), None, None
        else:
            from avatarify_app.tracking import align_portrait

            aligned = align_portrait(image)
            src_crop, src_lms = sharp_face(image, aligned)
            notes = (*notes, *aligned.notes)
        engine.set_source(*to_size(src_crop, src_lms, engine.size))
        driving_items, meta, shots = track_video(driving, no_crop, cuts=cuts, size=max(CROP, int(engine.size)))
        if not driving_items:
            raise SourceError(f"{driving} has no frames.", "Use a video with at least one frame.")
        if find_best_frame:
            refs = [best_frame(src_lms, src_crop, driving_items, shot) for shot in shots]
        else:
            refs = [first_face(driving_items, shot) for shot in shots]
        if all(r is None for r in refs):
            raise NoFaceError(f"No face was found in any frame of {driving}.",
                              "Use a driving video where a face is clearly visible.")
        with progress(len(driving_items), f"animating ({engine.name})") as bar:
            crops = animate_crops(engine, src_crop, driving_items, shots, refs, bar)
    finally:
        engine.close()
    fps = float(meta.get("fps") or 25.0)
    side = crops[0].shape[0]
    size = (side, side) if aligned is None else (image.shape[1], image.shape[0])
    with VideoWriter(output, fps, size, audio_from=driving) as writer, progress(len(crops), "writing") as bar:
        for crop in crops:
            writer.write(crop if aligned is None else paste_back(image, crop, aligned.box))
            bar.update(1)
    return AnimationResult(writer.path, writer.frames, writer.size, fps, writer.has_audio, engine.name,
                           len(shots), tuple(r for r in refs if r is not None), notes)
