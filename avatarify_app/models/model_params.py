"""Reading and checking ``model_params`` (the authors' YAML layout), for every model family.

Each family (``models/fomm``, ``models/liveportrait``) names its sections, its networks and the
hint its errors carry; what reading a config and checking a section against a network's
constructor means is the same for all of them, and lives here.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from avatarify_app.errors import ConfigError


def read_model_params(source: str | Path | Mapping[str, Any], sections: Sequence[str],
                      hint: str) -> tuple[Mapping[str, Any], str]:
    """(``model_params`` mapping, where it came from) from a YAML path or a mapping, with a top-level
    ``model_params`` key or without; every name in ``sections`` must be a mapping in it."""
    if isinstance(source, (str, Path)):
        data, origin = read_yaml(Path(source), hint), str(source)
    elif isinstance(source, Mapping):
        data, origin = source, "model_params"
    else:
        raise ConfigError(f"model_params must be a mapping or a YAML path, got {type(source).__name__}", hint)
    params = data.get("model_params", data) if isinstance(data, Mapping) else None
    if not isinstance(params, Mapping):
        raise ConfigError(f"{origin}: no model_params mapping found.", hint)
    missing = [s for s in sections if not isinstance(params.get(s), Mapping)]
    if missing:
        raise ConfigError(f"{origin}: model_params lacks {', '.join(missing)}.", hint)
    return params, origin


def read_yaml(path: Path, hint: str) -> Any:
    import yaml

    if not path.is_file():
        raise ConfigError(f"Model config not found: {path}", hint)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"Cannot read model config {path}: {err}", hint) from err


def check_keys(origin: str, section: str, values: Mapping[str, Any], cls: type, hint: str, *,
               supplied: frozenset[str] = frozenset(), required: bool = False) -> None:
    """Keys of ``section`` that ``cls``'s constructor does not take are errors; with ``required``,
    so are its arguments without a default that ``values`` lacks. ``supplied`` are the arguments
    the parent network passes itself."""
    signature = inspect.signature(cls.__init__)
    accepted = set(signature.parameters) - {"self"} - supplied
    unknown = sorted(set(values) - accepted)
    if unknown:
        raise ConfigError(f"{origin}: unknown keys in {section}: {', '.join(unknown)}",
                          f"Accepted keys: {', '.join(sorted(accepted))}.")
    if required:
        needed = {n for n in accepted if signature.parameters[n].default is inspect.Parameter.empty}
        absent = sorted(needed - set(values))
        if absent:
            raise ConfigError(f"{origin}: {section} lacks {', '.join(absent)}.", hint)
