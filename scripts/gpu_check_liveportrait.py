"""LivePortrait on a GPU: half precision against float32, frames per second at 512 px, memory.

    python scripts/gpu_check_liveportrait.py [--frames 50] [--checkpoint checkpoints/liveportrait]
                                             [--model-config FILE.yaml] [--device cuda]

Weights: the released folder when given (or present in checkpoints/liveportrait), else the
released sizes with random weights (speed does not depend on the values; the half-precision
error is then only indicative). Needs torch and this repository, not mediapipe: the engine is
fed the authors' crops directly (256 px in, 512 px out), so the numbers are the networks and
the keypoint maths of one driving frame, the source prepared once (as ``bench``'s engine time
without the crop and paste-back). Prints one JSON object as the last line:

- ``fp16_vs_fp32``: max and mean |fp16 autocast - float32| of the decoded image (in [0, 1])
  and max |difference| of the driving keypoints, same weights and frames;
- ``ms_per_frame`` / ``fps`` at fp16 and fp32 (median over ``--frames`` after warm-up, CUDA
  synchronised per frame);
- ``max_memory_mib``: peak memory torch allocated, per precision.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from avatarify_app.engines.liveportrait.engine import LivePortraitEngine  # noqa: E402
from avatarify_app.models import build_liveportrait, load_liveportrait  # noqa: E402


def smooth_image(seed: int, size: int) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, 8, 8, generator=g)
    img = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)[0]
    return np.ascontiguousarray((img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


def models_for(args: argparse.Namespace):
    folder = Path(args.checkpoint) if args.checkpoint else ROOT / "checkpoints" / "liveportrait"
    if (folder / "base_models").is_dir():
        return load_liveportrait(folder, args.model_config), f"weights {folder}"
    sizes = args.model_config or "the released sizes"
    return build_liveportrait(args.model_config).eval(), f"random weights ({sizes})"


def run(models, device: str, half: bool, frames: int, size: int) -> dict:
    engine = LivePortraitEngine(models, device=device, half=half, backend="torch", input_size=size)
    cuda = engine._device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    source = smooth_image(1, size)
    driving = [smooth_image(10 + i, size) for i in range(8)]
    engine.set_source_crop(source)
    engine.set_reference_crop(driving[0])
    times = []
    for i in range(frames + 3):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        engine.predict_crop(driving[i % len(driving)])
        if cuda:
            torch.cuda.synchronize()
        if i >= 3:
            times.append((time.perf_counter() - t0) * 1e3)
    x_d = engine.driving_keypoints(driving[3])
    with torch.inference_mode():
        image = engine.runtime.warp_decode(engine._source.feature, engine._driver.x_s, x_d)["out"].float().cpu()
    ms = statistics.median(times)
    out = {"ms_per_frame": round(ms, 2), "fps": round(1000.0 / ms, 1), "device": engine.device,
           "output_px": int(image.shape[-1]), "image": image, "x_d": x_d.cpu()}
    if cuda:
        out["max_memory_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    engine.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--checkpoint")
    parser.add_argument("--model-config")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--input-size", type=int, default=256)
    args = parser.parse_args()
    models, weights = models_for(args)
    results = {half: run(models, args.device, half, args.frames, args.input_size) for half in (False, True)}
    diff = (results[True]["image"] - results[False]["image"]).abs()
    report = {
        "weights": weights,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "fp16_vs_fp32": {"image_max": round(diff.max().item(), 5), "image_mean": round(diff.mean().item(), 6),
                         "keypoints_max": round((results[True]["x_d"] - results[False]["x_d"]).abs().max().item(), 6)},
    }
    for half, r in results.items():
        report["fp16" if half else "fp32"] = {k: v for k, v in r.items() if k not in ("image", "x_d")}
        print(f"{'fp16' if half else 'fp32'}: {r['ms_per_frame']:.1f} ms/frame ({r['fps']:.1f} fps) at "
              f"{r['output_px']} px, peak {r.get('max_memory_mib', '-')} MiB")
    print(json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
