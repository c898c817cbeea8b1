"""The live pipeline: sources, the session (capture, engine host, reference keeper, inference
loop, outputs), sinks, stats, video I/O and the per-avatar store (``avatar_store``).

See ``docs/CONTRACTS.md`` (pipeline) and ``session.py`` for threads, output policy and where each
part of the session lives.
"""

from avatarify_app.pipeline.events import (
    REFERENCE_REASONS,
    STATUSES,
    ErrorEvent,
    FrameEvent,
    ReferenceEvent,
    placeholder_frame,
)
from avatarify_app.pipeline.session import Session
from avatarify_app.pipeline.sinks import (
    NullSink,
    PreviewSink,
    RecorderSink,
    Sink,
    VirtualCameraSink,
    virtual_camera_help,
)
from avatarify_app.pipeline.slot import LatestSlot
from avatarify_app.pipeline.sources import (
    CameraInfo,
    CameraSource,
    ImageSource,
    Source,
    VideoFileSource,
    list_cameras,
    open_source,
)
from avatarify_app.pipeline.stats import SinkStats, Stats, StatsWindow

__all__ = [
    "REFERENCE_REASONS",
    "STATUSES",
    "CameraInfo",
    "CameraSource",
    "ErrorEvent",
    "FrameEvent",
    "ImageSource",
    "LatestSlot",
    "NullSink",
    "PreviewSink",
    "RecorderSink",
    "ReferenceEvent",
    "Session",
    "Sink",
    "SinkStats",
    "Source",
    "Stats",
    "StatsWindow",
    "VideoFileSource",
    "VirtualCameraSink",
    "list_cameras",
    "open_source",
    "placeholder_frame",
    "virtual_camera_help",
]
