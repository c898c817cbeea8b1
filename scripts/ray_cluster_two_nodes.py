"""A real two-node Ray cluster on this machine (loopback only), the serve application on it with
2 replicas (at most one per node), and two clients served at once; then everything is torn down.

    .venv/bin/python scripts/ray_cluster_two_nodes.py [--engine landmarks] [--frames 60]

A second `ray start` on one host fails, so the nodes come from ``ray.cluster_utils.Cluster``
(two ``add_node`` calls: a head and a worker, each its own raylet). With
RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 both nodes, the GCS and the raylets stay on 127.0.0.1. The
HTTP proxy runs on the head only (two proxies cannot share one host's port). Prints the nodes,
where each replica landed, which replica served each client, and each client's fps; exit
status 1 when the replicas did not land one per node or a client got no animated frames.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
import time
from pathlib import Path

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ.pop("RAY_ADDRESS", None)

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from avatarify_app.engines.remote.client import RemoteEngine  # noqa: E402
from avatarify_app.serve import runtime  # noqa: E402
from avatarify_app.serve.settings import SERVE_APP_NAME, ServerSettings  # noqa: E402

TOKEN = "cluster-demo-token"


def crops(n: int):
    from avatarify_app.frames import load_image
    from avatarify_app.paths import ASSETS_DIR, AVATARS_DIR
    from avatarify_app.pipeline.video import iter_video
    from avatarify_app.tracking import StreamTracker, align_portrait
    from avatarify_app.tracking.crop import to_size

    aligned = align_portrait(load_image(AVATARS_DIR / "mona_lisa.png"))
    tracker = StreamTracker()
    out = []
    try:
        for i, frame in enumerate(iter_video(ASSETS_DIR / "demo" / "driving.mp4", max_frames=n)):
            r = tracker.process(frame, i / 25.0)
            if r is not None:
                out.append(to_size(r.crop, r.landmarks, 256))
    finally:
        tracker.close()
    return to_size(aligned.image, aligned.landmarks, 256), out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--engine", default="landmarks")
    p.add_argument("--frames", type=int, default=60, help="frames per client")
    args = p.parse_args()
    import ray
    from ray.cluster_utils import Cluster

    avatar, driving = crops(args.frames)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cluster = Cluster()
    ok = False
    try:
        head = cluster.add_node(num_cpus=1)
        worker = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, namespace="avatarify")
        nodes = [(n["NodeID"], n["NodeManagerAddress"], n["Resources"].get("CPU")) for n in ray.nodes() if n["Alive"]]
        print(f"cluster: {len(nodes)} nodes (head {head.node_id[:8]}, worker {worker.node_id[:8]})")
        for node_id, address, cpus in nodes:
            print(f"  node {node_id[:8]} at {address}, {cpus:g} CPU")
        settings = ServerSettings(engine={"name": args.engine, "device": "cpu"}, token=TOKEN, loopback=True)
        t0 = time.perf_counter()
        running = runtime.deploy(settings, embedded=False, host="127.0.0.1", port=port, proxy_location="HeadOnly",
                                 replicas=2, cpus_per_replica=1.0, max_replicas_per_node=1)
        print(f"serve: 2 replicas of {args.engine} up in {time.perf_counter() - t0:.1f} s at {running.url}")
        placed = replica_nodes()
        for name, node_id in placed.items():
            print(f"  replica {name} on node {node_id[:8]}")
        listening, outside = listeners()
        print(f"listening sockets of the cluster's processes: {len(listening)}, beyond loopback: {outside or 'none'}")

        results: dict[int, dict] = {}

        def client(k: int) -> None:
            engine = RemoteEngine(running.url, TOKEN, max_in_flight=2)
            try:
                engine.set_source(*avatar)
                t = time.perf_counter()
                outs = [engine.predict(*driving[(i + 11 * k) % len(driving)]) for i in range(args.frames)]
                fps = args.frames / (time.perf_counter() - t)
                moved = max(float(np.abs(o.astype(int) - avatar[0].astype(int)).mean()) for o in outs)
                results[k] = {"fps": fps, "replica": engine.session_info.get("replica"),
                              "node": engine.session_info.get("node"), "moved": moved,
                              "received": engine.stats()["received"]}
            finally:
                engine.close()

        threads = [threading.Thread(target=client, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for k, r in sorted(results.items()):
            print(f"client {k}: {r['fps']:.1f} fps, {r['received']} frames back, served by replica {r['replica']} "
                  f"on node {str(r['node'])[:8]}, largest change from the avatar {r['moved']:.1f}")
        one_per_node = len(set(placed.values())) == 2
        ok = not outside and one_per_node and len(results) == 2 and all(r["moved"] > 3 and r["received"] > 0 for r in results.values())
        print(f"replicas on distinct nodes: {one_per_node}; clients served by "
              f"{len({r['replica'] for r in results.values()})} replica(s) at once")
    finally:
        try:
            from ray import serve

            serve.shutdown()
        except Exception as err:
            print(f"serve shutdown: {err}")
        ray.shutdown()
        cluster.shutdown()
        print("torn down")
    return 0 if ok else 1


def listeners() -> tuple[list, list]:
    """(every listening address of this process's descendants, those not on loopback)."""
    import ipaddress

    import psutil

    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            found += [(proc.name(), c.laddr.ip, c.laddr.port) for c in proc.net_connections(kind="inet")
                      if c.status == psutil.CONN_LISTEN]
        except psutil.Error:
            continue

    def loopback(ip: str) -> bool:
        address = ipaddress.ip_address(ip)
        return (getattr(address, "ipv4_mapped", None) or address).is_loopback

    return found, [f for f in found if not loopback(f[1])]


def replica_nodes(tries: int = 40) -> dict[str, str]:
    """Replica id -> node id, asked of the replicas themselves (their info) through the app's handle."""
    from ray import serve

    handle = serve.get_app_handle(SERVE_APP_NAME)
    found: dict[str, str] = {}
    for _ in range(tries):
        info = handle.info.remote().result(timeout_s=60)
        found[info["replica"]] = info["node"]
        if len(found) >= 2:
            break
    return found


if __name__ == "__main__":
    sys.exit(main())
