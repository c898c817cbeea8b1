"""The remote engine's links to the server, each with its own thread.

``WebSocketLink``: one WebSocket per session (``/v1/stream``): control messages as JSON text,
frames, references and avatars as binary messages (``wire.pack``). ``http_link.HttpLink``: one
HTTP POST per frame. Both connect, reconnect with backoff, and talk to the engine that owns them
only through ``LinkOwner`` (defined here; ``client.RemoteEngine`` implements it): its settings, its
lock, a ``snapshot`` of the session and its ``on_*`` callbacks, which the link calls from its
threads.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from avatarify_app.config import MotionOptions
from avatarify_app.engines.remote import wire

log = logging.getLogger(__name__)

CONNECTED = "connected"
CONNECTING = "connecting"
LOST = "server lost, reconnecting"
BAD_TOKEN = "wrong or missing token"
UPLOADING = "uploading the avatar"

AvatarPayload = tuple[str, np.ndarray, np.ndarray | None]
"""An avatar as the session holds it: (content id, image, landmarks or None)."""


@dataclass(frozen=True)
class SessionState:
    """The session as the engine has it at one moment (``LinkOwner.snapshot``): what a link sends
    when it (re)connects, and with each frame over HTTP."""

    avatar: AvatarPayload | None
    reference: tuple[np.ndarray, np.ndarray | None] | None  # (image, landmarks or None)
    motion: MotionOptions
    controls: dict[str, Any]  # live options of the server's engine (a copy)
    ready: bool  # the server has this session's avatar and state: frames may go
    version: int  # changes with every change of the session; replies to frames of an older one are stale

    @property
    def avatar_id(self) -> str | None:
        return None if self.avatar is None else self.avatar[0]


class LinkOwner(Protocol):
    """What a link needs from the engine that owns it (``client.RemoteEngine`` implements it).

    Settings, read only: ``server`` (``http(s)://host:port``), ``image_format``, ``jpeg_quality``,
    ``max_in_flight``, ``connect_timeout``, ``lost_after`` and ``auth_headers()``.

    ``lock`` guards the session state. It is re-entrant, and the engine holds it when it calls the
    link's ``send_frame``, ``state_changed``, ``reference_taken`` and ``reset``; the link holds it
    where what it sends or keeps must match the state (the hello, the state sent before "ready",
    a reference id the server returned).

    ``bytes_up`` and ``bytes_down`` count the bytes of the messages sent and received; the link
    adds to them.

    The ``on_*`` callbacks come from the link's threads and take ``lock`` themselves.
    """

    server: str
    image_format: str
    jpeg_quality: int
    max_in_flight: int
    connect_timeout: float
    lost_after: float
    bytes_up: int
    bytes_down: int

    @property
    def lock(self) -> threading.Condition:
        """The condition that guards the session state (see the class doc)."""

    def auth_headers(self) -> dict[str, str]:
        """The headers that carry the token (none without one)."""

    def snapshot(self) -> SessionState:
        """The session now (takes ``lock``)."""

    def on_connected(self) -> None:
        """A connection is up (the avatar and state follow)."""

    def on_lost(self, status: str = LOST) -> None:
        """The connection is gone (``status`` LOST, or BAD_TOKEN when the server refused the token):
        no frames on the way any more, none sent until ``on_ready``."""

    def on_session_info(self, info: dict[str, Any]) -> None:
        """What the server said about the session: its engine, device, replica and node."""

    def on_ready(self) -> None:
        """The server has the session's avatar and state: frames may go."""

    def on_reply(self, seq: int, data: bytes, server_ms: float, engine_ms: float = 0.0) -> None:
        """The animated frame ``seq`` came back (encoded ``data``) and the server's milliseconds."""

    def on_frame_failed(self, seq: int, message: str) -> None:
        """Frame ``seq`` will not come back (``message`` says why)."""

    def on_avatar_error(self, code: str, message: str) -> None:
        """The server cannot use the avatar (``code`` no_face, bad_image or another)."""

    def on_avatar_wanted(self, avatar_id: Any) -> AvatarPayload | None:
        """The server asks for ``avatar_id`` (WebSocket). When that is the session's avatar: no frames
        until the server has it again (those on the way are forgotten), ``on_uploading``, and the
        avatar to send; else None and nothing changes."""

    def on_uploading(self) -> None:
        """The link starts uploading the avatar (the status says so; the upload is counted)."""

    def on_avatar_unknown(self) -> None:
        """The server no longer has the avatar (HTTP): no frames until the link has uploaded it again."""


def websocket_url(server: str) -> str:
    return ("wss://" + server[len("https://"):] if server.startswith("https://")
            else "ws://" + server[len("http://"):]) + wire.STREAM


def error_message(response) -> tuple[str, str]:
    """(code, message) from an error response of the server."""
    try:
        body = response.json()
        return str(body.get("code", response.status_code)), str(body.get("message", body))
    except ValueError:
        return str(response.status_code), response.text[:200]


class Link:
    """What both transports share: the link thread with its stop event and backoff, and the
    ``LinkOwner`` it serves."""

    def __init__(self, owner: LinkOwner) -> None:
        self.owner = owner
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
                log.exception("the link to %s failed", self.owner.server)
                status = LOST
            if self._stop.is_set():
                break
            self.connected = False
            self.owner.on_lost(status)
            if self._was_connected:
                backoff = 0.2
            self._sleep(backoff)
            backoff = min(backoff * 2, 5.0 if status != BAD_TOKEN else 30.0)

    def _connected(self) -> None:
        self.connected = self._was_connected = True
        self.owner.on_connected()

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


def motion_json(motion: MotionOptions) -> dict[str, bool]:
    return {"relative": bool(motion.relative), "adapt_scale": bool(motion.adapt_scale)}


class WebSocketLink(Link):
    """One WebSocket per session (``/v1/stream``); control as JSON text, data as binary messages."""

    def __init__(self, owner: LinkOwner) -> None:
        super().__init__(owner)
        self._ws = None
        self._send_lock = threading.Lock()
        self._reset_reason: str | None = None

    def _serve_once(self) -> str:
        from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
        from websockets.sync.client import connect

        e = self.owner
        headers = dict(e.auth_headers())
        avatar_id = e.snapshot().avatar_id
        if avatar_id is not None:
            headers[wire.ROUTE_HEADER] = avatar_id  # to a replica that has the avatar
        with contextlib.ExitStack() as stack:
            try:
                # Entered as a context manager: websockets 17 connects only then (earlier versions
                # connect at once and accept it too).
                ws = stack.enter_context(connect(
                    websocket_url(e.server), additional_headers=headers, open_timeout=e.connect_timeout,
                    max_size=wire.MAX_MESSAGE_BYTES, compression=None, ping_interval=5, ping_timeout=5,
                    close_timeout=1))
            except InvalidStatus as err:
                code = err.response.status_code
                log.warning("the server refused the stream (%s)", code)
                return BAD_TOKEN if code in (401, 403) else LOST
            except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed) as err:
                log.info("cannot connect to %s: %s", e.server, err)
                return LOST
            return self._session(ws)

    def _session(self, ws) -> str:
        """Run one connected stream until it closes, is reset or the link stops."""
        from websockets.exceptions import ConnectionClosed

        e = self.owner
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

    # --- handshake and state (call with owner.lock held, except _hello)
    def _hello(self) -> None:
        e = self.owner
        with e.lock:
            self._send(json.dumps({"type": "hello", "protocol": wire.PROTOCOL,
                                   "avatar": e.snapshot().avatar_id,
                                   "format": e.image_format, "quality": e.jpeg_quality}))

    def _send_state(self, state: SessionState) -> None:
        """Options, controls and reference, as ``state`` (a snapshot taken with owner.lock held) has them."""
        self._send(json.dumps({"type": "options", **motion_json(state.motion), "controls": state.controls}))
        ref = state.reference
        if ref is None:
            self._send(json.dumps({"type": "reference", "clear": True}))
        else:
            self._send_reference(*ref)

    def _send_reference(self, image: np.ndarray, lms: np.ndarray | None) -> None:
        data = wire.encode_image(image, "png")
        self._send(wire.pack({"kind": "reference", "format": "png",
                              "landmarks": None if lms is None else len(lms)}, data, wire.landmarks_bytes(lms)))

    def state_changed(self, avatar: bool = False) -> None:
        if self._ws is None:
            return
        state = self.owner.snapshot()
        if avatar:
            if state.avatar is not None:
                self._send(json.dumps({"type": "avatar", "id": state.avatar_id}))
            return
        if state.ready:
            self._send_state(state)

    def send_frame(self, seq: int, data: bytes, lms: np.ndarray | None) -> bool:
        message = wire.pack({"kind": "frame", "seq": seq, "format": self.owner.image_format,
                             "landmarks": None if lms is None else len(lms)}, data, wire.landmarks_bytes(lms))
        self.owner.bytes_up += len(message)
        return self._send(message)

    # --- messages from the server (link thread)
    def _on_control(self, message: dict[str, Any]) -> None:
        e = self.owner
        kind = message.get("type")
        if kind == "need_avatar":
            self._upload(message.get("id"))
        elif kind == "ready":
            with e.lock:
                e.on_session_info({k: message.get(k) for k in ("engine", "device", "replica", "node")})
                state = e.snapshot()
                if state.avatar is None or message.get("avatar") == state.avatar_id:
                    if state.avatar is not None:
                        self._send_state(state)  # before any frame of this connection
                    e.on_ready()
        elif kind == "error":
            code, text = str(message.get("code")), str(message.get("message"))
            if code == "unknown_avatar":
                self._upload(message.get("id"))
            elif code in ("no_face", "bad_image", "avatar_error"):
                e.on_avatar_error(code, text)
            elif isinstance(message.get("seq"), int):
                e.on_frame_failed(message["seq"], text)
            else:
                log.warning("server error %s: %s", code, text)

    def _upload(self, avatar_id: Any) -> None:
        avatar = self.owner.on_avatar_wanted(avatar_id)  # no frames until the server has it again
        if avatar is None:
            return
        avatar_id, image, lms = avatar
        data = wire.encode_image(image, "png")
        self._send(wire.pack({"kind": "avatar", "id": avatar_id, "format": "png",
                              "landmarks": None if lms is None else len(lms)}, data, wire.landmarks_bytes(lms)))

    def _on_data(self, message: bytes) -> None:
        self.owner.bytes_down += len(message)
        header, parts = wire.unpack(message)
        if header.get("kind") == "frame" and isinstance(header.get("seq"), int) and parts:
            self.owner.on_reply(header["seq"], parts[0], float(header.get("server_ms", 0.0)),
                                  float(header.get("engine_ms", 0.0)))
