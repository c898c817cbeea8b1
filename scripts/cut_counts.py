"""Scene cuts found by ``offline.cuts`` on clips with a known answer (prints counts).

    .venv/bin/python scripts/cut_counts.py [--write DIR] [--skip-megamind]

Clips, made here from real portraits (../shared/media/{einstein,mona}.jpg when present and
assets/avatars/*.png) moved by whole-frame affine warps (rotation, zoom, shift):

- smooth: the 256 face crop turned, nodded and zoomed smoothly (12 degrees, +-8 %, 10 px)
  in 40 and 100 frames, and twice as far in 40 frames (the motion that used to be cut into
  many "shots");
- talking: the whole portrait in a 640x480 frame, and its 256 face crop, with a speaker's
  motion: slow sway plus quick turns and nods (up to 20 degrees in a third of a second),
  zoom bursts and a hand-held camera's shake, 150 frames at 25 fps; and the demo clip
  assets/demo/driving.mp4;
- jitter (a stress case, reported apart): the talking crops with a new random 1 px offset
  every frame instead of a camera's shake; a one-frame jolt of a high-contrast picture can
  look like a cut between two similar shots, and a few do;
- Megamind shots: each continuous shot of ../shared/media/Megamind.avi (cuts checked by eye)
  on its own, whole frames and cut to a fixed 256 face crop (real talking);
- concatenated: shots of different portraits one after another, and shots that look alike:
  the same portrait framed wide then close, the same crop before and after a 15 degree jump
  of the head, the same crop when its fast motion starts again (a 14 px jump), the same crop
  then its mirror image;
- Megamind.avi as it is (a black lead-in and four shots).

A clip is right when the cuts found are exactly the true ones (a found cut may be up to one
frame early or late). ``--write DIR`` also saves the clips (MP4) and the 256 crops of the
smooth and Megamind shots that ``evaluate --no-crop`` measures (see scripts/eval_landmarks.py).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from avatarify_app.frames import load_image  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"
MEGAMIND = MEDIA / "Megamind.avi"
DEMO = ROOT / "assets" / "demo" / "driving.mp4"
# Megamind.avi (271 frames): frames 0-1 are black, then shots start at 2, 99, 155 and 201
# (checked by eye on a contact sheet of every frame).
MEGAMIND_CUTS = (2, 99, 155, 201)
FPS = 25.0


# ----------------------------------------------------------------------------- sources
def portraits() -> dict[str, np.ndarray]:
    """Real portraits by name: the shared photos when present, the shipped avatars always."""
    out: dict[str, np.ndarray] = {}
    for name in ("einstein.jpg", "mona.jpg"):
        if (MEDIA / name).is_file():
            out[name] = load_image(MEDIA / name)
    for path in sorted((ROOT / "assets" / "avatars").glob("*.png")):
        out[path.name] = load_image(path)
    return out


def warp(image: np.ndarray, size: tuple[int, int], angle: float, scale: float, dx: float, dy: float,
         centre: tuple[float, float] | None = None) -> np.ndarray:
    """``image`` rotated (degrees), zoomed and shifted about ``centre``, into a ``size`` frame."""
    h, w = image.shape[:2]
    cx, cy = centre if centre is not None else (w / 2, h / 2)
    m = cv2.getRotationMatrix2D((cx, cy), angle, scale)
    m[:, 2] += (size[0] / 2 - cx + dx, size[1] / 2 - cy + dy)
    return cv2.warpAffine(image, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def smooth_motion(n: int, amount: float = 1.0) -> list[tuple[float, float, float, float]]:
    """(angle, scale, dx, dy) per frame: the synthetic head motion of scripts/eval_landmarks.py
    (12 degrees, +-8 % zoom, 10 px shifts; ``amount`` scales all three)."""
    out = []
    for i in range(n):
        t = i / max(n - 1, 1)
        out.append((amount * 12.0 * np.sin(2 * np.pi * t), 1.0 + amount * 0.08 * np.sin(2 * np.pi * 1.5 * t),
                    amount * 10.0 * np.sin(2 * np.pi * 0.75 * t), amount * 10.0 * np.sin(2 * np.pi * 1.25 * t)))
    return out


def shake(n: int, rng: np.random.Generator, jitter: bool) -> np.ndarray:
    """A camera's shake in px per frame: hand-held (noise smoothed over ~3 frames, 1.5 px) or,
    with ``jitter``, a new random offset every frame (1 px): a stress case, not a camera."""
    if jitter:
        return rng.normal(0, 1.0, n)
    noise = np.convolve(rng.normal(0, 1.0, n + 18), np.exp(-0.5 * (np.arange(-9, 10) / 3.0) ** 2), "valid")
    return 1.5 * noise / noise.std()


def talking_motion(n: int, seed: int, jitter: bool = False) -> list[tuple[float, float, float, float]]:
    """(angle, scale, dx, dy) per frame at 25 fps: a slow sway plus quick turns and nods that
    ease in and out over 8 frames, zoom bursts and a camera's shake (see ``shake``)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FPS
    angle = 5.0 * np.sin(2 * np.pi * t / 3.1)
    dx = 14.0 * np.sin(2 * np.pi * t / 4.3 + 1.0)
    dy = 6.0 * np.sin(2 * np.pi * t / 2.3)
    scale = 1.0 + 0.05 * np.sin(2 * np.pi * t / 5.0)
    for start in rng.choice(np.arange(10, n - 10), size=max(1, n // 30), replace=False):
        ease = np.clip((np.arange(n) - start) / 8.0, 0.0, 1.0)
        ease = ease * ease * (3 - 2 * ease)  # smoothstep
        kind = rng.integers(3)
        if kind == 0:
            angle = angle + rng.choice([-1, 1]) * rng.uniform(10, 20) * ease
        elif kind == 1:
            dy = dy + rng.choice([-1, 1]) * rng.uniform(12, 25) * ease
        else:
            scale = scale * (1.0 + rng.choice([-1, 1]) * rng.uniform(0.08, 0.15) * ease)
    dx = dx + shake(n, rng, jitter)
    dy = dy + shake(n, rng, jitter)
    return list(zip(angle, scale, dx, dy, strict=True))


def full_frame(image: np.ndarray, size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """The portrait scaled to fill ``size``'s height, centred (replicated borders at the sides)."""
    h, _w = image.shape[:2]
    s = size[1] / h
    return warp(image, size, 0.0, s, 0.0, 0.0)


def render(base: np.ndarray, size: tuple[int, int], motion) -> list[np.ndarray]:
    return [warp(base, size, a, s, x, y) for a, s, x, y in motion]


def face_crops(images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from avatarify_app.tracking import PortraitAligner

    with PortraitAligner() as aligner:
        return {name: aligner.align(img).image for name, img in images.items()}


# ----------------------------------------------------------------------------- clips
class Clip:
    def __init__(self, group: str, name: str, frames: list[np.ndarray] | Callable[[], list[np.ndarray]],
                 cuts: tuple[int, ...] = (), fps: float = FPS) -> None:
        self.group, self.name, self._frames, self.cuts, self.fps = group, name, frames, cuts, fps

    @property
    def frames(self) -> list[np.ndarray]:
        if callable(self._frames):
            self._frames = self._frames()
        return self._frames


def read(path: Path) -> list[np.ndarray]:
    from avatarify_app.pipeline.video import iter_video

    return list(iter_video(path))


def concat(*shots: list[np.ndarray]) -> tuple[list[np.ndarray], tuple[int, ...]]:
    frames, cuts = [], []
    for shot in shots:
        if frames:
            cuts.append(len(frames))
        frames += shot
    return frames, tuple(cuts)


def megamind_crops(frames: list[np.ndarray]) -> list[list[np.ndarray]]:
    """Each Megamind shot (true cuts) cut to one fixed 256 square around every face box the
    stream tracker saw in it (the evaluate protocol's fixed crop)."""
    from avatarify_app.tracking import CropBox, StreamTracker

    bounds = [*MEGAMIND_CUTS, len(frames)]
    out = []
    for a, b in itertools.pairwise(bounds):
        tracker, boxes = StreamTracker(), []
        try:
            for i in range(a, b):
                r = tracker.process(frames[i], i / 24.0)
                if r is not None:
                    boxes.append(r.box.as_xyxy())
        finally:
            tracker.close()
        xy = np.array(boxes)
        x0, y0 = xy[:, :2].min(0)
        x1, y1 = xy[:, 2:].max(0)
        box = CropBox(float(x0 + x1) / 2, float(y0 + y1) / 2, float(max(x1 - x0, y1 - y0)))
        out.append([box.extract(frames[i], 256) for i in range(a, b)])
    return out


def clips(include_megamind: bool = True, seed: int = 0, fixed: bool = True) -> list[Clip]:
    """The clips (``fixed``: also those that do not depend on ``seed``: smooth, demo, Megamind)."""
    images = portraits()
    crops = face_crops(images)
    names = list(images)
    # mona_lisa.png is the aligned crop of mona.jpg: one crop clip for both.
    distinct: list[str] = []
    for name in names:
        if not any(np.array_equal(crops[name], crops[d]) for d in distinct):
            distinct.append(name)
    out: list[Clip] = []
    for name in distinct if fixed else ():
        out.append(Clip("smooth", f"{name} crop, 40 frames", render(crops[name], (256, 256), smooth_motion(40))))
        out.append(Clip("smooth", f"{name} crop, 100 frames", render(crops[name], (256, 256), smooth_motion(100))))
        out.append(Clip("smooth", f"{name} crop, 40 frames, twice as far",
                        render(crops[name], (256, 256), smooth_motion(40, amount=2.0))))
    for k, name in enumerate(names):
        out.append(Clip("talking", f"{name} 640x480, 150 frames",
                        render(full_frame(images[name]), (640, 480), talking_motion(150, seed=seed + k))))
    for k, name in enumerate(distinct):
        out.append(Clip("talking", f"{name} crop, 150 frames",
                        render(crops[name], (256, 256), talking_motion(150, seed=seed + 10 + k))))
        out.append(Clip("jitter", f"{name} crop, 150 frames, 1 px jitter",
                        render(crops[name], (256, 256), talking_motion(150, seed=seed + 10 + k, jitter=True))))
    if DEMO.is_file() and fixed:
        out.append(Clip("talking", "assets/demo/driving.mp4", lambda: read(DEMO)))
    mm_frames: list[np.ndarray] = read(MEGAMIND) if include_megamind and fixed and MEGAMIND.is_file() else []
    if mm_frames:
        bounds = [*MEGAMIND_CUTS, len(mm_frames)]
        for n, (a, b) in enumerate(itertools.pairwise(bounds)):
            out.append(Clip("talking", f"Megamind shot {n + 1} (frames {a}-{b - 1})", mm_frames[a:b], fps=23.98))
        for n, shot in enumerate(megamind_crops(mm_frames)):
            out.append(Clip("talking", f"Megamind shot {n + 1}, fixed 256 crop", shot, fps=23.98))

    # Different shots one after another: whole frames, then crops.
    shots = [render(full_frame(images[n]), (640, 480), talking_motion(40, seed=seed + 20 + k)) for k, n in enumerate(names)]
    frames, cuts = concat(*shots)
    out.append(Clip("concatenated", f"{len(names)} portraits, 640x480", frames, cuts))
    shots = [render(crops[n], (256, 256), smooth_motion(30)) for n in distinct]
    frames, cuts = concat(*shots)
    out.append(Clip("concatenated", f"{len(distinct)} portraits, crops", frames, cuts))
    # Alike: the same portrait wide, then close (zoom 1.6 about the face), then wide again.
    for k, name in enumerate(names):
        base = full_frame(images[name])
        wide = render(base, (640, 480), talking_motion(30, seed=seed + 30 + k))
        close = [warp(f, (640, 480), 0.0, 1.6, 0.0, 40.0) for f in render(base, (640, 480), talking_motion(30, seed=seed + 40 + k))]
        frames, cuts = concat(wide, close, wide[::-1])
        out.append(Clip("concatenated", f"{name} wide / close / wide", frames, cuts))
    for name in distinct:
        crop = crops[name]
        # Alike: the same crop; its fast motion starts again, a 14 px jump at its fastest.
        frames, cuts = concat(*[render(crop, (256, 256), smooth_motion(30))] * 3)
        out.append(Clip("concatenated", f"{name} crop, motion restarts (14 px jump)", frames, cuts))
        # Alike: the same crop, the head jumping by 15 degrees between two shots.
        a = render(crop, (256, 256), [(m[0] * 0.2, *m[1:]) for m in smooth_motion(30)])
        b = render(crop, (256, 256), [(15.0 + m[0] * 0.2, *m[1:]) for m in smooth_motion(30)])
        frames, cuts = concat(a, b, render(crop, (256, 256), [(0.0, 1.0, 0.0, 0.0)] * 20))
        out.append(Clip("concatenated", f"{name} crop, head jumps 15 degrees", frames, cuts))
        # Alike: the same crop, then its mirror image (a reverse shot of the same face).
        motion = talking_motion(30, seed=seed + 50)
        frames, cuts = concat(render(crop, (256, 256), motion), render(crop[:, ::-1], (256, 256), motion))
        out.append(Clip("concatenated", f"{name} crop / mirrored", frames, cuts))
    if mm_frames:
        out.append(Clip("concatenated", "Megamind.avi as it is", mm_frames, MEGAMIND_CUTS, fps=23.98))
    return out


# ----------------------------------------------------------------------------- counting
def find_cuts(frames: list[np.ndarray], fps: float) -> list[int]:
    from avatarify_app.offline.cuts import label_cuts

    return [i for i, _f, cut in label_cuts(frames, fps=fps) if cut and i > 0]


def find_cuts_old(frames: list[np.ndarray], fps: float) -> list[int]:
    """The rule ``offline.cuts`` replaced, for comparison: a cut where the mean absolute
    difference of consecutive 64x48 thumbnails is over 12 (0-255)."""
    thumbs = [cv2.resize(f, (64, 48), interpolation=cv2.INTER_AREA).astype(np.float32) for f in frames]
    return [i for i in range(1, len(thumbs)) if float(np.abs(thumbs[i] - thumbs[i - 1]).mean()) > 12.0]


def matches(found: list[int], true: tuple[int, ...], slack: int = 1) -> tuple[int, int]:
    """(true cuts found, false cuts) with ``slack`` frames of tolerance."""
    hit = sum(any(abs(f - t) <= slack for f in found) for t in true)
    false = sum(not any(abs(f - t) <= slack for t in true) for f in found)
    return hit, false


def write(path: Path, frames: list[np.ndarray], fps: float) -> None:
    from avatarify_app.pipeline.video import VideoWriter

    with VideoWriter(path, fps, frames[0].shape[1::-1]) as w:
        for f in frames:
            w.write(f)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", type=Path, metavar="DIR", help="also save the clips as MP4 files here")
    ap.add_argument("--skip-megamind", action="store_true")
    ap.add_argument("--draws", type=int, default=1,
                    help="draws of the random talking motion (seeds 0, 100, ...; the settings were chosen on "
                         "draws 0-4 of an earlier clip set); the other clips come once")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--old", action="store_true", help="count with the rule offline.cuts replaced instead")
    args = ap.parse_args()
    t0 = time.perf_counter()
    detect = find_cuts_old if args.old else find_cuts
    all_clips = [c for d in range(args.draws)
                 for c in clips(include_megamind=not args.skip_megamind, seed=args.first_seed + 100 * d, fixed=d == 0)]
    totals: dict[str, list[int]] = {}
    for clip in all_clips:
        found = detect(clip.frames, clip.fps)
        hit, false = matches(found, clip.cuts)
        ok = hit == len(clip.cuts) and false == 0
        t = totals.setdefault(clip.group, [0, 0, 0, 0, 0])
        t[0] += 1
        t[1] += len(clip.cuts)
        t[2] += hit
        t[3] += false
        t[4] += ok
        print(f"{clip.group:<13s} {clip.name:<52s} {len(clip.frames):4d} frames  true {list(clip.cuts)}  "
              f"found {found}  {'ok' if ok else 'WRONG'}")
        if args.write:
            slug = "".join(c if c.isalnum() else "_" for c in f"{clip.group}_{clip.name}").strip("_")
            write(args.write / f"{slug}.mp4", clip.frames, clip.fps)
    print()
    for group, (n, true, hit, false, ok) in totals.items():
        print(f"{group:<13s} {n:3d} clips: true cuts {true}, found {hit}, false cuts {false}, clips exactly right {ok}/{n}")
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
