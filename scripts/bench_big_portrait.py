"""Time and peak memory of reading and framing a very large portrait (issue 11, item 3).

    .venv/bin/python scripts/bench_big_portrait.py [--size 12000] [--root CHECKOUT] [--animate]

Writes a SIZE x SIZE JPEG (the shipped astronaut scaled up, with a little sensor-like noise so
it compresses like a photo), then runs each step in a fresh process and prints its wall time
and peak resident memory (ru_maxrss of that process):

- load:        ``frames.load_image`` (what every command does first);
- load+align:  ``load_image`` then ``tracking.align_portrait`` (the source step of `animate`,
               the GUI's import, `live`'s avatar);
- animate:     with ``--animate``, `main.py animate --engine landmarks` driven by a 3-frame clip
               (the whole command: the output keeps the portrait's size).

``--root`` measures another checkout (e.g. an export of main) with this interpreter: its
``avatarify_app`` is imported from there.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import avatarify_app
from avatarify_app.frames import load_image
step, path = sys.argv[1], sys.argv[2]
t_import = time.perf_counter()
image = load_image(path)
t_load = time.perf_counter()
out = {"module": avatarify_app.__file__, "shape": list(image.shape), "load_s": t_load - t_import}
if step == "align":
    from avatarify_app.tracking import align_portrait
    aligned = align_portrait(image)
    out["align_s"] = time.perf_counter() - t_load
    out["notes"] = list(getattr(aligned, "notes", ()))
out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def make_portrait(path: Path, size: int) -> None:
    face = cv2.imread(str(HERE / "assets" / "avatars" / "astronaut.png"))
    big = cv2.resize(face, (size, size), interpolation=cv2.INTER_CUBIC)
    rng = np.random.default_rng(0)
    for y in range(0, size, 1000):  # in bands, to keep this process small
        band = big[y : y + 1000].astype(np.int16)
        band += rng.normal(0, 4, band.shape).astype(np.int16)
        big[y : y + 1000] = np.clip(band, 0, 255).astype(np.uint8)
    cv2.imwrite(str(path), big, [cv2.IMWRITE_JPEG_QUALITY, 92])


def make_clip(path: Path) -> None:
    import imageio_ffmpeg

    face = cv2.cvtColor(cv2.imread(str(HERE / "assets" / "avatars" / "astronaut.png")), cv2.COLOR_BGR2RGB)
    writer = imageio_ffmpeg.write_frames(str(path), (256, 256), fps=10, macro_block_size=1,
                                         ffmpeg_log_level="error")
    writer.send(None)
    for i in range(3):
        writer.send(np.ascontiguousarray(np.roll(face, 2 * i, axis=1)))
    writer.close()


def run_child(args: list[str], cwd: Path, timeout: float) -> tuple[float, float, str, int]:
    """(wall s, peak MB, stdout, exit code) of a child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONPATH": str(cwd)})
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        return float("nan"), float("nan"), out, -9
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest child so far
    return wall, peak, out, proc.returncode


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=12000)
    p.add_argument("--root", type=Path, default=HERE, help="checkout whose avatarify_app is measured")
    p.add_argument("--animate", action="store_true", help="also run the whole `animate` command")
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument("--make-only", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.make_only:
        make_portrait(args.make_only, args.size)
        return 0
    root = args.root.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        portrait = Path(tmp) / f"portrait_{args.size}.jpg"
        # In a child of its own: a child forked from a big parent starts with the parent's pages in
        # its peak (ru_maxrss), so this process stays small.
        subprocess.run([sys.executable, __file__, "--size", str(args.size), "--make-only", str(portrait)],
                       check=True)
        print(f"{portrait.name}: {args.size}x{args.size}, {portrait.stat().st_size / 2**20:.1f} MB; "
              f"measuring {root}")
        # Each step in its own process, its peak read by the child itself (RUSAGE_SELF).
        for step in ("load", "align"):
            wall, peak, out, code = run_child([sys.executable, "-c", CHILD, step, str(portrait)], root, args.timeout)
            result = json.loads(out.strip().splitlines()[-1]) if code == 0 and out.strip() else {"exit": code}
            print(f"{'load' if step == 'load' else 'load+align':10s} wall {wall:6.1f} s, "
                  f"peak {result.get('peak_mb', float('nan')):7.0f} MB: {json.dumps(result)}")
        if args.animate:
            clip, out_file = Path(tmp) / "driving.mp4", Path(tmp) / "out.mp4"
            make_clip(clip)
            cmd = [sys.executable, str(root / "main.py"), "animate", "--source", str(portrait), "--driving",
                   str(clip), "--output", str(out_file), "--engine", "landmarks"]
            wall, peak, out, code = run_child(cmd, root, args.timeout)
            print(f"{'animate':10s} wall {wall:6.1f} s, peak {peak:7.0f} MB: exit {code}; {out.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
