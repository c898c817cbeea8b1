"""A real Ray Serve on 127.0.0.1 (landmark engine, a token, batching on) and the remote engine
through it: animated frames, tokens, bad bodies, batching, a replica killed and replaced, the
server cut off (connections dropped and refused, through a relay), a slow link, and (slow) a
killed HTTP proxy. One server for the whole module; tests/serve/test_serve_cli.py kills a whole
`serve` process."""

from __future__ import annotations

import ipaddress
import json
import threading
import time
import tracemalloc

import httpx
import numpy as np
import pytest
from live_fakes import wait_for
from serve_helpers import TOKEN, needs_ray, ray_processes, start_server, stop_server
from serve_relay import Relay

from avatarify_app.engines.remote import wire
from avatarify_app.errors import EngineError

pytestmark = needs_ray
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def server():
    running = start_server(batch_wait_ms=5.0)
    yield running
    stop_server(running)


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def local_outputs(avatar_crop, driving_crops):
    """What the landmark engine makes of the driving crops in this process (the reference)."""
    from avatarify_app.engines.landmarks.engine import LandmarkEngine

    engine = LandmarkEngine()
    try:
        engine.set_source(*avatar_crop)
        return [engine.predict(*c) for c in driving_crops]
    finally:
        engine.close()


def remote(server, **kw):
    from avatarify_app.engines.remote.client import RemoteEngine

    return RemoteEngine(server.url, kw.pop("token", TOKEN), **kw)


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def png(image: np.ndarray) -> bytes:
    """A frame (RGB) as PNG bytes."""
    return wire.encode_image(np.ascontiguousarray(image), "png")


def variant(avatar: tuple[np.ndarray, np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The avatar with one pixel changed: other content, so another id the server has not seen."""
    image = avatar[0].copy()
    image[0, 0, 0] ^= k
    return image, avatar[1]


def kill_actor(prefix: str) -> str:
    """Kill the Serve actor whose name starts with ``prefix`` (Serve starts a new one)."""
    import ray

    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith(prefix)]
    assert names, f"no actor named {prefix}*"
    ray.kill(ray.get_actor(names[0], namespace="serve"), no_restart=False)
    return names[0]


# ----------------------------------------------------------------------------- the server
def test_every_ray_process_listens_on_loopback_only(server):
    import psutil

    listening = []
    for proc in ray_processes():
        try:
            connections = proc.net_connections(kind="inet")
        except psutil.Error:
            continue
        listening += [(proc.name(), c.laddr.ip, c.laddr.port) for c in connections if c.status == psutil.CONN_LISTEN]
    port = int(server.url.rsplit(":", 1)[1])
    assert any(p == port for _n, _ip, p in listening), listening  # the HTTP proxy is among them
    outside = [entry for entry in listening if not loopback(entry[1])]
    assert not outside, f"listening beyond loopback: {outside}"
    assert len(listening) >= 5  # GCS, raylet, controller, proxy, replica (its gRPC port included)


def loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def test_token_is_required_and_checked(server, http):
    assert http.get(wire.HEALTH).json() == {"ok": True}  # liveness needs no token
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        r = http.get(wire.INFO, headers=headers)
        assert r.status_code == 401 and r.json()["message"] == "wrong or missing token"
    info = http.get(wire.INFO, headers=AUTH).json()
    assert info["engine"] == "landmarks" and info["size"] == 256 and info["protocol"] == wire.PROTOCOL
    with pytest.raises(EngineError, match="wrong or missing token"):
        remote(server, token="wrong")
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    with pytest.raises(InvalidStatus) as refused, \
            connect(server.url.replace("http", "ws") + wire.STREAM, additional_headers={"Authorization": "Bearer no"}):
        pass
    assert refused.value.response.status_code in (401, 403)


def test_bad_bodies_get_4xx_with_a_message_and_the_replica_lives(http, avatar_crop):
    before = http.get(wire.INFO, headers=AUTH).json()["replica"]
    blank = np.full((256, 256, 3), 128, np.uint8)
    cases = [
        ({"content": b"not an image", "headers": {"Content-Type": "image/png"}}, 422, "bad_image"),
        ({"content": png(np.zeros((200, 300, 3), np.uint8)), "headers": {"Content-Type": "image/png"}}, 422, "bad_image"),
        ({"content": png(np.zeros((2100, 2100, 3), np.uint8)), "headers": {"Content-Type": "image/png"}}, 422, "bad_image"),
        ({"content": png(blank), "headers": {"Content-Type": "image/png"}}, 422, "no_face"),
        ({"content": b"\0" * (wire.MAX_AVATAR_BYTES + 1), "headers": {"Content-Type": "image/png"}}, 413, "too_large"),
        ({"content": b"hello", "headers": {"Content-Type": "text/plain"}}, 415, "unsupported_media"),
        ({"content": b"{", "headers": {"Content-Type": "application/json"}}, 400, "bad_request"),
        ({"json": {"image": 5}}, 422, "bad_request"),
        ({"json": {"image": "!!not base64!!"}}, 400, "bad_request"),
        ({"json": {"image": wire.b64encode(png(avatar_crop[0])), "landmarks": [[1, 2, 3]]}}, 400, "bad_request"),
    ]
    for kwargs, status, code in cases:
        r = http.post(wire.AVATARS, headers={**AUTH, **kwargs.pop("headers", {})}, **kwargs)
        assert (r.status_code, r.json()["code"]) == (status, code), r.text
        assert r.json()["message"] and "Traceback" not in r.text
    frame = {"avatar": "ab" * 32, "image": wire.b64encode(png(avatar_crop[0]))}
    r = http.post(wire.FRAME, headers=AUTH, json=frame)
    assert (r.status_code, r.json()["code"]) == (404, "unknown_avatar")
    r = http.post(wire.FRAME, headers=AUTH, json={**frame, "avatar": "../etc"})
    assert (r.status_code, r.json()["code"]) == (400, "bad_request")
    r = http.post(wire.FRAME, headers=AUTH, json={**frame, "quality": 500})
    assert r.status_code == 422
    after = http.get(wire.INFO, headers=AUTH).json()["replica"]
    assert after == before  # the same replica answered all along: nothing killed it


def test_one_shot_http_frame_with_an_uploaded_avatar(http, avatar_crop, driving_crops):
    from avatarify_app.engines.landmarks.engine import LandmarkEngine

    image, lms = avatar_crop
    up = http.post(wire.AVATARS, headers=AUTH, json={"image": wire.b64encode(png(image)), "landmarks": lms.tolist()})
    assert up.status_code == 200, up.text
    assert up.json()["avatar"] == wire.content_id(image, lms)  # the id is the content hash
    ref, ref_lms = driving_crops[0]
    i = 12
    body = {"avatar": up.json()["avatar"], "image": wire.b64encode(png(driving_crops[i][0])),
            "landmarks": driving_crops[i][1].tolist(), "reference": wire.b64encode(png(ref)),
            "reference_landmarks": ref_lms.tolist(), "format": "png"}
    r = http.post(wire.FRAME, headers={**AUTH, wire.ROUTE_HEADER: up.json()["avatar"]}, json=body)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    out = wire.decode_image(r.content)
    local = LandmarkEngine()
    try:
        local.set_source(image, lms)
        local.set_reference(ref, ref_lms)
        expected = local.predict(*driving_crops[i])
    finally:
        local.close()
    assert mad(out, expected) < 0.5 < 3.0 < mad(out, image)  # the local engine's answer, and animated
    ref_id = r.headers["x-avatarify-reference-id"]
    again = {k: v for k, v in body.items() if not k.startswith("reference")} | {"reference_id": ref_id}
    r2 = http.post(wire.FRAME, headers=AUTH, json=again)
    assert r2.status_code == 200 and mad(wire.decode_image(r2.content), out) < 3.0  # (the engine has a memory)
    r3 = http.post(wire.FRAME, headers=AUTH, json={**again, "reference_id": "cd" * 32})
    assert (r3.status_code, r3.json()["code"]) == (409, "unknown_reference")


def test_websocket_answers_bad_messages_and_goes_on(server, avatar_crop, driving_crops):
    from websockets.sync.client import connect

    image, lms = avatar_crop
    avatar_id = wire.content_id(image, lms)
    with connect(server.url.replace("http", "ws") + wire.STREAM, additional_headers=AUTH,
                 max_size=wire.MAX_MESSAGE_BYTES) as ws:
        def answer():
            return json.loads(ws.recv(timeout=30))

        ws.send("not json")
        assert answer()["code"] == "bad_request"
        ws.send(json.dumps({"type": "nope"}))
        assert "Unknown message type" in answer()["message"]
        ws.send(b"garbage")
        assert answer()["code"] == "bad_request"
        ws.send(json.dumps({"type": "hello", "protocol": 99}))
        assert "protocol" in answer()["message"]
        ws.send(wire.pack({"kind": "frame", "seq": 7}, b"x"))
        first = answer()
        assert first["seq"] == 7 and "No avatar" in first["message"]
        ws.send(json.dumps({"type": "hello", "protocol": wire.PROTOCOL, "avatar": "ef" * 32}))
        assert answer() == {"type": "need_avatar", "id": "ef" * 32}
        ws.send(wire.pack({"kind": "avatar", "landmarks": len(lms)}, png(image), wire.landmarks_bytes(lms)))
        ready = answer()
        assert ready["type"] == "ready" and ready["avatar"] == avatar_id and ready["engine"] == "landmarks"
        crop, crop_lms = driving_crops[5]
        ws.send(wire.pack({"kind": "frame", "seq": 1, "landmarks": len(crop_lms)},
                          wire.encode_image(crop), wire.landmarks_bytes(crop_lms)))
        header, parts = wire.unpack(ws.recv(timeout=30))
        assert header["kind"] == "frame" and header["seq"] == 1 and header["server_ms"] >= header["engine_ms"] > 0
        assert wire.decode_image(parts[0]).shape == (256, 256, 3)


# ----------------------------------------------------------------------------- the remote engine
def test_remote_engine_gives_the_local_engines_frames(server, avatar_crop, driving_crops, local_outputs):
    engine = remote(server, max_in_flight=1, image_format="png")
    try:
        assert engine.device.startswith(f"remote {server.url} -> landmarks on cpu")
        engine.set_source(*avatar_crop)
        assert engine.status == "connected"
        outs = [engine.predict(*c) for c in driving_crops[:24]]
        timings = engine.timings()
    finally:
        engine.close()
    diffs = [mad(o, ref) for o, ref in zip(outs, local_outputs, strict=False)]
    assert max(diffs) < 1.0, diffs  # lossless both ways: what the local engine makes
    assert max(mad(o, avatar_crop[0]) for o in outs) > 3.0  # animated, not the avatar
    assert set(timings) == {"network", "server"} and timings["server"] > 0


def test_two_in_flight_overlap_and_jpeg_and_http_transport(server, avatar_crop, driving_crops, local_outputs):
    n = 16
    for kwargs in ({"max_in_flight": 2}, {"transport": "http", "max_in_flight": 1}):
        engine = remote(server, **kwargs)
        try:
            engine.set_source(*avatar_crop)
            outs = [engine.predict(*c) for c in driving_crops[:n]]
            stats = engine.stats()
        finally:
            engine.close()
        lag = kwargs["max_in_flight"] - 1  # with 2 in flight a call returns the newest frame back: the
        if lag:  # previous crop's, or this one's when both came back meanwhile
            assert mad(outs[0], avatar_crop[0]) == 0.0  # nothing back yet: the avatar, not the face
        diffs = [min(mad(outs[i], local_outputs[j]) for j in range(i - lag, i + 1)) for i in range(lag, n)]
        assert diffs[0] < 6.0 and max(diffs[1:]) < 3.0, (kwargs, diffs)  # JPEG both ways costs a little
        assert stats["uploads"] <= 1 and stats["dropped"] == 0 and stats["sent"] == n, stats
    # The avatar is known by its content now: another session with it does not upload it again.
    again = remote(server)
    try:
        again.set_source(*avatar_crop)
        assert again.status == "connected" and again.stats()["uploads"] == 0
    finally:
        again.close()


def test_concurrent_clients_are_batched(server, http, avatar_crop, driving_crops):
    before = http.get(wire.INFO, headers=AUTH).json()
    results: dict[int, list] = {}
    received: dict[int, int] = {}

    def client(k: int) -> None:
        engine = remote(server, max_in_flight=2)
        try:
            engine.set_source(*avatar_crop)
            results[k] = [engine.predict(*c) for c in driving_crops[k : k + 16]]
            received[k] = engine.stats()["received"]
        finally:
            engine.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    after = http.get(wire.INFO, headers=AUTH).json()
    assert sorted(results) == [0, 1, 2]
    assert all(max(mad(o, avatar_crop[0]) for o in outs) > 3.0 for outs in results.values())
    frames, batches = after["frames"] - before["frames"], after["batches"] - before["batches"]
    assert 48 >= frames >= sum(received.values()) >= 45  # (a frame still on the way at close may be dropped)
    assert batches < frames and after["max_batch"] >= 2  # several sessions' frames per engine call


def test_slow_link_lowers_fps_and_nothing_grows(server, avatar_crop, driving_crops):
    relay = Relay(int(server.url.rsplit(":", 1)[1]), delay_s=0.04)
    engine = remote(server, max_in_flight=2)
    from avatarify_app.engines.remote.client import RemoteEngine

    slow = RemoteEngine(f"http://127.0.0.1:{relay.port}", TOKEN, max_in_flight=2)
    try:
        fps = {}
        for name, e in (("direct", engine), ("slow", slow)):
            e.set_source(*avatar_crop)
            for c in driving_crops[:4]:  # warm up
                e.predict(*c)
            tracemalloc.start()
            t0 = time.perf_counter()
            peak_in_flight = 0
            base = tracemalloc.take_snapshot()
            for c in driving_crops[4:40]:
                e.predict(*c)
                peak_in_flight = max(peak_in_flight, e.stats()["in_flight"])
            fps[name] = 36 / (time.perf_counter() - t0)
            grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(base, "filename"))
            tracemalloc.stop()
            assert peak_in_flight <= 2 and e.stats()["dropped"] == 0
            assert grown < 2_000_000, grown  # bytes of Python memory: bounded, no queue
        assert fps["slow"] < fps["direct"] and fps["slow"] > 3.0, fps  # lower, not stuck
        # A reference set while frames are on the way makes their answers stale: dropped.
        slow.predict(*driving_crops[1])
        slow.set_reference(*driving_crops[2])
        assert wait_for(lambda: slow.stats()["in_flight"] == 0, 5)
        assert slow.stats()["stale"] >= 1
    finally:
        engine.close()
        slow.close()
        relay.close()


def test_lost_link_holds_the_last_frame_then_reconnects(server, avatar_crop, driving_crops):
    relay = Relay(int(server.url.rsplit(":", 1)[1]))
    from avatarify_app.engines.remote.client import RemoteEngine

    engine = RemoteEngine(f"http://127.0.0.1:{relay.port}", TOKEN, max_in_flight=1)
    try:
        engine.set_source(*avatar_crop)
        for c in driving_crops[:10]:
            engine.predict(*c)
        t_cut = time.monotonic()
        relay.cut(3.0)  # the server is gone for 3 s: connections closed, new ones refused
        assert wait_for(lambda: engine.status == "server lost, reconnecting", 2.0)
        assert time.monotonic() - t_cut < 2.0
        assert engine.device.endswith("[server lost, reconnecting]")  # what the live stats show
        last = engine.predict(*driving_crops[10])  # (a reply that came just before the cut may show once)
        held = []
        for c in driving_crops[10:20]:
            t0 = time.perf_counter()
            held.append(engine.predict(*c))
            assert time.perf_counter() - t0 < 0.2  # does not block while the server is away
            assert mad(held[-1], c[0]) > 10  # never the driving face
        assert all(h is last or mad(h, last) == 0 for h in held)
        assert wait_for(lambda: engine.status == "connected", 15.0)
        fresh = [engine.predict(*c) for c in driving_crops[20:30]]
        assert any(mad(f, last) > 1.0 for f in fresh)  # animating again
        assert engine.stats()["lost_events"] >= 1 and engine.stats()["connections"] >= 2
    finally:
        engine.close()
        relay.close()


def test_avatar_is_uploaded_again_after_a_replica_restart(server, http, avatar_crop, driving_crops):
    engine = remote(server, max_in_flight=2)
    try:
        engine.set_source(*variant(avatar_crop, 1))
        last = [engine.predict(*c) for c in driving_crops[:8]][-1]
        replica = http.get(wire.INFO, headers=AUTH).json()["replica"]
        assert engine.stats()["uploads"] == 1
        kill_actor("SERVE_REPLICA::avatarify#engine")
        assert wait_for(lambda: engine.status != "connected", 2.0)  # told within 2 s
        i = 8
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            out = engine.predict(*driving_crops[i % len(driving_crops)])
            assert mad(out, driving_crops[i % len(driving_crops)][0]) > 10  # the avatar, never the face
            if engine.status == "connected" and engine.stats()["uploads"] >= 2 and mad(out, last) > 1.0:
                break
            i += 1
            time.sleep(0.05)
        assert engine.stats()["uploads"] >= 2, engine.stats()  # the new replica had to get the avatar again
        assert engine.status == "connected"
        assert http.get(wire.INFO, headers=AUTH).json()["replica"] != replica
    finally:
        engine.close()


@pytest.mark.slow  # Serve takes ~30 s here to notice and replace its proxy
def test_a_killed_proxy_is_survived(server, avatar_crop, driving_crops):
    engine = remote(server, max_in_flight=2)
    try:
        engine.set_source(*avatar_crop)
        for c in driving_crops[:6]:
            engine.predict(*c)
        kill_actor("SERVE_PROXY_ACTOR")
        assert wait_for(lambda: engine.status == "server lost, reconnecting", 2.0)
        i = 6
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not (engine.status == "connected" and engine.stats()["received"] > 10):
            engine.predict(*driving_crops[i % len(driving_crops)])
            i += 1
            time.sleep(0.05)
        assert engine.status == "connected" and engine.stats()["received"] > 10, engine.stats()
    finally:
        engine.close()
