"""A tiny FOMM for the model and engine tests: model_params that run in milliseconds, random weights.

Imported by name (``from fomm_helpers import tiny_params``): pytest puts ``tests/`` on
``sys.path`` for ``tests/conftest.py``, as it does each test folder for its own helpers.
"""

from __future__ import annotations

import copy

import torch

_TINY = {
    "common_params": {"num_kp": 4, "num_channels": 3, "estimate_jacobian": True},
    "kp_detector_params": {"temperature": 0.1, "block_expansion": 4, "max_features": 16,
                           "scale_factor": 0.25, "num_blocks": 3},
    "generator_params": {"block_expansion": 8, "max_features": 16, "num_down_blocks": 2,
                         "num_bottleneck_blocks": 2, "estimate_occlusion_map": True,
                         "dense_motion_params": {"block_expansion": 8, "max_features": 16,
                                                 "num_blocks": 3, "scale_factor": 0.25}},
}


def tiny_params(**overrides) -> dict:
    """model_params in the authors' layout for 64x64 images (features 16x16), a fresh copy.

    ``overrides`` are dotted paths: ``tiny_params(**{"common_params.num_kp": 3})``.
    """
    params = copy.deepcopy(_TINY)
    for dotted, value in overrides.items():
        *path, key = dotted.split(".")
        node = params
        for p in path:
            node = node[p]
        node[key] = value
    return params


def randomize(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights everywhere, including BatchNorm statistics and the Jacobian head."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if not t.is_floating_point() or name.endswith("down.weight"):
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith("running_mean") or name.endswith(".bias"):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            elif "norm" in name and name.endswith("weight"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                fan_in = max(1, t[0].numel())
                t.copy_(torch.randn(t.shape, generator=g) / fan_in**0.5)
        if getattr(module, "jacobian", None) is not None:
            module.jacobian.weight.mul_(0.1)
            module.jacobian.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0]).repeat(module.num_jacobian_maps))
    return module.eval()
