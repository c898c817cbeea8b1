"""Tiny LivePortrait networks with seeded weights for the engine tests (imported by name:
``from lp_engine_helpers import tiny_models``; pytest puts this folder on ``sys.path``)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
sys.path.insert(0, str(HERE.parent.parent / "models" / "liveportrait"))

from lp_helpers import fill_models, save_folder, tiny_params  # noqa: E402

SEED = 11  # the seed of the oracle cases in data/ (engine_cases.json)
TINY_INPUT = 64  # the tiny networks' crop side

__all__ = ["DATA", "SEED", "TINY_INPUT", "fill_models", "save_folder", "tiny_models", "tiny_params"]


def tiny_models(seed: int = SEED, **params):
    from avatarify_app.models import build_liveportrait

    return fill_models(build_liveportrait(tiny_params(**params)), seed=seed)
