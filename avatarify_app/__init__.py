"""avatarify_app: animate a still portrait from a webcam (First Order Motion Model)."""

__version__ = "0.1.0"
