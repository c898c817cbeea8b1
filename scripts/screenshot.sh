#!/usr/bin/env bash
# Start the app under Xvfb with a video file as the camera, wait until frames flow, and save
# a picture of the window to out/screenshot.png (Qt's own grab via --screenshot), plus the
# whole X screen to out/screenshot_screen.png when ImageMagick's `import` is installed.
#
#   scripts/screenshot.sh [VIDEO | --no-camera] [extra app args...]
#
# VIDEO defaults to the demo clip assets/demo/driving.mp4 (what the app uses without a camera),
# else ../shared/media/Megamind.avi, else a generated clip. --no-camera starts the app as a
# new user would (no --camera: it looks for cameras, finds none under Xvfb and plays the demo
# clip); that is how docs/screenshot.png is made. Settings go to a
# throw-away AVATARIFY_HOME (set SCREENSHOT_HOME to keep or preset one). Needs xvfb-run
# (Debian: apt-get install -y xvfb); without it the offscreen Qt platform is used.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-out}
mkdir -p "$OUT"

VIDEO=${1:-}
[ $# -gt 0 ] && shift
CAMERA_ARGS=()
if [ "$VIDEO" = "--no-camera" ]; then
  :
elif [ -z "$VIDEO" ]; then
  if [ -f assets/demo/driving.mp4 ]; then
    VIDEO=assets/demo/driving.mp4
  elif [ -f ../shared/media/Megamind.avi ]; then
    VIDEO=../shared/media/Megamind.avi
  else
    VIDEO="$OUT/screenshot_clip.avi"
    "$PY" - "$VIDEO" <<'PYEOF'
import sys

import cv2
import numpy as np

w, h = 640, 480
out = cv2.VideoWriter(sys.argv[1], cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (w, h))
for i in range(100):
    frame = np.full((h, w, 3), 60, np.uint8)
    cv2.circle(frame, (w // 2 + int(40 * np.sin(i / 8)), h // 2), 120, (150, 180, 220), -1)
    out.write(frame)
out.release()
PYEOF
  fi
fi
[ -n "$VIDEO" ] && [ "$VIDEO" != "--no-camera" ] && CAMERA_ARGS=(--camera "$VIDEO")

HOME_DIR=${SCREENSHOT_HOME:-$(mktemp -d)}
export AVATARIFY_HOME="$HOME_DIR"
ARGS=(main.py "${CAMERA_ARGS[@]}" --screenshot "$OUT/screenshot.png" --quit-after "${QUIT_AFTER:-60}" "$@")

if command -v xvfb-run >/dev/null 2>&1; then
  export QT_QPA_PLATFORM=xcb
  # The window grab is taken by the app itself; `import` adds the whole screen just before quitting.
  xvfb-run -a -s "-screen 0 1440x900x24" bash -c '
    "$0" "${@}" &
    app=$!
    if command -v import >/dev/null 2>&1; then
      for _ in $(seq 1 600); do
        [ -f "'"$OUT"'/screenshot.png" ] && { import -window root "'"$OUT"'/screenshot_screen.png" || true; break; }
        kill -0 $app 2>/dev/null || break
        sleep 0.1
      done
    fi
    wait $app
  ' "$PY" "${ARGS[@]}"
else
  QT_QPA_PLATFORM=offscreen "$PY" "${ARGS[@]}"
fi
echo "saved $OUT/screenshot.png"
