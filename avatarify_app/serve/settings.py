"""What every replica is built with (no Ray import: the command builds it before Ray starts)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from avatarify_app.config import EngineConfig

SERVE_APP_NAME = "avatarify"  # the Serve application's name


def _builtin_engine() -> str:
    """The engine that needs nothing (the registry's fallback): what settings name by default."""
    from avatarify_app.engines.registry import REGISTRY

    return REGISTRY.fallback().name


@dataclass(frozen=True)
class ServerSettings:
    """What every replica is built with (plain values: they travel to the replicas as JSON-able data)."""

    engine: dict[str, Any] = field(default_factory=lambda: {"name": _builtin_engine()})
    random_weights: bool = False
    token: str | None = None
    batching: bool = True
    max_batch_size: int = 8
    batch_wait_ms: float = 2.0
    loopback: bool = False  # every Ray node on 127.0.0.1: keep the replicas' own gRPC port there too

    def engine_config(self) -> EngineConfig:
        e = self.engine
        return EngineConfig(name=e["name"], device=e.get("device", "auto"), half=e.get("half"),
                            options=dict(e.get("options") or {}))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
