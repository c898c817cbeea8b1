"""The FOMM paper's overview picture, live: source and driving keypoints, occlusion, motion.

The source panel shows ``FrameEvent.avatar``, the aligned crop the engine animates, so
the engine's source keypoints (crop pixels) land on the face. ``FrameEvent.debug``
(``Engine.debug_info()``) is drawn by what each array looks like,
so engines can report what they have: (K, 2) keypoints (named ``*source*`` or
``*driving*``), HxW maps in [0, 1] (occlusion), HxWx2 pixel offsets (motion field) and
HxWx3 images; KxHxW soft masks (the landmark engine's regions) are drawn as a colour
map where there is no occlusion map.
"""

from __future__ import annotations

import cv2
import numpy as np
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QGridLayout, QLabel, QVBoxLayout, QWidget

from avatarify_app.frames import as_frame
from avatarify_app.gui.frame_view import FrameView

SOURCE_COLOR = QColor(80, 200, 255)
DRIVING_COLOR = QColor(255, 90, 90)
MOVED_COLOR = QColor(255, 220, 60)  # keypoints moved by the motion, drawn on the source


def flow_to_frame(flow: np.ndarray, size: int | None = None) -> np.ndarray:
    """HxWx2 pixel offsets -> colour picture (hue = direction, brightness = length) with arrows."""
    f = np.asarray(flow, np.float32)
    h, w = f.shape[:2]
    mag, ang = cv2.cartToPolar(f[..., 0], f[..., 1])
    hsv = np.zeros((h, w, 3), np.uint8)
    hsv[..., 0] = (ang * (90.0 / np.pi)).astype(np.uint8)
    hsv[..., 1] = 255
    scale = float(np.percentile(mag, 99)) or 1.0
    hsv[..., 2] = np.clip(mag / scale * 255.0, 0, 255).astype(np.uint8)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    out_size = size or max(h, w, 256)
    rgb = cv2.resize(rgb, (out_size, out_size), interpolation=cv2.INTER_NEAREST)
    sx, sy = out_size / w, out_size / h
    step = max(1, min(h, w) // 16)
    for y in range(step // 2, h, step):
        for x in range(step // 2, w, step):
            dx, dy = f[y, x]
            p0 = (int(x * sx), int(y * sy))
            p1 = (int((x + dx) * sx), int((y + dy) * sy))
            cv2.arrowedLine(rgb, p0, p1, (255, 255, 255), 1, tipLength=0.3)
    return np.ascontiguousarray(rgb)


def map_to_frame(values: np.ndarray) -> np.ndarray:
    a = np.asarray(values, np.float32)
    if a.ndim == 3:
        a = a[..., 0]
    if a.max(initial=0.0) > 1.0:
        a = a / 255.0
    gray = np.clip(a * 255.0, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))


def masks_to_frame(masks: np.ndarray) -> np.ndarray:
    """KxHxW soft masks -> colour picture (each pixel coloured by its strongest mask)."""
    m = np.asarray(masks, np.float32)
    k = m.shape[0]
    hues = (np.arange(k) * (180.0 / max(k, 1))).astype(np.uint8)
    hsv = np.zeros((*m.shape[1:], 3), np.uint8)
    hsv[..., 0] = hues[np.argmax(m, axis=0)]
    hsv[..., 1] = 200
    hsv[..., 2] = np.clip(m.max(axis=0) * 255.0, 60, 255).astype(np.uint8)
    return np.ascontiguousarray(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB))


def sort_debug(debug: dict) -> dict[str, list]:
    """Group debug arrays by kind: keypoints (source / driving / moved), maps, masks, flows, images."""
    out: dict[str, list] = {"source_kp": [], "driving_kp": [], "moved_kp": [], "maps": [], "masks": [],
                            "flows": [], "images": []}
    for key, value in (debug or {}).items():
        a = np.asarray(value)
        name = str(key).lower()
        if a.ndim == 2 and a.shape[1] == 2 and a.shape[0] <= 1000:
            kind = "driving_kp" if "driving" in name else "source_kp" if "source" in name and \
                "motion" not in name else "moved_kp"
            out[kind].append((key, a))
        elif a.ndim == 3 and a.shape[0] < min(a.shape[1:]) and a.shape[1] == a.shape[2] and a.shape[2] > 4:
            out["masks"].append((key, a))
        elif a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 1):
            out["maps"].append((key, a))
        elif a.ndim == 3 and a.shape[2] == 2:
            out["flows"].append((key, a))
        elif a.ndim == 3 and a.shape[2] in (3, 4):
            out["images"].append((key, a))
    return out


class DebugView(QWidget):
    """Four panels: source + keypoints, driving + keypoints, occlusion map, motion field."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.source = FrameView("source + keypoints", self)
        self.driving = FrameView("driving + keypoints", self)
        self.occlusion = FrameView("occlusion map", self)
        self.motion = FrameView("motion field", self)
        grid = QGridLayout()
        for i, view in enumerate((self.source, self.driving, self.occlusion, self.motion)):
            view.setMinimumSize(120, 120)
            grid.addWidget(view, 0, i)  # one row, like the paper's overview figure
        self.note = QLabel("", self)
        self.note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(grid, 1)
        layout.addWidget(self.note)
        self._avatar: np.ndarray | None = None  # the avatar crop on the source panel
        self.occlusion.set_message("no occlusion map from this engine")
        self.motion.set_message("no motion field from this engine")

    def show_event(self, event) -> None:
        """Update every panel from one FrameEvent (GUI thread)."""
        avatar = getattr(event, "avatar", None)
        if avatar is not self._avatar:  # a new avatar (or engine size): repaint the source panel
            self._avatar = avatar
            self.source.set_frame(avatar)
        groups = sort_debug(getattr(event, "debug", None) or {})
        self.driving.set_frame(event.crop)
        self.driving.set_point_sets([(kp, DRIVING_COLOR) for _, kp in groups["driving_kp"]])
        self.source.set_point_sets([(kp, SOURCE_COLOR) for _, kp in groups["source_kp"]]
                                   + [(kp, MOVED_COLOR) for _, kp in groups["moved_kp"]])
        if groups["maps"]:
            _, occ = groups["maps"][0]
            self.occlusion.set_title("occlusion map")
            self.occlusion.set_frame(map_to_frame(occ))
            self.occlusion.set_message("")
        elif groups["masks"]:
            key, masks = groups["masks"][0]
            self.occlusion.set_title(f"{key} (no occlusion map)")
            self.occlusion.set_frame(masks_to_frame(masks))
            self.occlusion.set_message("")
        if groups["flows"]:
            _, flow = groups["flows"][0]
            self.motion.set_frame(flow_to_frame(flow))
            self.motion.set_message("")
        if groups["images"] and self._avatar is None:
            self.source.set_frame(as_frame(groups["images"][0][1]))
        names = ", ".join(sorted(str(k) for k in (getattr(event, "debug", None) or {})))
        self.note.setText(f"engine debug arrays: {names}" if names else
                          "This engine reports no debug arrays (the FOMM engine shows keypoints, "
                          "occlusion and motion).")
