"""Measured goals of the landmark engine: self-reenactment L1 (and fps of the live path).

    .venv/bin/python scripts/eval_landmarks.py [--frames 40] [--skip-video] [--skip-bench]

(a) real portraits (einstein, mona, the shipped astronaut or skimage's) aligned to 256 and
    moved by smooth synthetic head motion (rotation up to 12 degrees, scale 0.92-1.08,
    shifts up to 10 px; an affine warp of the 256 crop); the first frame is the source and
    the reference, every frame is reconstructed from the engine's own landmarks.
(b) continuous shots of ../shared/media/Megamind.avi (cut at scene changes), cropped to 256
    by the stream tracker; the first crop of each shot is the source.
Prints one line per case and the baselines (still source; face-only warp is not rebuilt here).
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
    from avatarify_app.commands.evaluate import load_shots

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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--skip-video", action="store_true")
    ap.add_argument("--skip-bench", action="store_true")
    ap.add_argument("--set", action="append", default=[], help="LandmarkParams override, e.g. head_amp=0.1")
    args = ap.parse_args()
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
        from avatarify_app.commands import bench_landmarks

        ns = argparse.Namespace(video=None, frames=150, warmup=10, json=False)
        t = time.perf_counter()
        s = bench_landmarks.measure(ns).summary()
        print(f"live path (tracking + engine): {s['ms_per_frame']:.2f} ms/frame = {s['fps']:.1f} fps "
              f"stages {s['stages_ms']}  ({time.perf_counter() - t:.0f} s)  goal >= 30 fps")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
