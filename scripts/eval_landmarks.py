"""Measured goals of the landmark engine: self-reenactment L1 (and fps of the live path).

    .venv/bin/python scripts/eval_landmarks.py [--frames 40] [--skip-video] [--skip-bench]
    .venv/bin/python scripts/eval_landmarks.py --clips DIR [--cuts auto|off]

(a) real portraits (einstein, mona, the shipped astronaut or skimage's) aligned to 256 and
    moved by smooth synthetic head motion (rotation up to 12 degrees, scale 0.92-1.08,
    shifts up to 10 px; an affine warp of the 256 crop); the first frame is the source and
    the reference, every frame is reconstructed from the engine's own landmarks.
(b) continuous shots of ../shared/media/Megamind.avi (cut at scene changes), cropped to 256
    by the stream tracker; the first crop of each shot is the source.
Prints one line per case and the baselines (still source; face-only warp is not rebuilt here).

(c) ``--clips DIR``: the 256 crop clips that ``scripts/cut_counts.py --write DIR`` saved
    (smooth synthetic motion; continuous talking shots: synthetic, and each Megamind shot cut
    to a fixed box), through the commands as a user runs them: ``evaluate --engine landmarks
    --no-crop`` (each shot reconstructed from its first frame) and ``animate --no-crop`` with
    the clip's first frame as the portrait (self-reenactment, the output against the clip).
    Goals: L1 <= 0.03 on smooth synthetic motion, <= 0.05 on continuous talking shots.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from avatarify_app.config import MotionOptions  # noqa: E402
from avatarify_app.engines.landmarks.engine import LandmarkEngine, LandmarkParams  # noqa: E402
from avatarify_app.offline.metrics import l1  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"


def portraits() -> dict[str, np.ndarray]:
    from avatarify_app.frames import load_image

    out: dict[str, np.ndarray] = {}
    for name in ("einstein.jpg", "mona.jpg"):
        if (MEDIA / name).is_file():
            out[name] = load_image(MEDIA / name)
    shipped = sorted((ROOT / "assets" / "avatars").glob("*astronaut*.[jp][pn]g"))
    if shipped:
        out[shipped[0].name] = load_image(shipped[0])
    else:
        from skimage import data

        out["skimage-astronaut"] = np.ascontiguousarray(data.astronaut())
    return out


def synthetic_motion(n: int) -> list[np.ndarray]:
    """2x3 affine warps of a 256 crop about its centre, smooth in t, identity at t=0."""
    mats = []
    for i in range(n):
        t = i / max(n - 1, 1)
        ang = 12.0 * np.sin(2 * np.pi * t)
        scale = 1.0 + 0.08 * np.sin(2 * np.pi * 1.5 * t)
        dx = 10.0 * np.sin(2 * np.pi * 0.75 * t)
        dy = 10.0 * np.sin(2 * np.pi * 1.25 * t)
        m = cv2.getRotationMatrix2D((127.5, 127.5), ang, scale)
        m[:, 2] += (dx, dy)
        mats.append(m)
    return mats


def eval_synthetic(engine_params: LandmarkParams, crops: dict[str, np.ndarray], n: int) -> dict[str, tuple[float, float]]:
    res = {}
    for name, crop in crops.items():
        frames = [cv2.warpAffine(crop, m, (256, 256), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                  for m in synthetic_motion(n)]
        eng = LandmarkEngine(options=MotionOptions(), params=engine_params)
        eng.set_source(crop)
        errs, still = [], []
        for f in frames:
            out = eng.predict(f)
            errs.append(l1(out, f))
            still.append(l1(crop, f))
        eng.close()
        res[name] = (float(np.mean(errs)), float(np.mean(still)))
    return res


def megamind_shots(moving_crop: bool = False):
    """Crops (256) and landmarks of each continuous shot of Megamind.avi (evaluate's protocol)."""
    from avatarify_app.offline.reconstruction import load_shots

    return [s for s in load_shots(MEDIA / "Megamind.avi", moving_crop=moving_crop) if len(s) >= 12]


def eval_video(engine_params: LandmarkParams, shots) -> tuple[float, float, int]:
    errs, still = [], []
    for shot in shots:
        eng = LandmarkEngine(options=MotionOptions(), params=engine_params)
        src, src_lm = shot[0]
        eng.set_source(src, src_lm)
        eng.set_reference(src, src_lm)
        for crop, lms in shot:
            out = eng.predict(crop, lms)
            errs.append(l1(out, crop))
            still.append(l1(src, crop))
        eng.close()
    return float(np.mean(errs)), float(np.mean(still)), len(shots)


def run_command(argv: list[str]) -> list[str]:
    """``main.py ARGV`` in this process; its output lines (raises when it fails)."""
    import contextlib
    import io

    from avatarify_app.cli import main as cli_main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli_main(argv)
    if code != 0:
        raise RuntimeError(f"main.py {' '.join(argv)} exited {code}")
    return out.getvalue().strip().splitlines()


def eval_clips(folder: Path, cuts: str) -> int:
    """(c): evaluate --no-crop and animate --no-crop self-reenactment on each crop clip."""
    import json
    import tempfile

    from avatarify_app.frames import save_image
    from avatarify_app.pipeline.video import iter_video

    clips = sorted(folder.glob("smooth_*.mp4")) + sorted(folder.glob("talking_*crop*.mp4"))
    if not clips:
        print(f"no clips in {folder}: make them with scripts/cut_counts.py --write {folder}")
        return 2
    groups: dict[str, list[tuple[float, float, int]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for clip in clips:
            real = list(iter_video(clip))
            ev = json.loads(run_command(["evaluate", "--video", str(clip), "--engine", "landmarks", "--no-crop",
                                         "--no-landmark-metrics", "--cuts", cuts, "--json"])[-1])
            source, output = Path(tmp) / "source.png", Path(tmp) / "out.mp4"
            save_image(source, real[0])
            line = run_command(["animate", "--source", str(source), "--driving", str(clip), "--output", str(output),
                                "--engine", "landmarks", "--no-crop", "--cuts", cuts, "--force"])[-1]
            made = list(iter_video(output))
            animated = float(np.mean([l1(a, b) for a, b in zip(made, real, strict=True)]))
            still = float(np.mean([l1(real[0], b) for b in real]))
            shots = line.split("engine landmarks, ")[-1].split(" shot")[0]
            print(f"(c) {clip.stem:<52s} evaluate L1 {ev['l1']:.4f} ({ev['shots']} shot(s), {ev['frames']} frames)  "
                  f"animate L1 {animated:.4f} ({shots} shot(s))  still {still:.4f}")
            if clip.stem.startswith("smooth"):
                group = "smooth, twice as far" if "twice_as_far" in clip.stem else "smooth"
            else:
                group = "talking, Megamind shots" if "Megamind" in clip.stem else "talking, synthetic"
            groups.setdefault(group, []).append((ev["l1"], animated, ev["frames"]))
    for group, rows in groups.items():
        goal = "goal <= 0.03" if group == "smooth" else "goal <= 0.05" if group.startswith("talking") else "no goal"
        frames = sum(r[2] for r in rows)
        mean = [sum(r[i] * r[2] for r in rows) / frames for i in (0, 1)]
        worst = [max(r[i] for r in rows) for i in (0, 1)]
        print(f"(c) {group}: {len(rows)} clips, {frames} frames; evaluate L1 mean {mean[0]:.4f} worst {worst[0]:.4f}; "
              f"animate L1 mean {mean[1]:.4f} worst {worst[1]:.4f}  ({goal})")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=Path, metavar="DIR", help="(c) only: the crop clips of scripts/cut_counts.py --write")
    ap.add_argument("--cuts", choices=("auto", "off"), default="auto", help="(c): the commands' --cuts")
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--skip-video", action="store_true")
    ap.add_argument("--skip-bench", action="store_true")
    ap.add_argument("--set", action="append", default=[], help="LandmarkParams override, e.g. head_amp=0.1")
    args = ap.parse_args()
    if args.clips:
        return eval_clips(args.clips, args.cuts)
    params = LandmarkParams()
    for kv in args.set:
        k, v = kv.split("=")
        params = dataclasses.replace(params, **{k: type(getattr(params, k))(v)})

    from avatarify_app.tracking import align_portrait

    crops = {name: align_portrait(img).image for name, img in portraits().items()}
    res = eval_synthetic(params, crops, args.frames)
    for name, (err, still) in res.items():
        print(f"(a) synthetic head motion  {name:<22s} L1 {err:.4f}  (still source {still:.4f})")
    worst = max(res, key=lambda n: res[n][0])
    print(f"(a) mean L1 {np.mean([v[0] for v in res.values()]):.4f}, worst {res[worst][0]:.4f} ({worst})  "
          f"goal <= 0.035 for each portrait")
    if not args.skip_video and (MEDIA / "Megamind.avi").is_file():
        for moving in (False, True):
            err, still, n = eval_video(params, megamind_shots(moving))
            crop = "tracker's moving crop" if moving else "one crop per shot"
            print(f"(b) Megamind.avi {n} shots, {crop:<21s} L1 {err:.4f}  (still source {still:.4f})  goal <= 0.05")
    if not args.skip_bench:
        from avatarify_app.config import EngineConfig
        from avatarify_app.offline.bench import measure

        t = time.perf_counter()
        s = measure(EngineConfig(name="landmarks"), frames=150, warmup=10).summary()
        print(f"live path (tracking + engine): {s['live_ms_per_frame']:.2f} ms/frame = {s['live_fps']:.1f} fps "
              f"stages {s['stages_ms']}  ({time.perf_counter() - t:.0f} s)  goal >= 30 fps")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
