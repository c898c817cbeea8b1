"""Starting (or joining) Ray and running the application on it.

With no address the server starts an embedded single-machine Ray with everything on 127.0.0.1:
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` in the environment *before* ``ray`` is imported (Ray
reads it at import; its processes inherit it) keeps the node, GCS and raylet on loopback, and
the replicas' own gRPC port is bound there too (``app.keep_internal_grpc_on_loopback``). With
``address`` (or ``RAY_ADDRESS``) it joins a cluster the user runs (``ray start --head`` on one
machine, ``ray start --address HEAD:6379`` on the others) and deploys there.
Ray's usage statistics stay off (``RAY_USAGE_STATS_ENABLED=0``): nothing leaves the machine.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
from dataclasses import dataclass, field
from typing import Any

from avatarify_app.errors import ConfigError, EngineError
from avatarify_app.serve.settings import SERVE_APP_NAME

log = logging.getLogger(__name__)

LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
QUIET_ENV = {"RAY_USAGE_STATS_ENABLED": "0"}
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def prepare_environment(loopback: bool) -> None:
    """Set Ray's environment; must run before ``ray`` is imported for ``loopback`` to hold."""
    os.environ.update(QUIET_ENV)
    if loopback:
        if "ray" in sys.modules and os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") != "0":
            raise RuntimeError("ray was imported before the loopback environment was set")
        os.environ.update(LOOPBACK_ENV)


def check_exposure(host: str, token: str | None) -> None:
    """A server reachable from other machines needs a token."""
    if host not in LOOPBACK_HOSTS and not token:
        raise ConfigError(f"--host {host} makes the server reachable from other machines, and it has no token.",
                          "Add --token auto (a new token is printed) or --token YOUR-TOKEN; or keep --host 127.0.0.1.")


def check_port_free(host: str, port: int) -> None:
    """ConfigError when ``host:port`` is taken (Serve's proxy would share it with the other program)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the proxy does: only a listener counts
        try:
            probe.bind((host, port))
        except OSError as err:
            raise ConfigError(f"Cannot listen on {host}:{port}: {err.strerror or err}.",
                              "Another program (or server) uses that port: pick another with --port.") from err


@dataclass
class Running:
    """A started server: where it answers and what it runs."""

    url: str
    embedded: bool
    info: dict[str, Any] = field(default_factory=dict)
    app_name: str = SERVE_APP_NAME

    def stop(self) -> None:
        """Delete the application; the embedded Ray is shut down (with every process it started),
        a joined cluster keeps running."""
        shutdown(self.embedded, self.app_name)


def connect(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Join the Ray cluster at ``address`` (or $RAY_ADDRESS), else start an embedded one on 127.0.0.1;
    True when embedded. Sets the environment first (see the module doc)."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    embedded = address is None
    prepare_environment(loopback=embedded)
    import ray

    for name in ("ray", "ray.serve"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
    if embedded:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, namespace="avatarify",
                 logging_level=logging.WARNING)
    else:
        ray.init(address=address, log_to_driver=False, namespace="avatarify", logging_level=logging.WARNING)
    return embedded


def deploy(settings, *, embedded: bool, host: str = "127.0.0.1", port: int = 8000,
           proxy_location: str = "EveryNode", replicas: int | None = 1, min_replicas: int | None = None,
           max_replicas: int | None = None, target_sessions: float = 4.0, gpus_per_replica: float | None = None,
           cpus_per_replica: float = 1.0, max_replicas_per_node: int | None = None, wants_gpu: bool = False,
           ready_timeout: float = 600.0, route_prefix: str = "/") -> Running:
    """Serve on ``host:port`` and the application on the connected Ray (``ServerSettings`` in
    ``settings``; ``loopback`` set when everything runs on 127.0.0.1); returns when every replica is up.
    Deploying again replaces the application (new settings, same Ray)."""
    from dataclasses import replace

    import ray
    from ray import serve

    from avatarify_app.serve.app import build_app

    check_exposure(host, settings.token)
    if gpus_per_replica is None:
        gpus_per_replica = 1.0 if wants_gpu and ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    serve.start(proxy_location=proxy_location, http_options={"host": host, "port": int(port)})
    app = build_app(replace(settings, loopback=embedded or settings.loopback), num_replicas=replicas,
                    min_replicas=min_replicas, max_replicas=max_replicas, target_sessions=target_sessions,
                    gpus_per_replica=gpus_per_replica, cpus_per_replica=cpus_per_replica,
                    max_replicas_per_node=max_replicas_per_node)
    try:
        handle = serve.run(app, name=SERVE_APP_NAME, route_prefix=route_prefix)
    except RuntimeError as err:
        raise EngineError(f"The {settings.engine.get('name')} engine failed to start in the server's replica: "
                          f"{_deployment_problem(serve) or err}",
                          "Fix what it says, or serve another engine, e.g. --engine landmarks.") from err
    info = handle.info.remote().result(timeout_s=ready_timeout)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown else shown
    url = f"http://{shown}:{int(port)}" + ("" if route_prefix == "/" else route_prefix.rstrip("/"))
    info["gpus_per_replica"] = gpus_per_replica
    return Running(url, embedded, info, SERVE_APP_NAME)


def start(settings, *, address: str | None = None, host: str = "127.0.0.1", port: int = 8000,
          num_cpus: int | None = None, **deploy_kw: Any) -> Running:
    """Start Ray (or join ``address``), then ``deploy``; on any failure what was started is stopped."""
    check_exposure(host, settings.token)
    if not (address or os.environ.get("RAY_ADDRESS")):
        check_port_free(host, int(port))
    embedded = connect(address, num_cpus)
    try:
        return deploy(settings, embedded=embedded, host=host, port=port, **deploy_kw)
    except BaseException:
        shutdown(embedded, SERVE_APP_NAME)
        raise


def shutdown(embedded: bool, app_name: str = SERVE_APP_NAME, grace: float = 10.0) -> None:
    """Delete the application; an embedded Ray is shut down with every process this one started."""
    import psutil
    import ray
    from ray import serve

    started = psutil.Process().children(recursive=True) if embedded else []
    try:
        if embedded:
            serve.shutdown()
        else:
            serve.delete(app_name)
    except Exception:
        log.warning("stopping the application failed", exc_info=True)
    finally:
        ray.shutdown()
    # Ray's agents sometimes outlive the raylet that started them: end what this process started.
    _gone, alive = psutil.wait_procs(started, timeout=grace)
    for proc in alive:
        log.info("ending leftover Ray process %d (%s)", proc.pid, proc.name())
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _gone, alive = psutil.wait_procs(alive, timeout=5)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


def _deployment_problem(serve: Any) -> str | None:
    """The last line of the error a replica of the application died with (Serve keeps its
    traceback in the deployment's status message), or None."""
    try:
        app = serve.status().applications.get(SERVE_APP_NAME)
        messages = [d.message for d in app.deployments.values() if d.message] if app is not None else []
    except Exception:  # the status is a courtesy: the deployment error stands without it
        return None
    lines = [line.strip() for m in messages for line in m.splitlines() if line.strip()]
    for i in range(len(lines) - 1, -1, -1):  # the exception's own line: "module.SomeError: text"
        found = re.match(r"^[\w.]*(?:Error|Exception): (.+)$", lines[i])
        if found:
            after = lines[i + 1] if i + 1 < len(lines) and lines[i + 1].startswith("hint:") else ""
            return f"{found.group(1)} ({after})" if after else found.group(1)
    return lines[-1] if lines else None
