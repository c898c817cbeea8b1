"""The remote engine's links to the server, each with its own thread (``client.RemoteEngine`` owns one).

``WebSocketLink``: one WebSocket per session (``/v1/stream``): control messages as JSON text,
frames, references and avatars as binary messages (``wire.pack``). ``http_link.HttpLink``: one
HTTP POST per frame. Both connect, reconnect with backoff, and call back into the engine (its
``_on_*`` methods) from the link thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from avatarify_app.config import MotionOptions
from avatarify_app.engines.remote import wire

if TYPE_CHECKING:
    from avatarify_app.engines.remote.client import RemoteEngine

log = logging.getLogger(__name__)

CONNECTED = "connected"
CONNECTING = "connecting"
LOST = "server lost, reconnecting"
BAD_TOKEN = "wrong or missing token"
UPLOADING = "uploading the avatar"


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


def motion_json(motion: MotionOptions) -> dict[str, bool]:
    return {"relative": bool(motion.relative), "adapt_scale": bool(motion.adapt_scale)}


class WebSocketLink(Link):
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

        e = self.engine
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
        self._send(json.dumps({"type": "options", **motion_json(state["motion"]), "controls": state["controls"]}))
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
        message = wire.pack({"kind": "frame", "seq": seq, "format": self.engine.image_format,
                             "landmarks": None if lms is None else len(lms)}, data, wire.landmarks_bytes(lms))
        self.engine.bytes_up += len(message)
        return self._send(message)

    # --- messages from the server (link thread)
    def _on_control(self, message: dict[str, Any]) -> None:
        e = self.engine
        kind = message.get("type")
        if kind == "need_avatar":
            self._upload(message.get("id"))
        elif kind == "ready":
            with e._cond:
                e.session_info = {k: message.get(k) for k in ("engine", "device", "replica", "node")}
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
        self.engine.bytes_down += len(message)
        header, parts = wire.unpack(message)
        if header.get("kind") == "frame" and isinstance(header.get("seq"), int) and parts:
            self.engine._on_reply(header["seq"], parts[0], float(header.get("server_ms", 0.0)),
                                  float(header.get("engine_ms", 0.0)))
