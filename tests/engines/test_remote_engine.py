"""The remote engine's registration and client, without a server (tests/serve/ has the real one)."""

from __future__ import annotations

import argparse
import http.server
import socket
import subprocess
import sys
import threading
import time

import pytest

from avatarify_app.config import EngineConfig
from avatarify_app.engines import REGISTRY, add_engine_arguments, engine_config_from_args
from avatarify_app.engines.remote.client import RemoteEngine, normalise_url
from avatarify_app.errors import ConfigError, EngineError


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def test_registered_after_landmarks_and_available_only_with_a_server():
    names = REGISTRY.names()
    assert names.index("remote") > names.index("landmarks")
    spec = REGISTRY.get("remote")
    found = spec.detect(EngineConfig("remote"))
    assert not found.ok and not found.auto and "--server" in found.reason
    assert spec.detect(EngineConfig("remote", options={"server": "http://gpu-box:8000"})).ok
    assert not spec.detect(EngineConfig("remote", options={"server": "ftp://x"})).ok
    assert not spec.detect(EngineConfig("remote", options={"server": "http://x:99999"})).ok
    # auto prefers the local engines that come first: a configured server is not enough.
    assert REGISTRY.choose(EngineConfig("auto", options={"server": "http://127.0.0.1:1"})).name != "remote"


def test_its_options_are_flags_of_every_command():
    parser = argparse.ArgumentParser()
    add_engine_arguments(parser)
    args = parser.parse_args(["--engine", "remote", "--server", "http://127.0.0.1:9", "--token", "T",
                              "--jpeg-quality", "70", "--transport", "http", "--max-in-flight", "1",
                              "--image-format", "png", "--remote-engine", "fomm"])
    config = engine_config_from_args(args)
    assert config.name == "remote" and dict(config.options) == {
        "server": "http://127.0.0.1:9", "token": "T", "jpeg_quality": 70, "transport": "http", "max_in_flight": 1,
        "image_format": "png", "remote_engine": "fomm"}
    with pytest.raises(ConfigError, match="outside"):
        engine_config_from_args(parser.parse_args(["--engine", "remote", "--jpeg-quality", "0"]))
    with pytest.raises(ConfigError, match="not an option of the landmarks engine"):
        engine_config_from_args(parser.parse_args(["--engine", "landmarks", "--server", "http://x:1"]))
    assert REGISTRY.get("remote").option("token").kind == "secret"


def test_server_addresses_are_normalised():
    assert normalise_url("gpu-box:8000") == "http://gpu-box:8000"
    assert normalise_url("https://a.example/avatarify/") == "https://a.example/avatarify"
    assert normalise_url("ws://10.0.0.2:8000") == "http://10.0.0.2:8000"
    assert normalise_url("wss://a.example") == "https://a.example"
    with pytest.raises(ConfigError, match="Bad server address"):
        normalise_url("ftp://x")


def test_an_unreachable_server_is_a_clear_error_and_quick():
    t0 = time.monotonic()
    with pytest.raises(EngineError, match="Cannot reach the server") as err:
        RemoteEngine(f"http://127.0.0.1:{closed_port()}")
    assert time.monotonic() - t0 < 10
    assert "serve" in err.value.hint


def test_something_else_at_the_address_is_named(tmp_path):
    class NotOurs(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b"nothing here")

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotOurs)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        with pytest.raises(EngineError, match="answered 404"):
            RemoteEngine(f"http://127.0.0.1:{httpd.server_address[1]}")
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_the_client_never_imports_ray():
    code = ("import sys\n"
            "from avatarify_app.config import EngineConfig\n"
            "from avatarify_app.engines import REGISTRY\n"
            f"config = EngineConfig('remote', options={{'server': 'http://127.0.0.1:{closed_port()}'}})\n"
            "try:\n    REGISTRY.create(config)\nexcept Exception as err:\n    print(type(err).__name__)\n"
            "print('ray' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["EngineError", "False"], out.stderr
