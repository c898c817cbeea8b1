#!/usr/bin/env bash
# GPU check: what only a CUDA machine can tell, in under 5 minutes.
#
#   bash scripts/gpu_check.sh            (PY=path/to/python to use another interpreter)
#
# 1. the tests marked `gpu` (half precision on by default on CUDA, --no-half honoured,
#    fp16 close to fp32);
# 2. FOMM generator, float16 against float32: error of the output frames (0-255 units),
#    ms per frame and peak VRAM, with random vox-256 weights and, when one is found
#    (checkpoints/ or FOMM_CHECKPOINT=path), a real checkpoint;
# 3. the live path (tracking + engine) with `main.py bench --engine fomm --device cuda`,
#    --half and --no-half: fps and peak VRAM (torch.cuda.max_memory_allocated);
# 4. LivePortrait: fp16 against fp32 (image and keypoints), ms per frame at 512 px and peak
#    VRAM (scripts/gpu_check_liveportrait.py), and its live path with --half and --no-half.
#
# On a machine without CUDA it says "no CUDA device", shows that the gpu tests skip, and
# exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"
START=$SECONDS

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "no CUDA device: torch $("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo '(not importable)') sees none here."
    echo "This check measures the CUDA path; run it on a machine with an NVIDIA GPU and a CUDA build of torch"
    echo "(make setup TORCH_SPEC=\"torch==2.13.0\" PIP_EXTRA=\"--index-url https://download.pytorch.org/whl/cu126\")."
    echo "== the gpu tests here (they skip without CUDA):"
    "$PY" -m pytest -q -m gpu -rs tests/commands/test_half_precision.py 2>&1 | tail -n 8
    exit 0
fi

echo "== device"
"$PY" - <<'EOF'
import torch
p = torch.cuda.get_device_properties(0)
print(f"{p.name}, {p.total_memory / 2**30:.1f} GiB, torch {torch.__version__}, CUDA {torch.version.cuda}")
EOF

echo "== 1. tests marked gpu"
"$PY" -m pytest -q -m gpu -rs tests

echo "== 2. FOMM generator: float16 against float32"
"$PY" - <<'EOF'
import os
import time

import numpy as np
import torch

from avatarify_app.config import EngineConfig, MotionOptions
from avatarify_app.engines.fomm import create_random, find_checkpoint
from avatarify_app.frames import load_image
from avatarify_app.offline.bench import DEMO_CLIP
from avatarify_app.paths import AVATARS_DIR
from avatarify_app.pipeline.video import iter_video
from avatarify_app.tracking import StreamTracker, align_portrait

source = align_portrait(load_image(AVATARS_DIR / "mona_lisa.png")).image
crops = []
tracker = StreamTracker()
try:
    for i, frame in enumerate(iter_video(DEMO_CLIP, max_frames=40)):
        r = tracker.process(frame, i / 25.0)
        if r is not None:
            crops.append(r.crop)
finally:
    tracker.close()

def run(config):
    torch.manual_seed(0)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    engine = create_random(config, MotionOptions())
    engine.set_source(source)
    engine.set_reference(crops[0])
    for c in crops[:5]:
        engine.predict(c)  # warm-up (cuDNN picks its algorithms)
    torch.cuda.synchronize()
    t = time.perf_counter()
    out = [engine.predict(c).astype(np.int16) for c in crops]
    torch.cuda.synchronize()
    ms = (time.perf_counter() - t) * 1e3 / len(crops)
    vram = torch.cuda.max_memory_allocated() / 2**20
    engine.close()
    return np.array(out), ms, vram

weights = [("random vox-256 weights", None)]
real = os.environ.get("FOMM_CHECKPOINT") or find_checkpoint()
if real:
    weights.append((f"checkpoint {real}", str(real)))
else:
    print("(no real FOMM checkpoint found: put one in checkpoints/ or set FOMM_CHECKPOINT=path)")
for name, checkpoint in weights:
    options = {"checkpoint": checkpoint} if checkpoint else {}
    full, ms32, vram32 = run(EngineConfig(name="fomm", device="cuda", half=False, options=options))
    half, ms16, vram16 = run(EngineConfig(name="fomm", device="cuda", half=True, options=options))
    err = np.abs(full - half)
    print(f"{name}: {len(crops)} frames; |fp16 - fp32| mean {err.mean():.3f}, p99 {np.percentile(err, 99):.0f}, "
          f"max {err.max()} (0-255); fp32 {ms32:.2f} ms/frame, {vram32:.0f} MiB peak; "
          f"fp16 {ms16:.2f} ms/frame, {vram16:.0f} MiB peak")
EOF

echo "== 3. live path (tracking + engine): main.py bench --engine fomm --device cuda"
for flag in --half --no-half; do
    "$PY" main.py bench --engine fomm --device cuda "$flag" --frames 100 --warmup 10 --json | tail -n 1 \
        | "$PY" scripts/gpu_check_line.py "$flag"
done

echo "== 4. LivePortrait"
# >>> LivePortrait: fp16 (autocast) against fp32 on the same weights and frames, ms per frame at
# 512 px and peak VRAM for the networks (random weights unless checkpoints/liveportrait exists),
# then the live path (tracking, the authors' crops, networks, paste-back) with --half / --no-half.
"$PY" scripts/gpu_check_liveportrait.py --device cuda --frames 50 | tail -n 3
for flag in --half --no-half; do
    "$PY" main.py bench --engine liveportrait --device cuda "$flag" --frames 50 --warmup 5 --json | tail -n 1 \
        | "$PY" scripts/gpu_check_line.py "$flag"
done
# <<< LivePortrait

echo "== done in $((SECONDS - START)) s"
