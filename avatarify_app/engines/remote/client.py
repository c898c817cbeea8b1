"""The remote engine: an ``Engine`` whose animation runs on a `serve` server.

The client keeps the session's state (the avatar, the reference, the motion options) and the
server gets a copy of it: the avatar once, by its content hash (re-sent by itself when a
server or replica no longer has it), the reference when it changes. Frames travel over one
WebSocket (``transport="websocket"``) or one HTTP POST each (``"http"``).

Newest frame wins over the network: at most ``max_in_flight`` frames are on the way at once.
With 2 (the default) ``predict`` sends the crop it is given and returns the newest animated
frame that came back (the one of the previous crop when the network keeps up), so network time
overlaps the next frame's tracking; with 1 it waits for the crop it sent (frame-exact output).
A frame that finds the pipe full is dropped, not queued, and a reply computed before the avatar,
reference or options changed is dropped as stale.

When the server goes away ``status`` says "server lost, reconnecting" (at once when the socket
closes; when replies stop for ``lost_after`` seconds, or four round trips of this server when
those are longer: a slow engine is not a lost server), ``predict`` returns the last animated
frame (or the avatar itself, never the driving face) without blocking, and a link thread
reconnects with backoff, re-uploads the avatar and re-sends the reference.

Threads: the caller's (``predict`` and the setters) and one link thread per engine (connects,
receives, decodes replies); both meet in a condition. ``close`` stops and joins the link thread.
The links (links.py, http_link.py) see the engine only as a ``links.LinkOwner``: its settings, the
condition (``lock``), ``snapshot`` and the ``on_*`` callbacks below.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from avatarify_app.config import EngineConfig, MotionOptions
from avatarify_app.engines.remote import TOKEN_ENV, server_problem, wire
from avatarify_app.engines.remote.http_link import HttpLink
from avatarify_app.engines.remote.links import (
    BAD_TOKEN,
    CONNECTED,
    CONNECTING,
    LOST,
    UPLOADING,
    AvatarPayload,
    Link,
    SessionState,
    WebSocketLink,
    error_message,
)
from avatarify_app.errors import BadImageError, ConfigError, EngineError, NoFaceError
from avatarify_app.frames import check_frame

log = logging.getLogger(__name__)

TOKEN_HINT = (f"Pass the token the server printed with --token (or set ${TOKEN_ENV}); "
              "on the server, `serve --token auto` makes a new one.")


def normalise_url(url: str) -> str:
    """``host:port`` or ``http(s)://host:port[/prefix]`` (ws/wss accepted) -> ``http(s)://...`` without a
    trailing slash."""
    text = str(url).strip()
    problem = server_problem(text)
    if problem:
        raise ConfigError(f"Bad server address: {problem}.", "Use e.g. --server http://192.168.1.20:8000")
    if "://" not in text:
        text = "http://" + text
    scheme, rest = text.split("://", 1)
    scheme = {"ws": "http", "wss": "https"}.get(scheme.lower(), scheme.lower())
    return f"{scheme}://{rest}".rstrip("/")


def _unreachable(server: str, err: Exception) -> EngineError:
    return EngineError(f"Cannot reach the server at {server} ({type(err).__name__}: {err}).",
                       "Start it there with `python main.py serve --host 0.0.0.0 --token auto`, check the "
                       "address, port and firewall, or pick another engine.")


@dataclass
class _Reply:
    seq: int
    frame: np.ndarray
    rtt_ms: float
    server_ms: float
    engine_ms: float


@dataclass
class _Sent:
    t: float
    version: int


class RemoteEngine:
    """``Engine`` (engines/base.py) that animates on a `serve` server (see the module doc), and the
    ``links.LinkOwner`` of its link.

    ``status``: "connecting", "connected", "server lost, reconnecting", "wrong or missing token",
    or "uploading the avatar" (for a status bar). ``device`` names the server
    and what runs the engine there; ``timings()`` splits the last frame's round trip into
    ``network`` and ``server`` milliseconds.
    """

    name = "remote"

    def __init__(self, server: str, token: str | None = None, *, transport: str = "websocket",
                 image_format: str = "jpeg", jpeg_quality: int = wire.DEFAULT_QUALITY, max_in_flight: int = 2,
                 expect_engine: str | None = None, options: MotionOptions | None = None,
                 lost_after: float = 1.5, connect_timeout: float = 5.0, upload_timeout: float = 30.0) -> None:
        import httpx

        self.server = normalise_url(server)
        if transport not in ("websocket", "http"):
            raise ConfigError(f"Unknown transport {transport!r}.", "Use websocket or http.")
        self.transport = transport
        self.image_format, self.jpeg_quality = wire.check_format(image_format, int(jpeg_quality))
        if not 1 <= int(max_in_flight) <= 8:
            raise ConfigError(f"max_in_flight must be 1..8, not {max_in_flight}.")
        self.max_in_flight = int(max_in_flight)
        self.lost_after = float(lost_after)
        self.connect_timeout = float(connect_timeout)
        self.upload_timeout = float(upload_timeout)
        self._token = token or None
        self._http = httpx.Client(base_url=self.server, headers=self.auth_headers(),
                                  timeout=httpx.Timeout(upload_timeout, connect=connect_timeout))
        try:
            info = self._fetch_info()
        except BaseException:
            self._http.close()
            raise
        if expect_engine and info.get("engine") != expect_engine:
            self._http.close()
            raise EngineError(f"The server at {self.server} runs the {info.get('engine')} engine, not {expect_engine}.",
                              f"Drop --remote-engine, or start the server with --engine {expect_engine}.")
        self.size = int(info["size"])
        self.server_engine = str(info["engine"])
        self.server_device = str(info["device"])
        self._where = f"remote {self.server} -> {self.server_engine} on {self.server_device}"
        self.status = CONNECTING
        self.options = options or MotionOptions()
        # Session state (guarded by _cond), mirrored on the server.
        self._cond = threading.Condition()
        self._version = 0
        self._avatar: AvatarPayload | None = None
        self._avatar_error: EngineError | None = None
        self._reference: tuple[np.ndarray, np.ndarray | None] | None = None
        self._controls: dict[str, Any] = {}
        self._ready = False  # the server has this session's avatar and state
        self._seq = 0
        self._inflight: dict[int, _Sent] = {}
        self._newest: _Reply | None = None
        self._returned = 0  # seq of the last reply predict returned
        self._held: np.ndarray | None = None  # what predict returns when nothing new came
        self._timings: dict[str, float] = {}
        self._rtt_s: float | None = None  # smoothed round trip (seconds)
        self._last_heard = 0.0  # when the last answer came
        # Counters (for the bench, the soak and the tests).
        self.sent = self.received = self.dropped = self.stale = self.uploads = self.connections = 0
        self.lost_events = self.bytes_up = self.bytes_down = self.returned = 0
        self.last_engine_ms = 0.0  # of the last returned frame: the server's engine alone (decode, encode not in it)
        self.session_info: dict[str, Any] = {}  # the replica and node serving this session (WebSocket)
        self._link: Link = WebSocketLink(self) if transport == "websocket" else HttpLink(self, self._http)
        self._link.start()

    @property
    def device(self) -> str:
        """Where it runs, e.g. "remote http://gpu-box:8000 -> fomm on cuda:0 NVIDIA L4 fp16 torch",
        with the link's status while it is not connected (the live stats and status bar show it)."""
        return self._where if self.status == CONNECTED else f"{self._where} [{self.status}]"

    @property
    def lock(self) -> threading.Condition:
        """The condition that guards the session state (re-entrant); the link holds it where what
        it sends must match that state (``links.LinkOwner``)."""
        return self._cond

    @classmethod
    def from_config(cls, config: EngineConfig, motion: MotionOptions | None = None) -> RemoteEngine:
        server = config.option("server")
        if not server:
            raise ConfigError("The remote engine needs a server address.",
                              "Pass --server http://HOST:PORT of a `python main.py serve` server.")
        return cls(str(server), config.option("token") or os.environ.get(TOKEN_ENV) or None,
                   transport=config.option("transport", "websocket"),
                   image_format=config.option("image_format", "jpeg"),
                   jpeg_quality=int(config.option("jpeg_quality", wire.DEFAULT_QUALITY)),
                   max_in_flight=int(config.option("max_in_flight", 2)),
                   expect_engine=config.option("remote_engine"), options=motion)

    # ----------------------------------------------------------------- HTTP helpers
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def _fetch_info(self) -> dict[str, Any]:
        import httpx

        try:
            response = self._http.get(wire.INFO)
        except httpx.HTTPError as err:
            raise _unreachable(self.server, err) from err
        if response.status_code == 401:
            raise EngineError(f"The server at {self.server} refused the connection: {BAD_TOKEN}.", TOKEN_HINT)
        if response.status_code != 200:
            _code, message = error_message(response)
            raise EngineError(f"The server at {self.server} answered {response.status_code} ({message}).",
                              "Is this the address of a `python main.py serve` server?")
        try:
            info = response.json()
            int(info["size"]), info["engine"], info["device"]
        except (ValueError, KeyError, TypeError) as err:
            raise EngineError(f"{self.server} is not a `serve` server (its {wire.INFO} answer is not one).") from err
        if info.get("protocol") != wire.PROTOCOL:
            raise EngineError(f"The server speaks protocol {info.get('protocol')}, this app {wire.PROTOCOL}.",
                              "Run the same version of the app on both machines.")
        return info

    # ----------------------------------------------------------------- Engine protocol
    def set_source(self, image: np.ndarray, landmarks: np.ndarray | None = None) -> None:
        try:
            check_frame(image, "avatar image")
        except ValueError as err:
            raise BadImageError(f"The avatar is not a usable picture: {err}") from err
        lms = None if landmarks is None else np.ascontiguousarray(landmarks, np.float32).reshape(-1, 2)
        avatar_id = wire.content_id(image, lms)
        with self._cond:
            previous = self._avatar
            self._avatar = (avatar_id, np.array(image, copy=True), None if lms is None else lms.copy())
            self._avatar_error = None
            self._bump()
            self._held = self._avatar[1]
            self._ready = False
            self._link.state_changed(avatar=True)
            # Wait (as a local engine's set_source would) for the server to take it, or say why not;
            # not while the server is away (it gets the avatar when the link is back).
            deadline = time.perf_counter() + self.upload_timeout
            while (not self._ready and self._avatar_error is None and self.status not in (LOST, BAD_TOKEN)
                   and time.perf_counter() < deadline):
                self._cond.wait(0.05)
            error = self._avatar_error
            if error is not None:
                self._avatar = previous
                self._avatar_error = None
                self._bump()
                self._held = None if previous is None else previous[1]
                self._ready = False
                self._link.state_changed(avatar=True)
                raise error

    def set_reference(self, image: np.ndarray | None, landmarks: np.ndarray | None = None) -> None:
        with self._cond:
            if image is None:
                self._reference = None
            else:
                check_frame(image, "reference")
                lms = None if landmarks is None else np.array(landmarks, np.float32, copy=True).reshape(-1, 2)
                self._reference = (np.array(image, copy=True), lms)
            self._bump()
            self._link.state_changed()

    def has_reference(self) -> bool:
        with self._cond:
            return self._reference is not None

    def set_options(self, options: MotionOptions) -> None:
        with self._cond:
            self.options = options
            self._bump()
            self._link.state_changed()

    def set_controls(self, values: dict) -> None:
        """Live options of the server's engine, passed through (the server checks them)."""
        with self._cond:
            self._controls = {str(k): v for k, v in dict(values).items()}
            self._bump()
            self._link.state_changed()

    def predict(self, image: np.ndarray, landmarks: np.ndarray | None = None) -> np.ndarray:
        check_frame(image, "driving crop")
        lms = None if landmarks is None else np.ascontiguousarray(landmarks, np.float32).reshape(-1, 2)
        t_call = time.perf_counter()
        with self._cond:
            if self._avatar is None:
                raise EngineError("No avatar is set.", "Choose an avatar before animating.")
            self._check_silence(t_call)
            if self._ready:
                if len(self._inflight) < self.max_in_flight:
                    self._send_frame(image, lms)
                else:
                    self.dropped += 1  # the pipe is full: this frame is skipped, never queued
            # Wait while more than max_in_flight - 1 frames are on the way (one slot is free for
            # the next call), at most until the server counts as lost.
            while self._ready and len(self._inflight) > self.max_in_flight - 1:
                now = time.perf_counter()
                if self._check_silence(now):
                    break
                self._cond.wait(0.05)
            reply = self._newest
            if reply is not None and reply.seq > self._returned:
                self._returned = reply.seq
                self.returned += 1
                self._held = reply.frame
                self._timings = {"network": max(0.0, reply.rtt_ms - reply.server_ms), "server": reply.server_ms}
                self.last_engine_ms = reply.engine_ms
            return self._held if self._held is not None else self._avatar[1]

    def timings(self) -> dict[str, float]:
        """Milliseconds of the last returned frame: ``network`` (round trip less the server's part)
        and ``server`` (from receiving the crop to sending the animated one)."""
        with self._cond:
            return dict(self._timings)

    def debug_info(self) -> dict[str, np.ndarray]:
        return {}

    def close(self) -> None:
        self._link.close()
        self._http.close()

    def stats(self) -> dict[str, Any]:
        """Counters since start (frames sent, received, dropped, stale, uploads, reconnects)."""
        with self._cond:
            return {"status": self.status, "sent": self.sent, "received": self.received, "returned": self.returned,
                    "dropped": self.dropped,
                    "stale": self.stale, "uploads": self.uploads, "connections": self.connections,
                    "in_flight": len(self._inflight), "lost_events": self.lost_events,
                    "bytes_up": self.bytes_up, "bytes_down": self.bytes_down}

    # ----------------------------------------------------------------- internals (hold _cond)
    def _bump(self) -> None:
        """The session state changed: replies to frames sent before are stale from now on."""
        self._version += 1
        self._newest = None

    def _send_frame(self, image: np.ndarray, lms: np.ndarray | None) -> None:
        data = wire.encode_image(image, self.image_format, self.jpeg_quality)
        self._seq += 1
        seq = self._seq
        if self._reference is None:
            # The server's engine takes this frame as its reference (as a local one would).
            self._reference = (np.array(image, copy=True), None if lms is None else lms.copy())
            self._link.reference_taken()
        self._inflight[seq] = _Sent(time.perf_counter(), self._version)
        if self._link.send_frame(seq, data, lms):
            self.sent += 1
        else:
            self._inflight.pop(seq, None)

    def silence_limit(self) -> float:
        """Seconds without an answer after which the server counts as lost: ``lost_after``, or four
        recent round trips (a slow or busy engine, e.g. FOMM on a CPU), or 30 s before the first
        answer (a cold engine behind other clients' frames)."""
        if self._rtt_s is None:
            return max(self.lost_after, 30.0)
        return max(self.lost_after, 4.0 * self._rtt_s)

    def _check_silence(self, now: float) -> bool:
        """True (and the link told to reconnect) when the oldest frame on the way waited too long."""
        if not self._inflight:
            return False
        oldest = min(s.t for s in self._inflight.values())
        if now - max(oldest, self._last_heard) <= self.silence_limit():
            return False
        log.warning("no reply from %s for %.1f s; reconnecting", self.server, now - oldest)
        self._link.reset("no reply")
        self._lost_locked()
        return True

    def _lost_locked(self) -> None:
        if self._ready or self.status != LOST:
            self.lost_events += 1
            if self.status == CONNECTED:
                log.warning("%s: server lost, reconnecting (the output keeps the last animated frame)", self.server)
        self._ready = False
        self._inflight.clear()
        if self.status != BAD_TOKEN:
            self.status = LOST
        self._cond.notify_all()

    # ----------------------------------------------------------------- links.LinkOwner (link threads)
    def snapshot(self) -> SessionState:
        """What the link sends when (re)connecting and with each HTTP frame (takes the lock)."""
        with self._cond:
            return SessionState(avatar=self._avatar, reference=self._reference, motion=self.options,
                                controls=dict(self._controls), ready=self._ready, version=self._version)

    def on_reply(self, seq: int, data: bytes, server_ms: float, engine_ms: float = 0.0) -> None:
        t = time.perf_counter()
        try:
            frame = wire.decode_image(data, square=True)
        except wire.WireError as err:
            log.warning("bad frame from the server: %s", err)
            frame = None
        with self._cond:
            sent = self._inflight.pop(seq, None)
            self._last_heard = t
            self._cond.notify_all()
            if frame is None or sent is None:
                return
            self.received += 1
            if sent.version != self._version or (self._newest is not None and seq < self._newest.seq):
                self.stale += 1
                return
            self._newest = _Reply(seq, frame, (t - sent.t) * 1000.0, float(server_ms), float(engine_ms))
            rtt = t - sent.t
            self._rtt_s = rtt if self._rtt_s is None else 0.8 * self._rtt_s + 0.2 * rtt

    def on_frame_failed(self, seq: int, message: str) -> None:
        with self._cond:
            self._inflight.pop(seq, None)
            self._cond.notify_all()
        log.warning("the server could not animate frame %d: %s", seq, message)

    def on_ready(self) -> None:
        with self._cond:
            self._ready = self._avatar is not None
            if self.status != CONNECTED and self.lost_events:
                log.warning("%s: connected again", self.server)
            self.status = CONNECTED
            self._cond.notify_all()

    def on_connected(self) -> None:
        with self._cond:
            self.connections += 1
            if self._avatar is None:
                self.status = CONNECTED

    def on_avatar_error(self, code: str, message: str) -> None:
        error = {"no_face": NoFaceError, "bad_image": BadImageError}.get(code, EngineError)
        with self._cond:
            self._avatar_error = error(f"The server cannot use this avatar: {message}")
            self._cond.notify_all()

    def on_lost(self, status: str = LOST) -> None:
        with self._cond:
            self._lost_locked()
            if status == BAD_TOKEN:
                self.status = BAD_TOKEN

    def on_session_info(self, info: dict[str, Any]) -> None:
        with self._cond:
            self.session_info = dict(info)

    def on_avatar_wanted(self, avatar_id: Any) -> AvatarPayload | None:
        with self._cond:
            avatar = self._avatar
            if avatar is None or avatar_id != avatar[0]:
                return None
            self._ready = False  # no frames until the server has it again
            self._inflight.clear()
            self.on_uploading()
            return avatar

    def on_uploading(self) -> None:
        with self._cond:
            self.status = UPLOADING
            self.uploads += 1

    def on_avatar_unknown(self) -> None:
        with self._cond:
            self._ready = False
