"""Eye and lip open ratios measured on our face mesh, raw and mapped to the LivePortrait authors'
conventions (engines/liveportrait/ratios.py), for photos and videos, next to the authors' ranges.

    .venv/bin/python scripts/lp_ratio_ranges.py [FILE ...]

Default files: the shipped avatars, the demo clip and ../shared/media when present. The authors'
side (their 203-point landmarks on their own driving videos, recorded in their motion templates
d1, d2, d5, d7, d8 of assets/examples/driving, 633 frames): open eyes 25-75% 0.24-0.33, up to 0.57;
closed eyes 0.003-0.02; lips closed 0.001-0.007, open up to 0.67; their "closed mouth" threshold
is 0.03 (lip_normalize_threshold).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from avatarify_app.engines.liveportrait.ratios import eye_from_mesh, lip_from_mesh, mesh_ratios  # noqa: E402
from avatarify_app.frames import IMAGE_SUFFIXES, load_image  # noqa: E402

QUANTILES = (0, 5, 25, 50, 75, 95, 100)


def default_files() -> list[Path]:
    files = [*sorted((ROOT / "assets" / "avatars").glob("*.png")), ROOT / "assets" / "demo" / "driving.mp4"]
    media = ROOT.parent / "shared" / "media"
    if media.is_dir():
        files += sorted(media.iterdir())
    return [f for f in files if f.is_file()]


def measure(path: Path, max_frames: int) -> np.ndarray:
    """(n, 3) raw mesh ratios (eye image-left, eye image-right, lips), one row per face found."""
    from avatarify_app.tracking import FaceMesh

    rows = []
    if path.suffix.lower() in IMAGE_SUFFIXES:
        mesh = FaceMesh(static=True)
        frames = [load_image(path)]
    else:
        from avatarify_app.pipeline.video import iter_video

        mesh = FaceMesh(static=False)
        frames = iter_video(path, max_frames=max_frames)
    try:
        for frame in frames:
            lms = mesh.landmarks(frame)
            if lms is not None:
                rows.append(mesh_ratios(lms))
    finally:
        mesh.close()
    return np.array(rows, np.float64).reshape(-1, 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--max-frames", type=int, default=400)
    args = parser.parse_args()
    for path in args.files or default_files():
        r = measure(path, args.max_frames)
        if not len(r):
            print(f"{path.name}: no face")
            continue
        eyes = np.concatenate([r[:, 0], r[:, 1]])
        mapped_eyes = np.array([eye_from_mesh(v) for v in eyes])
        mapped_lips = np.array([lip_from_mesh(v) for v in r[:, 2]])

        def q(v: np.ndarray) -> str:
            return " ".join(f"{x:.3f}" for x in np.percentile(v, QUANTILES))

        print(f"{path.name} ({len(r)} faces; percentiles {QUANTILES})")
        print(f"  eyes mesh   {q(eyes)}\n  eyes mapped {q(mapped_eyes)}")
        print(f"  lips mesh   {q(r[:, 2])}\n  lips mapped {q(mapped_lips)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
