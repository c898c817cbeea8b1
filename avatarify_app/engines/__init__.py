"""Animation engines behind one protocol (``engines.base.Engine``), found through the registry
(``engines.registry``): one subpackage per engine, each registering an ``EngineSpec``.

Engines never import each other; only the registry knows them all (by module path).
"""

from __future__ import annotations

from avatarify_app.engines.base import Engine
from avatarify_app.engines.registry import (
    REGISTRY,
    Availability,
    Choice,
    EngineOption,
    EngineSpec,
    add_engine_arguments,
    create_engine,
    engine_config_from_args,
    engine_config_if_given,
)

__all__ = [
    "REGISTRY",
    "Availability",
    "Choice",
    "Engine",
    "EngineOption",
    "EngineSpec",
    "add_engine_arguments",
    "create_engine",
    "engine_config_from_args",
    "engine_config_if_given",
]
