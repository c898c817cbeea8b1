"""Reading weight files safely, for every model family.

``load_weights(path)`` reads a PyTorch file (``.pth``, ``.pth.tar``, ``.pt``) with
``torch.load(weights_only=True)`` (tensors and plain containers only, so a pickle that would
run code is refused before anything runs) or a ``.safetensors`` file (no pickle at all).
Every failure is a ``CheckpointError`` that says what the file is (an empty file, a web page,
an image, a truncated archive, ...) and what to do; torch's own advice to retry with
``weights_only=False`` is never repeated: for an untrusted file that advice runs its code.

``check_state_dict`` compares a state dict with a module key for key and shape for shape;
each family passes its own hint function that turns a mismatch into the config change
that fixes it.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import struct
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from avatarify_app.errors import CheckpointError

SAFE_MODULES = ("torch", "collections", "numpy")
SAFETENSORS_SUFFIX = ".safetensors"

# What the first bytes of a file say it is (for messages about files that are not weights).
_MAGIC = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive (unpack it first)"),
    (b"7z\xbc\xaf", "a 7-Zip archive (unpack it first)"),
    (b"Rar!", "a RAR archive (unpack it first)"),
    (b"BZh", "a bzip2 archive (unpack it first)"),
    (b"\xfd7zXZ", "an xz archive (unpack it first)"),
    (b"git-lfs", "a Git LFS pointer, not the weights (fetch the real file with `git lfs pull`)"),
    (b"version https://git-lfs", "a Git LFS pointer, not the weights (fetch the real file with `git lfs pull`)"),
)

HintFn = Callable[[str, str, "tuple[int, ...] | None", "tuple[int, ...] | None"], "str | None"]


def describe_file(path: Path) -> str:
    """A few words on what ``path`` holds, judged from its first bytes (never by running it)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(512)
    except OSError as err:
        return f"an unreadable file ({err.strerror or err})"
    if size == 0:
        return "an empty file"
    for magic, text in _MAGIC:
        if head.startswith(magic):
            return text
    lowered = head.lstrip().lower()
    if lowered.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head")):
        return "a web page (HTML), not the weights: the download saved an error or login page"
    if lowered.startswith((b"{", b"[")):
        return "a JSON/text file"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if any(n.endswith("data.pkl") for n in names):
            return "a PyTorch archive"
        return "a ZIP archive that is not a PyTorch checkpoint (unpack it and use the file inside)"
    if head[:2] == b"PK":
        return "a truncated ZIP/PyTorch archive (the download stopped early)"
    if head[:1] == b"\x80":
        return "a raw pickle"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return f"a binary file of {size} bytes in no format a checkpoint has"
    return "a text file"


SCAN_LIMIT = 64 << 20  # bytes of a non-ZIP file scanned for pickles (the objects come before the tensors)


def _pickle_bytes(path: Path) -> bytes:
    """The pickled part of a weights file: ``data.pkl`` of a ZIP checkpoint, else the first
    SCAN_LIMIT bytes (a legacy torch file is several pickles followed by raw tensor data)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            member = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
            return archive.read(member) if member else b""
    with path.open("rb") as f:
        return f.read(SCAN_LIMIT)


def _pickle_ops(data: bytes) -> Iterator[tuple[str, Any]]:
    """(opcode name, argument) of each pickle in ``data``, one after the other, read with
    pickletools (which never runs anything); stops quietly where the bytes stop being a pickle."""
    pos = 0
    while pos < len(data):
        stream = io.BytesIO(data[pos:])
        end = None
        try:
            for op, arg, at in pickletools.genops(stream):
                yield op.name, arg
                if op.name == "STOP":
                    end = at + 1
        except (ValueError, EOFError, KeyError, IndexError, UnicodeDecodeError, struct.error):
            return
        if end is None:
            return
        pos += end


def foreign_globals(path: Path) -> list[str]:
    """Callables outside torch/collections/numpy that the file's pickles name, found by reading
    their opcodes. Empty when the bytes are not a pickle."""
    try:
        data = _pickle_bytes(path)
    except (OSError, KeyError, zipfile.BadZipFile):
        return []
    names: list[str] = []
    strings: list[str] = []
    for op, arg in _pickle_ops(data):
        if op == "GLOBAL":
            names.append(str(arg).replace(" ", "."))
        elif op == "STACK_GLOBAL" and len(strings) >= 2:
            names.append(f"{strings[-2]}.{strings[-1]}")
        elif isinstance(arg, str):
            strings.append(arg)
    return [n for n in dict.fromkeys(names) if not n.startswith(SAFE_MODULES)]


def pickled_strings(path: str | Path) -> set[str]:
    """Every string a weights file's pickles hold (dict keys among them), read without loading
    a tensor or running anything: enough to tell which model family a file is for. A
    ``.safetensors`` file gives its tensor names; an unreadable file gives an empty set."""
    p = Path(path)
    try:
        if p.name.endswith(SAFETENSORS_SUFFIX):
            from safetensors import SafetensorError, safe_open

            try:
                with safe_open(str(p), framework="pt") as f:
                    return set(f.keys())
            except SafetensorError:
                return set()
        data = _pickle_bytes(p)
    except (OSError, KeyError, ValueError, RuntimeError, zipfile.BadZipFile):  # unreadable: tells nothing
        return set()
    return {arg for op, arg in _pickle_ops(data) if isinstance(arg, str) and op != "GLOBAL"}


def _first_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    # torch appends advice about weights_only=False; it is never what an untrusted file needs.
    lines = [ln for ln in lines if "weights_only" not in ln and "WeightsUnpickler" not in ln]
    return lines[0].strip() if lines else ""


def load_weights(path: str | Path, get_hint: str) -> Any:
    """The object stored in ``path`` (tensors in plain containers), read without running code.

    ``get_hint`` says where the right file comes from; it ends every "wrong file" message.
    """
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"Weights not found: {p}", get_hint)
    if not p.is_file():
        raise CheckpointError(f"{p} is a folder, not a file.", get_hint)
    if p.stat().st_size == 0:
        raise CheckpointError(f"{p} is an empty file.", f"The download or copy failed; get it again. {get_hint}")
    if p.name.endswith(SAFETENSORS_SUFFIX):
        return _load_safetensors(p, get_hint)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # pickle-protocol notes; errors still raise
            return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        # A GLOBAL naming a callable is what a code-running pickle needs; other unpickler
        # complaints (an unknown opcode, say) mean random bytes, not an attack.
        foreign = foreign_globals(p)
        if foreign or any(k in text.lower() for k in ("unsupported global", "unsupported class")):
            named = f" ({', '.join(foreign[:3])})" if foreign else ""
            raise CheckpointError(
                f"Refused to load {p}: it contains Python objects other than tensors{named}, which "
                "could run code when loaded. Nothing in it was run.",
                "Only use weights from a source you trust; the authors' released files load as they are.",
            ) from err
        raise CheckpointError(f"{p} is not a PyTorch checkpoint: it is {describe_file(p)}.", get_hint) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError) as err:
        kind = describe_file(p)
        detail = _first_line(str(err))
        if kind == "a PyTorch archive":  # the archive opened but its contents are broken
            message = f"{p} is a damaged PyTorch checkpoint ({detail or 'unreadable contents'})."
        elif kind.startswith("a truncated"):
            message = f"{p} is {kind}."
        else:
            message = f"{p} is not a PyTorch checkpoint: it is {kind}."
        raise CheckpointError(message, f"Download it again from the source named here: {get_hint}") from err


def _load_safetensors(p: Path, get_hint: str) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(p), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{p} is not a readable .safetensors file: it is {describe_file(p)} "
                              f"({_first_line(str(err)) or 'bad header'}).", get_hint) from err


def strip_prefix(sd: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """``sd`` without ``prefix`` (e.g. DataParallel's ``module.``) when every key has it."""
    if sd and all(k.startswith(prefix) for k in sd):
        return {k[len(prefix):]: v for k, v in sd.items()}
    return dict(sd)


def as_state_dict(path: Path | str, name: str, value: Any, get_hint: str) -> dict[str, torch.Tensor]:
    """``value`` as a state dict of tensors, or a CheckpointError naming the part."""
    if not isinstance(value, Mapping) or not all(isinstance(v, torch.Tensor) for v in value.values()):
        raise CheckpointError(f"{path}: '{name}' is not a state dict of tensors.", get_hint)
    return dict(value)


def _listing(label: str, keys: list[str], limit: int) -> str:
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return f"{label}: " + ", ".join(keys[:limit]) + more


def check_state_dict(path: Path | str, part: str, model: nn.Module, sd: Mapping[str, torch.Tensor],
                     hint: HintFn | None = None, config_hint: str = "") -> None:
    """Raise ``CheckpointError`` unless ``sd`` has exactly the model's keys and shapes.

    ``hint(part, key, expected_shape, found_shape)`` may name the config change that fixes a
    mismatch; ``config_hint`` is said when no hint applies.
    """
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
        problems.append(_listing("missing keys", missing, 6))
    if unexpected:
        problems.append(_listing("unexpected keys", unexpected, 6))
    if hint is not None:
        for key in [*wrong, *missing, *unexpected]:
            h = hint(part, key, own.get(key), theirs.get(key))
            if h and h not in hints:
                hints.append(h)
    raise CheckpointError(f"{path}: {part} weights do not fit the model: " + "; ".join(problems) + ".",
                          " ".join(hints) if hints else config_hint)
