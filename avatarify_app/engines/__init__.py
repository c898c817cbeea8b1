"""Animation engines behind one protocol (see ``engines.base.Engine``)."""

from __future__ import annotations

from pathlib import Path

from avatarify_app.config import EngineConfig, MotionOptions
from avatarify_app.engines.base import Engine
from avatarify_app.errors import CheckpointError, ConfigError
from avatarify_app.paths import find_checkpoint

__all__ = ["Engine", "create_engine", "model_config_for", "resolve_engine_name"]


def resolve_engine_name(config: EngineConfig) -> tuple[str, Path | None]:
    """Turn "auto" into a concrete engine name and find the checkpoint FOMM would use."""
    checkpoint = Path(config.checkpoint) if config.checkpoint else find_checkpoint()
    if config.name == "auto":
        return ("fomm" if checkpoint is not None else "landmarks"), checkpoint
    if config.name not in ("fomm", "landmarks"):
        raise ConfigError(f"Unknown engine {config.name!r}", "Use auto, fomm or landmarks.")
    return config.name, checkpoint


def model_config_for(config: EngineConfig, checkpoint: Path) -> Path | None:
    """The YAML that describes ``checkpoint``: the configured one, else one beside it, else None
    (the shipped vox-256 config)."""
    if config.model_config:
        path = Path(config.model_config)
        if not path.is_file():
            raise ConfigError(f"Model config not found: {path}", "Pass the authors' YAML for this checkpoint.")
        return path
    stem = checkpoint.name.removesuffix(".tar").removesuffix(".pth")
    for suffix in (".yaml", ".yml"):
        beside = checkpoint.with_name(stem + suffix)
        if beside.is_file():
            return beside
    return None


def create_engine(config: EngineConfig, options: MotionOptions | None = None) -> Engine:
    """Build the engine ``config`` asks for (imports torch-heavy modules lazily)."""
    name, checkpoint = resolve_engine_name(config)
    options = options or MotionOptions()
    if name == "fomm":
        if checkpoint is None:
            raise CheckpointError(
                "The FOMM engine needs a checkpoint and none was found in checkpoints/.",
                "Put vox-adv-cpk.pth.tar or vox-cpk.pth.tar in checkpoints/ (see checkpoints/README.md), "
                "pass --checkpoint PATH, or use --engine landmarks.",
            )
        from avatarify_app.engines.fomm import FommEngine

        return FommEngine.from_config(config, checkpoint, options, model_params=model_config_for(config, checkpoint))
    from avatarify_app.engines.landmarks import LandmarkEngine

    return LandmarkEngine.from_config(config, options)
