"""The LivePortrait engine's registration: options, detection of the released folder, factories.

Importing this is cheap (no torch): the engine and the networks load when a factory runs, and
``detect`` only looks for files (and asks torch about CUDA when the files are there and the
device is "auto").
"""

from __future__ import annotations

import logging
from pathlib import Path

from avatarify_app.config import EngineConfig, MotionOptions
from avatarify_app.engines.registry import Availability, EngineOption, EngineSpec
from avatarify_app.errors import CheckpointError
from avatarify_app.paths import CHECKPOINTS_DIR

log = logging.getLogger(__name__)

FOLDER_NAME = "liveportrait"
BASE_NETWORKS = ("appearance_feature_extractor", "motion_extractor", "warping_module", "spade_generator")
SUFFIXES = (".safetensors", ".pth")
CPU_SECONDS_PER_FRAME = 5.7
"""Seconds per driving frame of the released sizes on a 2-core CPU in float32 with the fast
runtime that ``backend auto`` picks there (engines/liveportrait/fast.py): 5.7 s on a quiet
machine, against 8.9 s for the authors' eager modules (scripts/bench_liveportrait_cpu.py).
``bench --engine liveportrait --device cpu`` measures it."""
FOLLOW = -0.1
"""``eye_open`` / ``mouth_open`` value (any negative one) that leaves the eyes / mouth to the driver."""
GET_HINT = ("Put the authors' released weights (KwaiVGI/LivePortrait on HuggingFace, folder liveportrait/) in "
            "checkpoints/liveportrait/ (see checkpoints/README.md), or pass --checkpoint FOLDER.")


def default_folder() -> Path:
    return CHECKPOINTS_DIR / FOLDER_NAME


def weights_folder(config: EngineConfig) -> Path:
    """The release folder to read: ``--checkpoint`` or checkpoints/liveportrait, or the
    ``liveportrait/`` folder inside it when it holds the whole download (the authors'
    ``huggingface-cli download KwaiVGI/LivePortrait --local-dir DIR`` puts ``liveportrait/``,
    ``insightface/`` and ``liveportrait_animals/`` in DIR); a file of the release names its folder."""
    folder = Path(config.checkpoint) if config.checkpoint else default_folder()
    if folder.is_file() and folder.parent.name in ("base_models", "retargeting_models"):
        return folder.parent.parent  # a file of the release (a file dialog picks files)
    inner = folder / FOLDER_NAME
    if not (folder / "base_models").is_dir() and (inner / "base_models").is_dir():
        log.info("using %s (the LivePortrait folder of the download in %s)", inner, folder)
        return inner
    return folder


def missing_files(folder: Path) -> list[str]:
    """The released base-model files absent from ``folder`` (.pth or .safetensors each)."""
    return [f"base_models/{name}.pth" for name in BASE_NETWORKS
            if not any((folder / "base_models" / f"{name}{s}").is_file() for s in SUFFIXES)]


def _device_reason(config: EngineConfig) -> tuple[bool, str]:
    """(can run live here, why not)."""
    device = config.device or "auto"
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        return True, "on CUDA"
    if device == "mps":
        return False, "its speed on mps is not measured; choose it with --engine liveportrait"
    return False, (f"on the CPU a frame takes about {CPU_SECONDS_PER_FRAME:.0f} s, far from live: use a GPU or a "
                   "remote server (`serve`)")


def detect(config: EngineConfig) -> Availability:
    folder = weights_folder(config)
    if folder.is_file():
        return Availability(False, f"{folder} is a file, not a LivePortrait folder")
    if not folder.is_dir():
        where = "checkpoints/liveportrait" if not config.checkpoint else str(folder)
        return Availability(False, f"no LivePortrait weights in {where} (see checkpoints/README.md)")
    missing = missing_files(folder)
    if missing:
        return Availability(False, f"{folder} lacks {', '.join(missing)}")
    live, why = _device_reason(config)
    return Availability(True, f"weights in {folder}, {why}", auto=live)


def create(config: EngineConfig, motion: MotionOptions):
    folder = weights_folder(config)
    if not folder.is_dir():
        raise CheckpointError(f"LivePortrait weights folder not found: {folder}", GET_HINT)
    from avatarify_app.engines.liveportrait.engine import LivePortraitEngine

    return LivePortraitEngine.from_config(config, folder, motion)


def create_random(config: EngineConfig, motion: MotionOptions):
    """The released network sizes with random weights (speed does not depend on the values)."""
    if config.checkpoint:
        return create(config, motion)
    from avatarify_app.engines.liveportrait.engine import LivePortraitEngine
    from avatarify_app.models import build_liveportrait

    models = build_liveportrait(config.option("model_config")).eval()
    return LivePortraitEngine(models, device=config.device, half=config.half, backend=config.option("backend", "auto"),
                              options=motion, controls=config.options)


SPEC = EngineSpec(
    name="liveportrait",
    display_name="LivePortrait (neural network)",
    summary="LivePortrait (Guo et al. 2024): head pose and expressions in 3D, 512 px; needs the authors' "
            "weights and a GPU to run live",
    factory=create,
    detect=detect,
    bench_factory=create_random,
    half=True,
    options=(
        EngineOption("checkpoint", "folder", label="Weights folder",
                     help="weights: the LivePortrait folder as the authors release it (default: "
                          "checkpoints/liveportrait)"),
        EngineOption("model_config", "path", label="Model config",
                     help="the authors' models.yaml for these weights (default: the released sizes)"),
        EngineOption("backend", "choice", default="auto", choices=("auto", "torch", "fast"), label="Runtime",
                     help="LivePortrait per-frame runtime (auto: the fast CPU runtime where installed, else torch)"),
        EngineOption("stitching", "bool", default=True, live=True, label="Stitching",
                     help="stitch the animated face to the shoulders (the authors' stitching network)"),
        EngineOption("driving_multiplier", "float", default=1.0, minimum=0.0, maximum=2.0, step=0.05, live=True,
                     label="Motion strength", help="scale of the driving motion (the authors' driving multiplier)"),
        EngineOption("expression_friendly", "bool", default=False, live=True, label="Expression-friendly",
                     help="absolute motion re-anchored on the avatar at the reference frame, scaled by the "
                          "keypoints' hull volumes (the authors' expression-friendly driving; no change in "
                          "relative mode)"),
        EngineOption("animation_region", "choice", default="all", choices=("all", "pose", "exp", "lip", "eyes"),
                     live=True, label="Animated region",
                     help="what the driver moves: all, pose (head only), exp (expressions only), lip or eyes"),
        EngineOption("eye_open", "float", default=FOLLOW, minimum=FOLLOW, maximum=0.8, step=0.01, live=True,
                     label="Eye openness", minimum_text="driver",
                     help="eyes-open ratio for the avatar, 0 (closed) to 0.8 (wide), through the eye retargeting "
                          "network; below 0 the eyes follow the driver"),
        EngineOption("mouth_open", "float", default=FOLLOW, minimum=FOLLOW, maximum=0.8, step=0.01, live=True,
                     label="Mouth openness", minimum_text="driver",
                     help="lip-open ratio for the avatar, 0 (closed) to 0.8 (wide), through the lip retargeting "
                          "network; below 0 the mouth follows the driver"),
        EngineOption("retargeting", "bool", default=False, live=True, label="Eye/lip retargeting",
                     help="eyes and mouth that follow the driver take its open ratios measured on the face mesh, "
                          "through the retargeting networks (the authors' eye/lip retargeting)"),
        EngineOption("normalize_lip", "bool", default=False, live=True, label="Close the mouth first",
                     help="an avatar with an open mouth starts from a closed one (the authors' normalize lip)"),
    ),
)
