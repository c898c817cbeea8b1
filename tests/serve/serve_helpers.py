"""Helpers for the server tests: a real local Ray Serve on 127.0.0.1 (each module that needs one
starts it once) and the check that no Ray process outlives it."""

from __future__ import annotations

import importlib.util
import os
import socket
import time

import pytest

# Before anything imports ray: keep every Ray process on 127.0.0.1, no usage statistics.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ.pop("RAY_ADDRESS", None)

HAS_RAY = importlib.util.find_spec("ray") is not None and importlib.util.find_spec("fastapi") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason="the server extra is not installed (pip install -e .[server])")
TOKEN = "test-token-5f1c"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_processes() -> list:
    import psutil

    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            text = " ".join(proc.cmdline()) + proc.name()
        except psutil.Error:
            continue
        if "ray" in text:
            found.append(proc)
    return found


def start_server(**settings_kw):
    """A local Ray Serve with the landmark engine (or ``engine=...``) on a free 127.0.0.1 port."""
    from avatarify_app.serve.runtime import start
    from avatarify_app.serve.settings import ServerSettings

    start_kw = {k: settings_kw.pop(k) for k in list(settings_kw) if k in (
        "replicas", "min_replicas", "max_replicas", "cpus_per_replica", "max_replicas_per_node")}
    settings = ServerSettings(**{"engine": {"name": "landmarks"}, "token": TOKEN, **settings_kw})
    return start(settings, host="127.0.0.1", port=free_port(), num_cpus=2,
                 **{"replicas": 1, "cpus_per_replica": 0.5, **start_kw})


def stop_server(running) -> None:
    running.stop()
    deadline = time.monotonic() + 20
    while ray_processes() and time.monotonic() < deadline:
        time.sleep(0.5)
    left = [(p.pid, p.name()) for p in ray_processes()]
    assert not left, f"Ray processes left running: {left}"
