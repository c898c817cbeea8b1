"""The live pipeline: sources, the session (capture + inference threads), sinks, stats.

See ``docs/CONTRACTS.md`` (pipeline) and ``session.py`` for threads and output policy.
"""

from avatarify_app.pipeline.session import (
    REFERENCE_REASONS,
    STATUSES,
    ErrorEvent,
    FrameEvent,
    LatestSlot,
    ReferenceEvent,
    Session,
    placeholder_frame,
)
from avatarify_app.pipeline.sinks import (
    NullSink,
    PreviewSink,
    RecorderSink,
    Sink,
    VirtualCameraSink,
    virtual_camera_help,
)
from avatarify_app.pipeline.sources import (
    CameraInfo,
    CameraSource,
    ImageSource,
    Source,
    VideoFileSource,
    list_cameras,
    open_source,
)
from avatarify_app.pipeline.stats import Stats, StatsWindow

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
