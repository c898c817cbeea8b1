"""Resolve the compute device once, at start-up."""

from __future__ import annotations

import torch

from avatarify_app.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """"auto" -> cuda if available, else mps, else cpu. An unavailable explicit choice is an error."""
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name.startswith("cuda") and not cuda:
        raise ConfigError("CUDA was asked for but this torch build sees no CUDA GPU.",
                          "Install a CUDA build of torch with a working NVIDIA driver, or use --device cpu.")
    if name == "mps" and not mps:
        raise ConfigError("MPS was asked for but is not available.", "Use --device cpu on this machine.")
    if name != "cpu" and not name.startswith(("cuda", "mps")):
        raise ConfigError(f"Unknown device {name!r}", "Use auto, cpu, cuda or mps.")
    return torch.device(name)


def describe_device(device: torch.device, half: bool = False) -> str:
    """Human-readable device name for status bars and reports."""
    if device.type == "cuda":
        text = f"cuda:{device.index or 0} {torch.cuda.get_device_name(device)}"
    elif device.type == "mps":
        text = "mps (Apple GPU)"
    else:
        text = f"cpu ({torch.get_num_threads()} threads)"
    return f"{text} fp16" if half else text
