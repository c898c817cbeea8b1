"""The FOMM engine's registration: options, detection of the authors' checkpoint, factories.

Importing this is cheap (no torch): ``engine.FommEngine`` and the networks load when the
factory runs.
"""

from __future__ import annotations

import logging
from pathlib import Path

from avatarify_app.config import EngineConfig, MotionOptions
from avatarify_app.engines.registry import Availability, EngineOption, EngineSpec
from avatarify_app.errors import CheckpointError, ConfigError
from avatarify_app.paths import CHECKPOINTS_DIR

log = logging.getLogger(__name__)

# The authors' files, in the order auto-detection prefers them.
CHECKPOINT_NAMES = ("vox-adv-cpk.pth.tar", "vox-cpk.pth.tar")
CHECKPOINT_SUFFIXES = (".pth.tar", ".pth", ".pt", ".tar", ".safetensors")
# Strings a FOMM checkpoint's pickle holds (its two parts' names).
FOMM_PARTS = ("kp_detector", "generator")
GET_HINT = ("Put vox-adv-cpk.pth.tar or vox-cpk.pth.tar in checkpoints/ (see checkpoints/README.md), "
            "pass --checkpoint PATH, or use --engine landmarks.")


def is_fomm_checkpoint(path: Path) -> bool:
    """True when ``path``'s pickle names both FOMM parts (read from its opcodes, nothing loaded)."""
    from avatarify_app.models.safe_load import pickled_strings

    return set(FOMM_PARTS) <= pickled_strings(path)


def find_checkpoint(directory: Path | None = None) -> Path | None:
    """The FOMM checkpoint auto-detection uses: the authors' names first, then any weights file
    whose contents are a FOMM checkpoint. Files that are not one are skipped with a log line."""
    folder = CHECKPOINTS_DIR if directory is None else Path(directory)
    if not folder.is_dir():
        return None
    named = [folder / n for n in CHECKPOINT_NAMES if (folder / n).is_file()]
    others = sorted(p for p in folder.iterdir()
                    if p.is_file() and p.name.endswith(CHECKPOINT_SUFFIXES) and p not in named)
    for path in [*named, *others]:
        if is_fomm_checkpoint(path):
            return path
        log.warning("%s is not a FOMM checkpoint (it has no kp_detector and generator weights); skipped", path)
    return None


def model_config_for(config: EngineConfig, checkpoint: Path) -> Path | None:
    """The YAML that describes ``checkpoint``: the configured one, else one beside it, else None
    (the shipped vox-256 config)."""
    configured = config.option("model_config")
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise ConfigError(f"Model config not found: {path}", "Pass the authors' YAML for this checkpoint.")
        return path
    stem = checkpoint.name.removesuffix(".tar").removesuffix(".pth")
    for suffix in (".yaml", ".yml"):
        beside = checkpoint.with_name(stem + suffix)
        if beside.is_file():
            return beside
    return None


def _checkpoint(config: EngineConfig) -> Path | None:
    return Path(config.checkpoint) if config.checkpoint else find_checkpoint()


def detect(config: EngineConfig) -> Availability:
    if config.checkpoint:
        path = Path(config.checkpoint)
        if path.is_file():
            return Availability(True, f"checkpoint {path}")
        return Availability(False, f"checkpoint {path} not found")
    found = find_checkpoint()
    if found is None:
        return Availability(False, "no FOMM checkpoint in checkpoints/ (see checkpoints/README.md)")
    return Availability(True, f"checkpoint {found}")


def create(config: EngineConfig, motion: MotionOptions):
    checkpoint = _checkpoint(config)
    if checkpoint is None:
        raise CheckpointError("The FOMM engine needs a checkpoint and none was found in checkpoints/.", GET_HINT)
    from avatarify_app.engines.fomm.engine import FommEngine

    return FommEngine.from_config(config, checkpoint, motion, model_params=model_config_for(config, checkpoint))


def create_random(config: EngineConfig, motion: MotionOptions):
    """The vox-256 networks with random weights (speed does not depend on the values)."""
    if config.checkpoint:
        return create(config, motion)
    from avatarify_app.engines.fomm.engine import FommEngine
    from avatarify_app.models.fomm import build_models, load_model_params

    kp_detector, generator = build_models(load_model_params(config.option("model_config")))
    return FommEngine(kp_detector.eval(), generator.eval(), device=config.device, half=config.half,
                      backend=config.option("backend", "auto"), options=motion)


SPEC = EngineSpec(
    name="fomm",
    display_name="FOMM (neural network)",
    summary="First Order Motion Model; needs the authors' checkpoint, real time on a GPU",
    factory=create,
    detect=detect,
    bench_factory=create_random,
    half=True,
    options=(
        EngineOption("checkpoint", "path", help="weights: a FOMM .pth.tar file (default: found in checkpoints/)",
                     label="Checkpoint"),
        EngineOption("model_config", "path", help="the authors' YAML for a FOMM checkpoint that is not vox-256 "
                     "(default: a YAML beside the checkpoint with its name, else vox-256)", label="Model config"),
        EngineOption("backend", "choice", default="auto", choices=("auto", "torch", "onnx"),
                     help="FOMM per-frame runtime on CPU (auto: ONNX Runtime)", label="CPU runtime"),
    ),
)
