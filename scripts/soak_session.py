"""Soak a live Session: many frames from a looping video, memory and threads watched.

    .venv/bin/python scripts/soak_session.py --frames 50000                # real tracker + engine
    .venv/bin/python scripts/soak_session.py --video drive.mp4 --avatar face.jpg --engine landmarks

Prints RSS (psutil) every ``--report-every`` frames, then a JSON summary; exit status 1
when RSS grew more than ``--max-growth-mb`` after warm-up or a worker thread was left.
``soak()`` is what tests/pipeline/test_soak.py runs (with fakes, for speed).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from avatarify_app.config import EngineConfig  # noqa: E402
from avatarify_app.pipeline import NullSink, PreviewSink, Session, VideoFileSource  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"


def soak(video: str | Path, frames: int, *, avatar=None, warmup: int = 300, report_every: int = 0,
         timeout_s: float = 3600.0, **session_kw) -> dict:
    """Run ``frames`` frames of ``video`` (looping, unpaced) through a Session; measure RSS and threads."""
    proc = psutil.Process()
    before = {t.ident for t in threading.enumerate()}
    counter = {"n": 0, "statuses": {}}
    samples: list[tuple[int, float]] = []
    errors: list[str] = []
    done = threading.Event()
    warm = threading.Event()

    def on_frame(event) -> None:
        counter["n"] += 1
        counter["statuses"][event.status] = counter["statuses"].get(event.status, 0) + 1
        n = counter["n"]
        if n == warmup:
            warm.set()
        if report_every and n % report_every == 0:
            rss = proc.memory_info().rss / 2**20
            samples.append((n, rss))
            print(f"{n:8d} frames  rss {rss:8.1f} MB", flush=True)
        if n >= frames:
            done.set()

    session = Session(VideoFileSource(video, loop=True, paced=False), avatar=avatar,
                      sinks=[NullSink(), PreviewSink(lambda f, t: None)], **session_kw)
    session.add_frame_observer(on_frame)
    session.add_error_observer(lambda e: errors.append(f"{e.stage}: {e.message}"))
    t0 = time.perf_counter()
    session.start()
    try:
        warm.wait(timeout_s)
        rss_start = proc.memory_info().rss / 2**20
        t_warm = time.perf_counter()
        done.wait(timeout_s)
        rss_end = proc.memory_info().rss / 2**20
        t_end = time.perf_counter()
        stats = session.stats()
    finally:
        session.stop()
    time.sleep(0.05)
    left = [t.name for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    measured = counter["n"] - warmup
    return {
        "frames": counter["n"], "statuses": counter["statuses"], "errors": errors[:10],
        "rss_start_mb": round(rss_start, 1), "rss_end_mb": round(rss_end, 1),
        "rss_growth_mb": round(rss_end - rss_start, 1), "samples": samples,
        "fps_overall": round(measured / max(t_end - t_warm, 1e-9), 1), "seconds": round(t_end - t0, 1),
        "latency_ms_p50": stats.latency_ms_p50, "latency_ms_p95": stats.latency_ms_p95,
        "dropped": stats.dropped, "engine": stats.engine, "device": stats.device, "threads_left": left,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--video", default=str(MEDIA / "Megamind.avi"))
    p.add_argument("--avatar", default=str(MEDIA / "mona.jpg"))
    p.add_argument("--engine", default="landmarks", choices=("auto", "fomm", "landmarks"))
    p.add_argument("--checkpoint")
    p.add_argument("--frames", type=int, default=20000)
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--report-every", type=int, default=1000)
    p.add_argument("--max-growth-mb", type=float, default=50.0)
    args = p.parse_args(argv)
    result = soak(args.video, args.frames, avatar=args.avatar, warmup=args.warmup,
                  report_every=args.report_every,
                  engine_config=EngineConfig(name=args.engine, checkpoint=args.checkpoint))
    print(json.dumps(result))
    ok = result["rss_growth_mb"] < args.max_growth_mb and not result["threads_left"]
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
