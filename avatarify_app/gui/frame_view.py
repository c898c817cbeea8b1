"""A widget that paints numpy frames, letterboxed, with optional overlays.

Overlays (all in the frame's pixel coordinates): a rectangle (face box), points
(landmarks or keypoints) and a second image blended on top at an adjustable opacity
(the avatar over the camera crop, to line up the pose before calibrating).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPolygonF
from PySide6.QtWidgets import QSizePolicy, QWidget

from avatarify_app.gui.images import frame_to_qimage

BACKGROUND = QColor(24, 24, 28)
LABEL_BACKDROP = QColor(0, 0, 0, 150)


class FrameView(QWidget):
    """Paints the latest frame it was given; cheap to update at camera rate."""

    def __init__(self, title: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._title = title
        self._image: QImage | None = None
        self._overlay: QImage | None = None
        self._overlay_opacity = 0.0
        self._box: tuple[float, float, float, float] | None = None
        self._points: np.ndarray | None = None
        self._point_sets: list[tuple[np.ndarray, QColor]] = []
        self._message = ""
        self._badge = ""
        self.frames_painted = 0
        self.setMinimumSize(160, 160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)

    # -- content ------------------------------------------------------------------
    def set_frame(self, frame: np.ndarray | None) -> None:
        self._image = None if frame is None else frame_to_qimage(frame)
        self.update()

    def set_qimage(self, image: QImage | None) -> None:
        self._image = image
        self.update()

    def has_frame(self) -> bool:
        return self._image is not None

    def set_overlay(self, frame: np.ndarray | None, opacity: float | None = None) -> None:
        self._overlay = None if frame is None else frame_to_qimage(frame)
        if opacity is not None:
            self._overlay_opacity = float(opacity)
        self.update()

    def set_overlay_opacity(self, opacity: float) -> None:
        self._overlay_opacity = max(0.0, min(1.0, float(opacity)))
        self.update()

    def has_overlay(self) -> bool:
        return self._overlay is not None

    def image_size(self) -> tuple[int, int] | None:
        """(width, height) of the frame shown, or None."""
        return None if self._image is None else (self._image.width(), self._image.height())

    def overlay_size(self) -> tuple[int, int] | None:
        """(width, height) of the overlay image, or None."""
        return None if self._overlay is None else (self._overlay.width(), self._overlay.height())

    def overlay_opacity(self) -> float:
        return self._overlay_opacity

    def set_box(self, box: tuple[float, float, float, float] | None) -> None:
        self._box = box
        self.update()

    def set_points(self, points: np.ndarray | None) -> None:
        self._points = None if points is None else np.asarray(points, np.float32).reshape(-1, 2)
        self.update()

    def set_point_sets(self, sets: list[tuple[np.ndarray, QColor]]) -> None:
        self._point_sets = [(np.asarray(p, np.float32).reshape(-1, 2), c) for p, c in sets]
        self.update()

    def set_message(self, text: str) -> None:
        """Centered text shown when there is no frame (or over it, dimmed)."""
        self._message = text
        self.update()

    def message(self) -> str:
        return self._message

    def set_title(self, text: str) -> None:
        self._title = text
        self.update()

    def set_badge(self, text: str) -> None:
        """Small text in the top-left corner (status such as 'no face')."""
        self._badge = text
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(420, 420)

    # -- painting -----------------------------------------------------------------
    def _target_rect(self, w: int, h: int) -> QRectF:
        scale = min(self.width() / w, self.height() / h)
        tw, th = w * scale, h * scale
        return QRectF((self.width() - tw) / 2, (self.height() - th) / 2, tw, th)

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), BACKGROUND)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        if self._image is not None and not self._image.isNull():
            iw, ih = self._image.width(), self._image.height()
            target = self._target_rect(iw, ih)
            p.drawImage(target, self._image)
            if self._overlay is not None and self._overlay_opacity > 0.0:
                p.setOpacity(self._overlay_opacity)
                p.drawImage(target, self._overlay)
                p.setOpacity(1.0)
            sx, sy = target.width() / iw, target.height() / ih

            def to_widget(x: float, y: float) -> QPointF:
                return QPointF(target.x() + x * sx, target.y() + y * sy)

            if self._box is not None:
                x0, y0, x1, y1 = self._box
                p.setPen(QPen(QColor(80, 220, 120), 2))
                p.setBrush(Qt.BrushStyle.NoBrush)
                p.drawRect(QRectF(to_widget(x0, y0), to_widget(x1, y1)))
            sets = list(self._point_sets)
            if self._points is not None:
                sets.insert(0, (self._points, QColor(255, 210, 60)))
            for pts, color in sets:
                # one drawPoints call with a round pen: cheap even for 468 mesh points
                pen = QPen(color, 2.5 if len(pts) > 60 else 7.0)
                pen.setCapStyle(Qt.PenCapStyle.RoundCap)
                p.setPen(pen)
                wx = target.x() + pts[:, 0] * sx
                wy = target.y() + pts[:, 1] * sy
                p.drawPoints(QPolygonF([QPointF(x, y) for x, y in zip(wx.tolist(), wy.tolist(), strict=True)]))
            self.frames_painted += 1
        self._paint_text(p)
        p.end()

    def _corner_text(self, p: QPainter, text: str, color: QColor, align: Qt.AlignmentFlag) -> None:
        """A label in a corner, on a dark backdrop so it reads over bright pictures too."""
        area = self.rect().adjusted(8, 6, -8, -6)
        flags = Qt.AlignmentFlag.AlignTop | align
        bounds = p.fontMetrics().boundingRect(area, int(flags), text).adjusted(-4, -1, 4, 1)
        p.fillRect(bounds, LABEL_BACKDROP)
        p.setPen(color)
        p.drawText(area, flags, text)

    def _paint_text(self, p: QPainter) -> None:
        if self._title:
            self._corner_text(p, self._title, QColor(210, 210, 220), Qt.AlignmentFlag.AlignRight)
        if self._badge:
            self._corner_text(p, self._badge, QColor(255, 200, 80), Qt.AlignmentFlag.AlignLeft)
        if self._message:
            box = self.rect().adjusted(20, 20, -20, -20)
            if self._image is not None:
                p.fillRect(self.rect(), QColor(0, 0, 0, 140))
            p.setPen(QColor(230, 230, 235))
            if len(self._message) <= 2:  # a countdown digit: big
                font = p.font()
                font.setPointSize(max(24, self.height() // 5))
                font.setBold(True)
                p.setFont(font)
            p.drawText(box, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._message)
