"""The FOMM per-frame stages on ONNX Runtime's CPU provider, exported once and cached on disk.

Graphs are exported from the (BN-folded) stage modules with fixed batch-1 shapes, written
atomically under ``paths.user_cache_dir()/fomm-onnx/<key>/`` where the key hashes the weights
(every tensor's bytes), the modules' hyper-parameters, the crop size and the exporter
versions, so a different checkpoint or config never meets a stale graph. Source-derived
tensors are graph inputs (see ``fomm_stages``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from avatarify_app.errors import EngineError
from avatarify_app.paths import user_cache_dir

log = logging.getLogger(__name__)

EXPORT_VERSION = "fomm-stages-1"
OPSET = 18


def physical_cores() -> int:
    """Physical CPU cores (ONNX Runtime's intra-op threads), at least 1."""
    try:
        import psutil

        n = psutil.cpu_count(logical=False)
        if n:
            return int(n)
    except ImportError:
        pass
    return max(1, os.cpu_count() or 1)


def _code_version() -> bytes:
    """The source of every module that shapes the exported graphs (models and rewrites)."""
    import avatarify_app.engines.common.fuse as common_fuse
    import avatarify_app.engines.common.winograd as common_winograd
    import avatarify_app.engines.fomm.fuse as fuse
    import avatarify_app.engines.fomm.stages as stages
    import avatarify_app.engines.fomm.winograd as winograd
    import avatarify_app.models as models

    files = [Path(m.__file__) for m in (fuse, stages, winograd, common_fuse, common_winograd)]
    files += sorted(Path(models.__file__).parent.glob("*.py"))
    return b"".join(f.read_bytes() for f in files)


def fingerprint(modules: dict[str, nn.Module], extra: str = "") -> str:
    """Hash of every state-dict tensor (name, shape, dtype, bytes), the code that builds the
    graphs, the exporter's versions and ``extra`` text."""
    import onnx

    h = hashlib.blake2b(digest_size=16)
    h.update(f"{EXPORT_VERSION}|{torch.__version__}|{onnx.__version__}|{OPSET}|{extra}".encode())
    h.update(_code_version())
    for part, module in modules.items():
        for name, tensor in module.state_dict().items():
            t = tensor.detach().cpu().contiguous()
            h.update(f"{part}.{name}|{tuple(t.shape)}|{t.dtype}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def cache_directory(key: str) -> Path:
    return user_cache_dir() / "fomm-onnx" / key


def export_graph(module: nn.Module, example: tuple[torch.Tensor, ...], path: Path) -> Path:
    """Export ``module`` (with ``input_names``/``output_names``) to ``path`` atomically, once."""
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".onnx.tmp", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(module.eval(), example, tmp, dynamo=False, opset_version=OPSET,
                              input_names=list(module.input_names), output_names=list(module.output_names),
                              do_constant_folding=True)
        os.replace(tmp, path)
    except Exception as err:
        Path(tmp).unlink(missing_ok=True)
        raise EngineError(f"Exporting the FOMM {path.stem} stage to ONNX failed: {err}",
                          "Use the torch backend (--backend torch).") from err
    finally:
        Path(tmp).unlink(missing_ok=True)
    log.info("exported %s", path)
    return path


class OnnxStage:
    """One ONNX Runtime session called with torch CPU tensors, returning float32 torch tensors."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or physical_cores()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # The three stages run one after another: a session's idle workers must not spin on the
        # cores the next session needs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types
            raise EngineError(f"ONNX Runtime cannot load {path}: {err}",
                              f"Delete {path.parent} to export it again, or use --backend torch.") from err
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.path = path

    def __call__(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feeds = {name: np.ascontiguousarray(a.detach().cpu().float().numpy())
                 for name, a in zip(self.input_names, args, strict=True)}
        return tuple(torch.from_numpy(o) for o in self.session.run(None, feeds))

    def close(self) -> None:
        self.session = None
