"""One exception family for the program's boundaries.

Every error carries a message that says what happened and, in ``hint``, what the user
can do about it. ``str(err)`` gives both, so a dialog or the CLI can show it as is.
"""

from __future__ import annotations


class AvatarifyError(Exception):
    """Base class of every error the app reports to a user."""

    default_hint: str = ""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = self.default_hint if hint is None else hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class ConfigError(AvatarifyError):
    """A configuration value or file is invalid."""


class CheckpointError(AvatarifyError):
    """A model checkpoint is missing, unreadable, unsafe or does not fit the model."""


class BadImageError(AvatarifyError):
    """An image file cannot be read or is not a usable picture."""

    default_hint = "Use a JPEG or PNG photo (RGB or grayscale) of at least 64x64 pixels."


class NoFaceError(AvatarifyError):
    """No face was found where one is needed."""

    default_hint = "Use a photo with one clearly visible, roughly frontal face."


class SourceError(AvatarifyError):
    """A driving source (camera, video file, image) failed."""


class CameraError(SourceError):
    """A camera cannot be opened or stopped delivering frames."""

    default_hint = (
        "Check that the camera is connected and not used by another program, "
        "or pass a video file with --camera PATH."
    )


class SinkError(AvatarifyError):
    """An output (virtual camera, recorder, preview) failed."""


class VirtualCameraUnavailable(SinkError):
    """No virtual camera device can be opened on this machine."""


class EngineError(AvatarifyError):
    """An animation engine cannot be built or run."""
