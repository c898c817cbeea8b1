"""One line of scripts/gpu_check.sh: a `bench --json` summary (stdin) as text.

    main.py bench ... --json | tail -n 1 | python scripts/gpu_check_line.py LABEL
"""

from __future__ import annotations

import json
import sys


def main() -> int:
    label = sys.argv[1] if len(sys.argv) > 1 else ""
    s = json.loads(sys.stdin.read())
    print(f"{label:>9}: engine {s['fps']:.1f} fps ({s['ms_per_frame']:.2f} ms), "
          f"live path {s.get('live_fps', 0):.1f} fps, half={s.get('half')}, device {s['device']}, "
          f"peak VRAM {s.get('vram_peak_mb', '?')} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
