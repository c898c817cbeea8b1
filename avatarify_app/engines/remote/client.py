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
closes; after ``lost_after`` seconds when replies stop), ``predict`` returns the last animated
frame (or the avatar itself, never the driving face) without blocking, and a link thread
reconnects with backoff, re-uploads the avatar and re-sends the reference.

Threads: the caller's (``predict`` and the setters) and one link thread per engine (connects,
receives, decodes replies); both meet in a condition. ``close`` stops and joins the link thread.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from avatarify_app.config import EngineConfig, MotionOptions
from avatarify_app.engines.remote import TOKEN_ENV, server_problem, wire
from avatarify_app.errors import BadImageError, ConfigError, EngineError, NoFaceError
from avatarify_app.frames import check_frame

log = logging.getLogger(__name__)

CONNECTED = "connected"
CONNECTING = "connecting"
LOST = "server lost, reconnecting"
BAD_TOKEN = "wrong or missing token"
UPLOADING = "uploading the avatar"

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


def websocket_url(server: str) -> str:
    return ("wss://" + server[len("https://"):] if server.startswith("https://")
            else "ws://" + server[len("http://"):]) + wire.STREAM


def _unreachable(server: str, err: Exception) -> EngineError:
    return EngineError(f"Cannot reach the server at {server} ({type(err).__name__}: {err}).",
                       "Start it there with `python main.py serve --host 0.0.0.0 --token auto`, check the "
                       "address, port and firewall, or pick another engine.")


def _error_message(response) -> tuple[str, str]:
    """(code, message) from an error response of the server."""
    try:
        body = response.json()
        return str(body.get("code", response.status_code)), str(body.get("message", body))
    except ValueError:
        return str(response.status_code), response.text[:200]


@dataclass
class _Reply:
    seq: int
    frame: np.ndarray
    rtt_ms: float
    server_ms: float


@dataclass
class _Sent:
    t: float
    version: int


class RemoteEngine:
    """``Engine`` (engines/base.py) that animates on a `serve` server (see the module doc).

    ``status``: "connecting", "connected", "server lost, reconnecting", "wrong or missing token",
    "uploading the avatar" or "server error: ..." (for a status bar). ``device`` names the server
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
        self.device = f"remote {self.server} -> {self.server_engine} on {self.server_device}"
        self.status = CONNECTING
        self.options = options or MotionOptions()
        # Session state (guarded by _cond), mirrored on the server.
        self._cond = threading.Condition()
        self._version = 0
        self._avatar: tuple[str, np.ndarray, np.ndarray | None] | None = None
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
        # Counters (for the bench, the soak and the tests).
        self.sent = self.received = self.dropped = self.stale = self.uploads = self.connections = 0
        self.lost_events = 0
        link = WebSocketLink if transport == "websocket" else HttpLink
        self._link = link(self)
        self._link.start()

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
            _code, message = _error_message(response)
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
                self._cond.wait(min(0.05, max(0.001, self.lost_after - (now - t_call))))
            reply = self._newest
            if reply is not None and reply.seq > self._returned:
                self._returned = reply.seq
                self._held = reply.frame
                self._timings = {"network": max(0.0, reply.rtt_ms - reply.server_ms), "server": reply.server_ms}
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
            return {"status": self.status, "sent": self.sent, "received": self.received, "dropped": self.dropped,
                    "stale": self.stale, "uploads": self.uploads, "connections": self.connections,
                    "in_flight": len(self._inflight), "lost_events": self.lost_events}

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

    def _check_silence(self, now: float) -> bool:
        """True (and the link told to reconnect) when the oldest frame on the way waited too long."""
        if not self._inflight:
            return False
        oldest = min(s.t for s in self._inflight.values())
        if now - oldest <= self.lost_after:
            return False
        log.warning("no reply from %s for %.1f s; reconnecting", self.server, now - oldest)
        self._link.reset("no reply")
        self._lost_locked()
        return True

    def _lost_locked(self) -> None:
        if self._ready or self.status != LOST:
            self.lost_events += 1
        self._ready = False
        self._inflight.clear()
        if self.status != BAD_TOKEN:
            self.status = LOST
        self._cond.notify_all()

    # ----------------------------------------------------------------- link callbacks (link thread)
    def _on_reply(self, seq: int, data: bytes, server_ms: float) -> None:
        t = time.perf_counter()
        try:
            frame = wire.decode_image(data, square=True)
        except wire.WireError as err:
            log.warning("bad frame from the server: %s", err)
            frame = None
        with self._cond:
            sent = self._inflight.pop(seq, None)
            self._cond.notify_all()
            if frame is None or sent is None:
                return
            self.received += 1
            if sent.version != self._version or (self._newest is not None and seq < self._newest.seq):
                self.stale += 1
                return
            self._newest = _Reply(seq, frame, (t - sent.t) * 1000.0, float(server_ms))

    def _on_frame_failed(self, seq: int, message: str) -> None:
        with self._cond:
            self._inflight.pop(seq, None)
            self._cond.notify_all()
        log.warning("the server could not animate frame %d: %s", seq, message)

    def _on_ready(self) -> None:
        with self._cond:
            self._ready = self._avatar is not None
            self.status = CONNECTED
            self._cond.notify_all()

    def _on_connected(self) -> None:
        with self._cond:
            self.connections += 1
            if self._avatar is None:
                self.status = CONNECTED

    def _on_avatar_error(self, code: str, message: str) -> None:
        error = {"no_face": NoFaceError, "bad_image": BadImageError}.get(code, EngineError)
        with self._cond:
            self._avatar_error = error(f"The server cannot use this avatar: {message}")
            self._cond.notify_all()

    def _on_lost(self, status: str = LOST) -> None:
        with self._cond:
            self._lost_locked()
            if status == BAD_TOKEN:
                self.status = BAD_TOKEN

    def _snapshot(self) -> dict[str, Any]:
        """What the link sends when (re)connecting (call with _cond held)."""
        return {"avatar": self._avatar, "reference": self._reference, "motion": self.options,
                "controls": dict(self._controls)}


# ============================================================================= links
class _Link:
    """What both transports share: the link thread with its stop event and backoff."""

    def __init__(self, engine: RemoteEngine) -> None:
        self.engine = engine
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"avatarify-remote-{type(self).__name__}", daemon=True)
        self.connected = self._was_connected = False

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._disconnect()
        self._thread.join(timeout=10)

    def _sleep(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def _run(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            self._was_connected = False
            try:
                status = self._serve_once()
            except Exception:  # the link thread never dies of a network surprise; it reconnects
                log.exception("the link to %s failed", self.engine.server)
                status = LOST
            if self._stop.is_set():
                break
            self.connected = False
            self.engine._on_lost(status)
            if self._was_connected:
                backoff = 0.2
            self._sleep(backoff)
            backoff = min(backoff * 2, 5.0 if status != BAD_TOKEN else 30.0)

    def _connected(self) -> None:
        self.connected = self._was_connected = True
        self.engine._on_connected()

    # Implemented by each transport.
    def _serve_once(self) -> str:
        raise NotImplementedError

    def _disconnect(self) -> None:
        raise NotImplementedError

    def send_frame(self, seq: int, data: bytes, lms: np.ndarray | None) -> bool:
        raise NotImplementedError

    def state_changed(self, avatar: bool = False) -> None:
        raise NotImplementedError

    def reference_taken(self) -> None:
        pass

    def reset(self, why: str) -> None:
        raise NotImplementedError


def _motion_json(motion: MotionOptions) -> dict[str, bool]:
    return {"relative": bool(motion.relative), "adapt_scale": bool(motion.adapt_scale)}


class WebSocketLink(_Link):
    """One WebSocket per session (``/v1/stream``); control as JSON text, data as binary messages."""

    def __init__(self, engine: RemoteEngine) -> None:
        super().__init__(engine)
        self._ws = None
        self._send_lock = threading.Lock()
        self._reset_reason: str | None = None

    def _serve_once(self) -> str:
        from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
        from websockets.sync.client import connect

        e = self.engine
        headers = dict(e.auth_headers())
        with e._cond:
            if e._avatar is not None:
                headers[wire.ROUTE_HEADER] = e._avatar[0]  # to a replica that has the avatar
        try:
            ws = connect(websocket_url(e.server), additional_headers=headers, open_timeout=e.connect_timeout,
                         max_size=wire.MAX_MESSAGE_BYTES, compression=None, ping_interval=5, ping_timeout=5,
                         close_timeout=1)
        except InvalidStatus as err:
            code = err.response.status_code
            log.warning("the server refused the stream (%s)", code)
            return BAD_TOKEN if code in (401, 403) else LOST
        except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed) as err:
            log.info("cannot connect to %s: %s", e.server, err)
            return LOST
        self._ws = ws
        self._reset_reason = None
        self._connected()
        try:
            self._hello()
            while not self._stop.is_set() and self._reset_reason is None:
                try:
                    message = ws.recv(timeout=0.1)
                except TimeoutError:
                    continue
                if isinstance(message, str):
                    self._on_control(wire.parse_json(message))
                else:
                    self._on_data(message)
        except ConnectionClosed as err:
            reason = err.rcvd.reason if err.rcvd is not None else ""
            if reason == BAD_TOKEN:
                return BAD_TOKEN
            if not self._stop.is_set():
                log.warning("stream to %s closed (%s)", e.server, reason or err)
        except (OSError, wire.WireError) as err:
            log.warning("stream to %s failed: %s", e.server, err)
        finally:
            self._disconnect()
        return LOST

    def _disconnect(self) -> None:
        ws, self._ws = self._ws, None
        self.connected = False
        if ws is not None:
            try:
                ws.close()
            except Exception:  # closing a broken socket may fail in many ways; it is gone either way
                log.debug("closing the stream failed", exc_info=True)

    def reset(self, why: str) -> None:
        """Drop this connection and make a new one (the receive loop sees it within 0.1 s)."""
        self._reset_reason = why

    def _send(self, message: str | bytes) -> bool:
        ws = self._ws
        if ws is None:
            return False
        try:
            with self._send_lock:
                ws.send(message)
            return True
        except Exception as err:  # the receive loop sees the broken connection and reconnects
            log.info("send failed: %s", err)
            return False

    # --- handshake and state (call with engine._cond held, except _hello)
    def _hello(self) -> None:
        e = self.engine
        with e._cond:
            avatar = e._avatar
            self._send(json.dumps({"type": "hello", "protocol": wire.PROTOCOL,
                                   "avatar": avatar[0] if avatar else None,
                                   "format": e.image_format, "quality": e.jpeg_quality}))

    def _send_state(self) -> None:
        """Options, controls and reference, as the engine has them now (engine._cond held)."""
        e = self.engine
        state = e._snapshot()
        self._send(json.dumps({"type": "options", **_motion_json(state["motion"]), "controls": state["controls"]}))
        ref = state["reference"]
        if ref is None:
            self._send(json.dumps({"type": "reference", "clear": True}))
        else:
            self._send_reference(*ref)

    def _send_reference(self, image: np.ndarray, lms: np.ndarray | None) -> None:
        data = wire.encode_image(image, "png")
        self._send(wire.pack({"kind": "reference", "format": "png",
                              "landmarks": None if lms is None else len(lms)}, data, wire.landmarks_bytes(lms)))

    def state_changed(self, avatar: bool = False) -> None:
        e = self.engine
        if self._ws is None:
            return
        if avatar:
            if e._avatar is not None:
                self._send(json.dumps({"type": "avatar", "id": e._avatar[0]}))
            return
        if e._ready:
            self._send_state()

    def send_frame(self, seq: int, data: bytes, lms: np.ndarray | None) -> bool:
        return self._send(wire.pack({"kind": "frame", "seq": seq, "format": self.engine.image_format,
                                     "landmarks": None if lms is None else len(lms)},
                                    data, wire.landmarks_bytes(lms)))

    # --- messages from the server (link thread)
    def _on_control(self, message: dict[str, Any]) -> None:
        e = self.engine
        kind = message.get("type")
        if kind == "need_avatar":
            self._upload(message.get("id"))
        elif kind == "ready":
            with e._cond:
                if e._avatar is None or message.get("avatar") == e._avatar[0]:
                    if e._avatar is not None:
                        self._send_state()  # before any frame of this connection
                    e._on_ready()
        elif kind == "error":
            code, text = str(message.get("code")), str(message.get("message"))
            if code == "unknown_avatar":
                self._upload(message.get("id"))
            elif code in ("no_face", "bad_image", "avatar_error"):
                e._on_avatar_error(code, text)
            elif isinstance(message.get("seq"), int):
                e._on_frame_failed(message["seq"], text)
            else:
                log.warning("server error %s: %s", code, text)

    def _upload(self, avatar_id: Any) -> None:
        e = self.engine
        with e._cond:
            avatar = e._avatar
            if avatar is None or avatar_id != avatar[0]:
                return
            e._ready = False  # no frames until the server has it again
            e._inflight.clear()
            e.status = UPLOADING
            e.uploads += 1
        avatar_id, image, lms = avatar
        data = wire.encode_image(image, "png")
        self._send(wire.pack({"kind": "avatar", "id": avatar_id, "format": "png",
                              "landmarks": None if lms is None else len(lms)}, data, wire.landmarks_bytes(lms)))

    def _on_data(self, message: bytes) -> None:
        header, parts = wire.unpack(message)
        if header.get("kind") == "frame" and isinstance(header.get("seq"), int) and parts:
            self.engine._on_reply(header["seq"], parts[0], float(header.get("server_ms", 0.0)))


class HttpLink(_Link):
    """One HTTP POST per frame (``/v1/frame``), ``max_in_flight`` at once; the avatar goes up with
    ``POST /v1/avatars`` and the reference inline once, then by the id the server returned."""

    def __init__(self, engine: RemoteEngine) -> None:
        super().__init__(engine)
        self._pool = ThreadPoolExecutor(engine.max_in_flight, thread_name_prefix="avatarify-remote-post")
        self._reference_id: str | None = None
        self._lost = threading.Event()
        self._avatar_sent: str | None = None

    def _serve_once(self) -> str:
        import httpx

        e = self.engine
        while not self._stop.is_set():
            with e._cond:
                avatar = e._avatar
                ready = e._ready
            if avatar is not None and (not ready or self._avatar_sent != avatar[0]):
                try:
                    status = self._upload(avatar)
                except httpx.HTTPError as err:
                    log.info("cannot reach %s: %s", e.server, err)
                    return LOST
                if status != "ok":
                    return status
            if not self.connected:
                self._connected()
            if self._lost.is_set():
                self._lost.clear()
                return LOST
            self._sleep(0.1)
        return "ok"

    def _upload(self, avatar: tuple[str, np.ndarray, np.ndarray | None]) -> str:
        e = self.engine
        avatar_id, image, lms = avatar
        body = {"image": wire.b64encode(wire.encode_image(image, "png")),
                "landmarks": None if lms is None else lms.tolist()}
        with e._cond:
            e.status = UPLOADING
            e.uploads += 1
        response = e._http.post(wire.AVATARS, json=body, headers={wire.ROUTE_HEADER: avatar_id})
        if response.status_code == 401:
            return BAD_TOKEN
        if response.status_code != 200:
            code, message = _error_message(response)
            e._on_avatar_error(code, message)
            return "ok" if code in ("no_face", "bad_image") else LOST
        if response.json().get("avatar") != avatar_id:
            e._on_avatar_error("avatar_error", "the server computed another id for it")
            return LOST
        self._avatar_sent = avatar_id
        self._reference_id = None
        e._on_ready()
        return "ok"

    def _disconnect(self) -> None:
        self.connected = False
        self._pool.shutdown(wait=True, cancel_futures=True)

    def reset(self, why: str) -> None:
        self._lost.set()
        self._wake.set()

    def state_changed(self, avatar: bool = False) -> None:
        if avatar:
            self._avatar_sent = None
            self._wake.set()
        else:
            self._reference_id = None

    def reference_taken(self) -> None:
        self._reference_id = None

    def send_frame(self, seq: int, data: bytes, lms: np.ndarray | None) -> bool:
        e = self.engine
        state = e._snapshot()
        if state["avatar"] is None:
            return False
        body: dict[str, Any] = {"avatar": state["avatar"][0], "image": wire.b64encode(data),
                                "landmarks": None if lms is None else lms.tolist(),
                                "format": e.image_format, "quality": e.jpeg_quality,
                                **_motion_json(state["motion"]), "controls": state["controls"]}
        if self._reference_id is not None:
            body["reference_id"] = self._reference_id
        elif state["reference"] is not None:
            ref, ref_lms = state["reference"]
            body["reference"] = wire.b64encode(wire.encode_image(ref, "png"))
            body["reference_landmarks"] = None if ref_lms is None else ref_lms.tolist()
        try:
            self._pool.submit(self._post, seq, body, state["avatar"][0], e._version)
        except RuntimeError:  # shut down
            return False
        return True

    def _post(self, seq: int, body: dict[str, Any], avatar_id: str, version: int) -> None:
        import httpx

        e = self.engine
        try:
            response = e._http.post(wire.FRAME, json=body, headers={wire.ROUTE_HEADER: avatar_id},
                                    timeout=e.lost_after + 1.0)
        except httpx.HTTPError as err:
            log.info("frame %d: %s", seq, err)
            e._on_frame_failed(seq, str(err))
            self.reset("unreachable")
            return
        if response.status_code == 200:
            ref_id = response.headers.get("x-avatarify-reference-id")
            if ref_id and "reference" in body:
                with e._cond:
                    if version == e._version:  # not a reference replaced since
                        self._reference_id = ref_id
            e._on_reply(seq, response.content, float(response.headers.get("x-avatarify-server-ms", 0.0)))
            return
        code, message = _error_message(response)
        e._on_frame_failed(seq, message)
        if response.status_code == 401:
            e._on_lost(BAD_TOKEN)
            self.reset(BAD_TOKEN)
        elif code == "unknown_avatar":
            with e._cond:
                e._ready = False
            self._avatar_sent = None
            self._wake.set()
        elif code == "unknown_reference":
            self._reference_id = None

