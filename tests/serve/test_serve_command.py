"""`python main.py serve` before Ray starts: the loopback environment comes first, exposure needs a
token, a taken port is named (fast: no Ray is started here)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from avatarify_app.cli import main
from avatarify_app.paths import PROJECT_ROOT

RAY_ENV = ("RAY_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_USAGE_STATS_ENABLED")

PROBE = """
import os, sys
import avatarify_app.serve.runtime as runtime

def connect(address=None, num_cpus=None):
    ray_before = "ray" in sys.modules
    runtime.prepare_environment(loopback=address is None)
    ok = (not ray_before and os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") == "0"
          and os.environ.get("RAY_USAGE_STATS_ENABLED") == "0")
    print("ray imported before:", ray_before, "env:", os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"))
    raise SystemExit(0 if ok else 1)

runtime.connect = connect
from avatarify_app.cli import main
main(["serve", "--engine", "landmarks", "--port", sys.argv[1]])
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_loopback_environment_is_set_before_anything_imports_ray():
    env = {k: v for k, v in os.environ.items() if k not in RAY_ENV}
    out = subprocess.run([sys.executable, "-c", PROBE, str(free_port())], capture_output=True, text=True,
                         env=env, cwd=PROJECT_ROOT, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_listening_beyond_loopback_needs_a_token(capsys, monkeypatch):
    monkeypatch.delenv("AVATARIFY_TOKEN", raising=False)
    assert main(["serve", "--engine", "landmarks", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "reachable from other machines" in err and "--token auto" in err


def test_a_taken_port_is_named(capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["serve", "--engine", "landmarks", "--port", str(busy.getsockname()[1])]) == 2
    assert "Cannot listen on 127.0.0.1" in capsys.readouterr().err


@pytest.mark.parametrize("argv, says", [
    (["--engine", "remote", "--server", "http://127.0.0.1:9"], "remote is the client"),
    (["--engine", "landmarks", "--server", "http://127.0.0.1:9"], "not an option of the landmarks engine"),
])
def test_what_it_cannot_serve_is_refused(argv, says, capsys):
    assert main(["serve", *argv]) == 2
    assert says in capsys.readouterr().err
