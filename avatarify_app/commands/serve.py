"""`serve`: host an engine as a Ray Serve application, for `--engine remote` clients elsewhere.

    python main.py serve --engine landmarks --port 8000                      # this machine only
    python main.py serve --engine fomm --host 0.0.0.0 --token auto           # for the LAN
    python main.py serve --engine fomm --address auto --replicas 4           # on a running Ray cluster

With no --address (and no $RAY_ADDRESS) an embedded Ray starts on 127.0.0.1. Prints one line with
the URL and the token when every replica is up; Ctrl-C (or SIGTERM) stops it. docs/REMOTE.md
describes the API, TLS (a reverse proxy in front) and running on a cluster.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import threading

from avatarify_app.engines import REGISTRY, add_engine_arguments, engine_config_from_args
from avatarify_app.engines.remote import TOKEN_ENV
from avatarify_app.errors import ConfigError, EngineError


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_engine_arguments(p)
    for action in p._actions:  # the remote engine's --token doubles as the server's token here
        if action.dest == "engine_token":
            action.help = (f"the token clients must send: a text, or auto to make one (printed); "
                           f"default ${TOKEN_ENV}, else none (allowed on 127.0.0.1 only)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface, needs a token)")
    p.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    p.add_argument("--address", help="join a Ray cluster: auto, or HEAD:6379 (default: $RAY_ADDRESS, else an "
                   "embedded Ray on 127.0.0.1)")
    p.add_argument("--replicas", type=int, default=1, metavar="N", help="fixed number of replicas (default 1)")
    p.add_argument("--min-replicas", type=int, metavar="N", help="autoscale between --min-replicas and --max-replicas")
    p.add_argument("--max-replicas", type=int, metavar="N")
    p.add_argument("--sessions-per-replica", type=float, default=4.0, metavar="N",
                   help="autoscaling target: connected clients per replica (default 4)")
    p.add_argument("--gpus-per-replica", type=float, metavar="F",
                   help="GPUs each replica reserves; fractions pack replicas (0.5: two per GPU). Default: 1 for a "
                   "network engine when the cluster has GPUs, else 0")
    p.add_argument("--cpus-per-replica", type=float, default=1.0, metavar="F", help="CPUs each replica reserves")
    p.add_argument("--max-replicas-per-node", type=int, metavar="N", help="spread replicas over nodes")
    p.add_argument("--proxy-location", choices=("EveryNode", "HeadOnly"), default="EveryNode",
                   help="where Serve's HTTP proxy runs (default: every node)")
    p.add_argument("--num-cpus", type=int, metavar="N", help="CPUs of the embedded Ray (default: all)")
    p.add_argument("--batch", action=argparse.BooleanOptionalAction, default=True,
                   help="batch frames of concurrent clients with @serve.batch (default on)")
    p.add_argument("--max-batch-size", type=int, default=8, metavar="N")
    p.add_argument("--batch-wait-ms", type=float, default=2.0, metavar="MS")
    p.add_argument("--random-weights", action="store_true",
                   help="for benchmarks: the engine's networks with random weights (the output is noise)")


def _token(args: argparse.Namespace) -> str | None:
    token = getattr(args, "engine_token", None) or os.environ.get(TOKEN_ENV) or None
    args.engine_token = None  # not an engine option here
    if token == "auto":
        token = secrets.token_urlsafe(24)
    return token


def run(args: argparse.Namespace) -> int:
    from avatarify_app.serve.runtime import check_exposure, start
    from avatarify_app.serve.settings import ServerSettings

    token = _token(args)
    check_exposure(args.host, token)
    config = engine_config_from_args(args)
    choice = REGISTRY.choose(config)
    if not choice.spec.local:
        raise ConfigError(f"serve hosts an engine of this machine; {choice.name} is the client of one.",
                          "Pick the engine to serve, e.g. --engine fomm or --engine landmarks.")
    config = REGISTRY.checked(choice.config)
    if not (1 <= args.port <= 65535):
        raise ConfigError(f"--port {args.port} is not a port number.")
    cluster = args.address or os.environ.get("RAY_ADDRESS")
    if not args.random_weights:
        found = choice.spec.detect(config)
        if not found.ok and not cluster:  # the replicas run here: they would fail the same way
            raise EngineError(f"The {choice.name} engine cannot run here: {found.reason}.",
                              "Fix that (`python main.py doctor` says how), or serve another engine, "
                              "e.g. --engine landmarks.")
        if not found.ok:
            print(f"note: on this machine {found.reason}; the cluster's nodes must have what it needs",
                  file=sys.stderr, flush=True)
    settings = ServerSettings(
        engine={"name": config.name, "device": config.device, "half": config.half, "options": dict(config.options)},
        random_weights=args.random_weights, token=token, batching=args.batch, max_batch_size=args.max_batch_size,
        batch_wait_ms=args.batch_wait_ms)
    where = f"the Ray cluster at {cluster}" if cluster else "an embedded Ray on 127.0.0.1"
    print(f"starting {choice.name} on {where} ({choice.explain()}) ...", file=sys.stderr, flush=True)

    stop = threading.Event()

    def on_signal(signum, frame) -> None:
        stop.set()

    # Ctrl-C and SIGTERM end the wait below (a SIGINT handler also where the shell ignores it).
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    running = None
    try:
        running = start(settings, address=args.address, host=args.host, port=args.port,
                        proxy_location=args.proxy_location, num_cpus=args.num_cpus, replicas=args.replicas,
                        min_replicas=args.min_replicas, max_replicas=args.max_replicas,
                        target_sessions=args.sessions_per_replica, gpus_per_replica=args.gpus_per_replica,
                        cpus_per_replica=args.cpus_per_replica, max_replicas_per_node=args.max_replicas_per_node,
                        wants_gpu=choice.spec.half and config.device != "cpu")
        for sig in previous:  # again: ray.init installs its own handlers
            signal.signal(sig, on_signal)
        info = running.info
        scale = (f"{args.min_replicas or 1}..{args.max_replicas or args.min_replicas or 1} replicas (autoscaling)"
                 if args.min_replicas is not None or args.max_replicas is not None else f"{args.replicas} replica(s)")
        print(f"serving {info['engine']} ({info['device']}{', random weights' if info.get('random_weights') else ''}) "
              f"at {running.url} | token: {token or 'none'} | {scale}, {info['gpus_per_replica']:g} GPU each | "
              f"Ctrl-C stops", flush=True)
        while not stop.is_set():
            stop.wait(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if running is not None:
            print("stopping ...", file=sys.stderr, flush=True)
            running.stop()
    return 0

