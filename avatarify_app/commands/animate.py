"""`animate`: animate a portrait with a driving video, offline, into a video file.

What ``--output`` contains:
- by default the whole source portrait, with the animated 256 face crop pasted back
  (``tracking.paste_back``) at the place ``tracking.align_portrait`` cut it from;
- with ``--no-crop`` the inputs are taken as already aligned square crops (resized to 256
  when they are not) and the output is the 256x256 animated crop.
Frames: one per driving frame, at the driving video's frame rate; driving frames where no
face is found repeat the last animated frame (the source before the first face). The
driving video's first audio stream is copied (re-encoded to AAC) when there is one.

Scene cuts: the driving video is split into continuous shots (``CutDetector``); each shot
is tracked afresh and animated relative to its own reference frame (its first frame with a
face), so the avatar starts each shot from its own pose and motion never jumps across a cut.

``--find-best-frame`` (as the FOMM authors' demo): in each shot, the driving frame whose
landmarks best match the source (``tracking.pose_match``) becomes the reference; the shot
is animated forward from it to its end and backward from it to its start, then joined.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from avatarify_app.config import EngineConfig, MotionOptions
from avatarify_app.errors import AvatarifyError, NoFaceError, SinkError, SourceError
from avatarify_app.frames import as_frame, load_image, resize

log = logging.getLogger(__name__)

CROP = 256
CUT_THRESHOLD = 12.0  # mean abs difference (0-255) of 64x48 thumbnails that marks a scene cut


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    """--engine, --checkpoint, --model-config, --device: which engine runs, on what (animate, evaluate)."""
    p.add_argument("--engine", choices=("auto", "fomm", "landmarks"), default="auto")
    p.add_argument("--checkpoint", help="FOMM checkpoint (default: the first found in checkpoints/)")
    p.add_argument("--model-config", help="the authors' YAML for a checkpoint that is not vox-256 "
                   "(default: a YAML beside the checkpoint with its name, else vox-256)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", required=True, help="portrait image (the avatar)")
    p.add_argument("--driving", required=True, help="driving video (a face that moves and talks)")
    p.add_argument("--output", required=True, help="output video (.mp4)")
    add_engine_arguments(p)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--relative", dest="relative", action="store_true", default=True,
                      help="transfer motion relative to the first (or best) driving frame (default)")
    mode.add_argument("--absolute", dest="relative", action="store_false",
                      help="use the driving face's keypoints as they are")
    p.add_argument("--adapt-scale", action="store_true",
                   help="scale the motion by the ratio of source and driving face sizes")
    p.add_argument("--find-best-frame", action="store_true",
                   help="start from the driving frame that best matches the source's pose and expression")
    p.add_argument("--no-crop", action="store_true",
                   help="source and driving are already aligned face crops; output the 256 crop")


# --- video files (imageio-ffmpeg: no cv2.VideoCapture outside the pipeline) ----------------

def probe_video(path: str | Path) -> dict:
    """ffmpeg's metadata of a video file (fps, size, audio_codec, duration, ...)."""
    import imageio_ffmpeg

    p = Path(path)
    if not p.is_file():
        raise SourceError(f"Video not found: {p}", "Check the path to the driving video.")
    try:
        gen = imageio_ffmpeg.read_frames(str(p))
        meta = next(gen)
        gen.close()
    except (OSError, RuntimeError, StopIteration) as err:
        raise SourceError(f"Cannot read {p.name} as a video: {err}", "Use an .mp4/.avi/.mov file.") from err
    return meta


def iter_video(path: str | Path) -> Iterator[np.ndarray]:
    """The frames of a video file, one by one."""
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(path))
    meta = next(gen)
    w, h = meta["size"]
    try:
        for buf in gen:
            yield np.frombuffer(buf, np.uint8).reshape(h, w, 3).copy()
    finally:
        gen.close()


def read_video(path: str | Path) -> tuple[Iterator[np.ndarray], dict]:
    """(frame iterator, metadata) of a video file; raises SourceError when unreadable."""
    meta = probe_video(path)
    return iter_video(path), meta


class VideoWriter:
    """H.264 (or the first available encoder) writer; copies ``audio_from``'s audio when it has one."""

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int],
                 audio_from: str | Path | None = None) -> None:
        import imageio_ffmpeg

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        w, h = size
        self.size = (w - w % 2, h - h % 2)  # yuv420p wants even sides
        audio = None
        if audio_from is not None and probe_video(audio_from).get("audio_codec"):
            audio = str(audio_from)
        self.has_audio = audio is not None
        self._gen = imageio_ffmpeg.write_frames(
            str(self.path), self.size, fps=fps, quality=8, macro_block_size=2,
            audio_path=audio, audio_codec="aac" if audio else None,
            ffmpeg_log_level="fatal",
        )
        self._gen.send(None)
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        w, h = self.size
        try:
            self._gen.send(np.ascontiguousarray(frame[:h, :w]))
        except (OSError, RuntimeError, BrokenPipeError) as err:
            raise SinkError(f"Writing {self.path.name} failed: {err}", "Check the disk space and the path.") from err
        self.frames += 1

    def close(self) -> None:
        self._gen.close()


# --- animation -------------------------------------------------------------------------------

def _tqdm(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="frame", file=sys.stderr, leave=False)


class CutDetector:
    """Scene cuts in a stream of frames: consecutive 64x48 thumbnails that differ by more than
    ``threshold`` (mean absolute difference, 0-255)."""

    def __init__(self, threshold: float = CUT_THRESHOLD) -> None:
        self.threshold = threshold
        self._prev: np.ndarray | None = None

    def is_cut(self, frame: np.ndarray) -> bool:
        """True when ``frame`` starts a new shot (never for the first frame)."""
        import cv2

        thumb = cv2.resize(frame, (64, 48), interpolation=cv2.INTER_AREA).astype(np.float32)
        prev, self._prev = self._prev, thumb
        return prev is not None and float(np.abs(thumb - prev).mean()) > self.threshold


def track_video(path: str | Path, no_crop: bool, desc: str = "tracking") -> tuple[list, dict, list[range]]:
    """(per driving frame (crop 256, landmarks or None) or None where no face was found,
    metadata, the continuous shots as index ranges). The tracker starts afresh at each cut."""
    frames, meta = read_video(path)
    fps = float(meta.get("fps") or 25.0)
    n = round(float(meta.get("duration") or 0) * fps) or None
    out: list[tuple[np.ndarray, np.ndarray | None] | None] = []
    starts: list[int] = []
    cuts = CutDetector()
    tracker = None
    if not no_crop:
        from avatarify_app.tracking import StreamTracker

        tracker = StreamTracker()
    try:
        with _tqdm(n or 0, "reading" if no_crop else desc) as bar:
            for i, f in enumerate(frames):
                if cuts.is_cut(f) or i == 0:
                    starts.append(i)
                    if tracker is not None and i > 0:
                        tracker.reset()
                if tracker is None:
                    out.append((resize(f, (CROP, CROP)), None))
                else:
                    r = tracker.process(f, i / fps)
                    out.append(None if r is None else (r.crop, r.landmarks))
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
    from avatarify_app.tracking import pose_match

    if source_landmarks is None:
        source_landmarks = _find_landmarks(source_crop)
    best, best_score = None, -1.0
    for i in range(len(driving)) if indices is None else indices:
        item = driving[i]
        if item is None:
            continue
        lms = item[1] if item[1] is not None else _find_landmarks(item[0])
        if lms is None:
            continue
        score = pose_match(source_landmarks, lms)
        if score > best_score:
            best, best_score = i, score
    log.info("best driving frame %s (pose match %.3f)", best, best_score)
    return best


def _find_landmarks(crop: np.ndarray) -> np.ndarray | None:
    from avatarify_app.engines.metrics import MeshProbe

    probe = MeshProbe()
    try:
        return probe.landmarks(crop)
    finally:
        probe.close()


def _first_face(driving: list, indices: Iterable[int]) -> int | None:
    return next((i for i in indices if driving[i] is not None), None)


def animate_crops(engine, source: np.ndarray, driving: list, shots: list[range],
                  references: list[int | None], bar=None) -> list[np.ndarray]:
    """Animated 256 crops, one per driving item. Each shot is animated relative to its own
    reference frame (motion never carries over a cut), forward from it to the shot's end and
    backward to its start; frames without a face repeat their neighbour in that order, a shot
    without a face shows the source."""
    out: list[np.ndarray] = [source] * len(driving)

    def run(indices: Iterable[int], last: np.ndarray) -> None:
        for i in indices:
            item = driving[i]
            if item is not None:
                try:
                    last = engine.predict(item[0], item[1])
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
            engine.set_reference(driving[ref][0], driving[ref][1])
            if forward:
                run(range(ref, shot.stop), source)
            else:  # backward: frames without a face repeat what follows them in time
                run(range(ref - 1, shot.start - 1, -1), out[ref])
    return out


def run(args: argparse.Namespace) -> int:
    from avatarify_app.engines import create_engine

    options = MotionOptions(relative=args.relative, adapt_scale=args.adapt_scale)
    config = EngineConfig(name=args.engine, checkpoint=args.checkpoint, model_config=getattr(args, "model_config", None), device=getattr(args, "device", "auto"))
    image = load_image(args.source)
    if args.no_crop:
        src_crop, src_lms, aligned = as_frame(resize(image, (CROP, CROP))), None, None
    else:
        from avatarify_app.tracking import align_portrait

        aligned = align_portrait(image)
        src_crop, src_lms = aligned.image, aligned.landmarks
    driving, meta, shots = track_video(args.driving, args.no_crop)
    if not driving:
        raise SourceError(f"{args.driving} has no frames.", "Use a video with at least one frame.")
    if args.find_best_frame:
        refs = [best_frame(src_lms, src_crop, driving, shot) for shot in shots]
    else:
        refs = [_first_face(driving, shot) for shot in shots]
    if all(r is None for r in refs):
        raise NoFaceError(f"No face was found in any frame of {args.driving}.",
                          "Use a driving video where a face is clearly visible.")
    engine = create_engine(config, options)
    try:
        engine.set_source(src_crop, src_lms)
        with _tqdm(len(driving), f"animating ({engine.name})") as bar:
            crops = animate_crops(engine, src_crop, driving, shots, refs, bar)
    finally:
        engine.close()
    fps = float(meta.get("fps") or 25.0)
    if aligned is None:
        size = (CROP, CROP)
    else:
        size = (image.shape[1], image.shape[0])
    writer = VideoWriter(args.output, fps, size, audio_from=args.driving)
    try:
        with _tqdm(len(crops), "writing") as bar:
            for crop in crops:
                if aligned is not None:
                    from avatarify_app.tracking import paste_back

                    frame = paste_back(image, crop, aligned.box)
                else:
                    frame = crop
                writer.write(frame)
                bar.update(1)
    except AvatarifyError:
        writer.close()
        raise
    writer.close()
    audio = "with the driving video's audio" if writer.has_audio else "no audio"
    ref_text = ", ".join(str(r) for r in refs if r is not None)
    print(f"wrote {writer.path} ({writer.frames} frames, {size[0]}x{size[1]}, {fps:.2f} fps, {audio}; "
          f"engine {engine.name}, {len(shots)} shot(s), reference frame(s) {ref_text})")
    return 0
