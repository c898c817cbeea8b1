"""Output files the commands write (``animate --output``, ``live --record``): checked before any
work starts, so an existing file is never replaced by surprise."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from avatarify_app.errors import ConfigError


def check_output(path: str | Path, *, force: bool, flag: str, inputs: Iterable[str | Path | None] = ()) -> Path:
    """``path`` when the command may write it: it does not exist, or ``force`` allows replacing
    it. A folder, or one of the command's ``inputs``, is refused even with ``force``.

    ``flag`` names the option in the message (e.g. "--output"). Raises ConfigError.
    """
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"{flag} {target} is a folder.", f"Give a file name, e.g. {flag} {target / 'out.mp4'}.")
    if not target.exists():
        return target
    for item in inputs:
        if item is not None and Path(item).exists() and os.path.samefile(target, item):
            raise ConfigError(f"{flag} {target} is also an input of this command.",
                              f"Pick another file name for {flag}.")
    if not force:
        raise ConfigError(f"{target} exists already; it was left as it is.",
                          f"Pass --force to replace it, or pick another file name for {flag}.")
    return target
