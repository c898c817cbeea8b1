"""The step guide above the views: camera, portrait, calibrate, virtual camera. No Qt here."""

from __future__ import annotations


def _step(n: int, text: str, done: bool, current: bool) -> str:
    mark = "&#10003;" if done else f"{n}."
    style = "font-weight:bold;color:#2a7fff;" if current else ("color:gray;" if done else "")
    return f"<span style='{style}'>{mark} {text}</span>"


def guide_html(source_spec: str | None, has_avatar: bool, calibrated: bool, vcam: bool) -> str:
    """Rich text for the guide: done steps ticked and grey, the next one highlighted."""
    has_source = source_spec is not None
    current = (0 if not has_source else 1 if not has_avatar else 2 if not calibrated else
               3 if not vcam else 4)
    if source_spec is None:
        source = "Choose a camera or video"
    else:
        source = "Camera" if source_spec.isdigit() or source_spec.startswith("/dev/") else "Driving video"
    parts = [
        _step(1, source, has_source, current == 0),
        _step(2, "Pick a portrait below", has_avatar, current == 1),
        _step(3, "Copy its pose, press Calibrate (X)", calibrated, current == 2),
        _step(4, "Turn on Virtual camera for your call", vcam, current == 3),
    ]
    return " &nbsp;&rarr;&nbsp; ".join(parts)
