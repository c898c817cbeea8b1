"""Loading FOMM checkpoints safely and strictly.

Files are read with ``torch.load(weights_only=True)``: tensors and plain containers only, so
a pickle that would run code is refused before anything runs. Accepted layouts: the authors'
training files ({'generator', 'kp_detector', 'discriminator', 'optimizer_*', 'epoch'}) and
plain {'generator', 'kp_detector'} dicts of state dicts. Keys and shapes must match the model
built from ``model_params`` exactly; every mismatch is a ``CheckpointError`` naming the file,
the problem and, where the shapes tell, the config change that fixes it.
"""

from __future__ import annotations

import logging
import pickle
import pickletools
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from avatarify_app.errors import CheckpointError
from avatarify_app.models.generator import OcclusionAwareGenerator
from avatarify_app.models.keypoint_detector import KPDetector
from avatarify_app.models.params import build_models, load_model_params

log = logging.getLogger(__name__)

PARTS = ("kp_detector", "generator")
GET_HINT = "Use the authors' vox-cpk.pth.tar or vox-adv-cpk.pth.tar (see checkpoints/README.md)."
CONFIG_HINT = "Pass the model config the checkpoint was trained with (model_params YAML)."


_SAFE_MODULES = ("torch", "collections", "numpy")


def _foreign_globals(path: Path) -> list[str]:
    """Callables outside torch/collections/numpy that the file's pickle names, found by reading
    its opcodes (pickletools never runs anything). Empty when the bytes are not a pickle."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                member = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
                data = archive.read(member) if member else b""
        else:
            data = path.read_bytes()
        names: list[str] = []
        strings: list[str] = []
        for op, arg, _pos in pickletools.genops(data):
            if op.name == "GLOBAL":
                names.append(str(arg).replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                names.append(f"{strings[-2]}.{strings[-1]}")
            elif isinstance(arg, str):
                strings.append(arg)
    except (ValueError, OSError, EOFError, KeyError, IndexError, zipfile.BadZipFile):  # not a pickle
        return []
    return [n for n in dict.fromkeys(names) if not n.startswith(_SAFE_MODULES)]


def read_checkpoint(path: str | Path) -> dict[str, dict[str, torch.Tensor]]:
    """{'kp_detector': state_dict, 'generator': state_dict} from a checkpoint file, safely."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"Checkpoint not found: {p}", GET_HINT)
    if not p.is_file():
        raise CheckpointError(f"Checkpoint is not a file: {p}", GET_HINT)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # pickle-protocol notes; errors still raise
            data = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        # A GLOBAL naming a callable is what a code-running pickle needs; other unpickler
        # complaints (an unknown opcode, say) mean random bytes, not an attack.
        foreign = _foreign_globals(p)
        if foreign or any(k in text.lower() for k in ("unsupported global", "unsupported class")):
            named = f" ({', '.join(foreign[:3])})" if foreign else ""
            raise CheckpointError(
                f"Refused to load {p}: it contains Python objects other than tensors{named}, which "
                "could run code when loaded. Nothing in it was run.",
                "Only use checkpoints from a source you trust; the authors' files load as they are.",
            ) from err
        reason = text.split("WeightsUnpickler error:", 1)[-1].strip()
        raise CheckpointError(f"{p} is not a PyTorch checkpoint: corrupt, or another kind of file "
                              f"({_first_line(reason)}).", GET_HINT) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError) as err:
        raise CheckpointError(
            f"Cannot read {p}: the file is truncated or not a PyTorch checkpoint ({_first_line(str(err))}).",
            "Download it again; a complete vox-cpk.pth.tar is about 700 MB.",
        ) from err
    if not isinstance(data, Mapping):
        raise CheckpointError(f"{p} holds a {type(data).__name__}, not a FOMM checkpoint dict.", GET_HINT)
    missing = [k for k in PARTS if k not in data]
    if missing:
        found = ", ".join(sorted(map(str, data))[:8]) or "nothing"
        raise CheckpointError(f"{p} has no {' or '.join(missing)} weights (it holds: {found}).", GET_HINT)
    out = {}
    for part in PARTS:
        sd = data[part]
        if not isinstance(sd, Mapping) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
            raise CheckpointError(f"{p}: '{part}' is not a state dict of tensors.", GET_HINT)
        out[part] = _strip_prefix(dict(sd), "module.")
    return out


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "no detail"


def _strip_prefix(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    if sd and all(k.startswith(prefix) for k in sd):
        return {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def _hint(part: str, key: str, expected: tuple[int, ...] | None, found: tuple[int, ...] | None) -> str | None:
    """What config change makes ``part.key`` fit, when the shapes say so."""
    if part == "kp_detector" and key == "kp.weight" and expected and found and found[0] != expected[0]:
        return f"The file has num_kp = {found[0]}; set common_params.num_kp: {found[0]}."
    if part == "kp_detector" and key == "jacobian.weight":
        if found is None:
            return "The file has no Jacobian head; set common_params.estimate_jacobian: false."
        if expected is None:
            return "The file has a Jacobian head; set common_params.estimate_jacobian: true."
        if found[0] == 4 and expected[0] != 4:
            return "The file has a single Jacobian map; set kp_detector_params.single_jacobian_map: true."
        if expected[0] == 4 and found[0] != 4:
            return "The file has one Jacobian map per keypoint; set single_jacobian_map: false."
    if part == "generator" and key == "dense_motion_network.occlusion.weight":
        flag = "false" if found is None else "true"
        return f"Set generator_params.estimate_occlusion_map: {flag} (as the file was trained)."
    if part == "generator" and key == "dense_motion_network.mask.weight" and expected and found:
        return f"The file has num_kp = {found[0] - 1}; set common_params.num_kp: {found[0] - 1}."
    return None


def check_state_dict(path: Path | str, part: str, model: nn.Module, sd: Mapping[str, torch.Tensor]) -> None:
    """Raise ``CheckpointError`` unless ``sd`` has exactly the model's keys and shapes."""
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in sd.items()}
    # Files saved before BatchNorm counted batches lack num_batches_tracked; torch fills it in.
    missing = sorted(k for k in own if k not in theirs and not k.endswith("num_batches_tracked"))
    unexpected = sorted(k for k in theirs if k not in own)
    wrong = sorted(k for k in own if k in theirs and own[k] != theirs[k])
    if not (missing or unexpected or wrong):
        return
    problems, hints = [], []
    if wrong:
        problems.append("shape mismatch: " + "; ".join(
            f"{k} is {list(theirs[k])} in the file, the model expects {list(own[k])}" for k in wrong[:4])
            + (f" (+{len(wrong) - 4} more)" if len(wrong) > 4 else ""))
    if missing:
        problems.append("missing keys: " + ", ".join(missing[:6]) + (f" (+{len(missing) - 6} more)" if len(missing) > 6 else ""))
    if unexpected:
        problems.append("unexpected keys: " + ", ".join(unexpected[:6])
                        + (f" (+{len(unexpected) - 6} more)" if len(unexpected) > 6 else ""))
    for key in [*wrong, *missing, *unexpected]:
        h = _hint(part, key, own.get(key), theirs.get(key))
        if h and h not in hints:
            hints.append(h)
    raise CheckpointError(f"{path}: {part} weights do not fit the model: " + "; ".join(problems) + ".",
                          " ".join(hints) if hints else CONFIG_HINT)


def load_fomm(checkpoint_path: str | Path, model_params: Mapping[str, Any] | str | Path | None = None,
              ) -> tuple[KPDetector, OcclusionAwareGenerator]:
    """(kp_detector, generator) in eval mode on the CPU, loaded strictly from ``checkpoint_path``.

    ``model_params``: None = the shipped vox-256 config, a mapping in the authors' layout or a
    YAML path (an authors' config file as it is).
    """
    params = load_model_params(model_params)
    kp_detector, generator = build_models(params)
    parts = read_checkpoint(checkpoint_path)
    for name, module in (("kp_detector", kp_detector), ("generator", generator)):
        check_state_dict(checkpoint_path, name, module, parts[name])
        module.load_state_dict(parts[name], strict=True)
        module.eval()
    log.info("loaded FOMM checkpoint %s", checkpoint_path)
    return kp_detector, generator
