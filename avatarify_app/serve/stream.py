"""One client session over the WebSocket ``/v1/stream`` (docs/REMOTE.md lists the messages).

Control messages (JSON text) change the session's state; binary messages bring the avatar,
the reference and frames. Each frame is animated in its own task (at most
``MAX_SESSION_IN_FLIGHT`` at once) and answered as soon as it is done; a bad message is answered
with an error and the session goes on.
"""

import asyncio
import json
import logging
import time
from typing import Any

from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect

from avatarify_app.config import MotionOptions
from avatarify_app.engines.remote import wire
from avatarify_app.serve.schemas import MAX_SESSION_IN_FLIGHT, Busy, error_of
from avatarify_app.serve.service import FrameJob, SessionState

log = logging.getLogger(__name__)


class StreamSession:
    """One client session over a WebSocket (see docs/REMOTE.md for the messages)."""

    def __init__(self, server: Any, websocket: WebSocket) -> None:
        """``server``: the replica (``app.EngineServer``): its service, ``prepared``, ``animate``, ``info``."""
        self.server = server
        self.ws = websocket
        self.state = SessionState()
        self.avatar_id: str | None = None
        self.fmt, self.quality = "jpeg", wire.DEFAULT_QUALITY
        self._send_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task] = set()

    async def run(self) -> None:
        try:
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                try:
                    if message.get("text") is not None:
                        await self.control(wire.parse_json(message["text"]))
                    elif message.get("bytes") is not None:
                        await self.data(message["bytes"])
                except Exception as err:  # a bad message is answered, the session goes on
                    await self.send_error(err)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            for task in self._tasks:
                task.cancel()

    async def send_json(self, message: dict[str, Any]) -> None:
        async with self._send_lock:
            await self.ws.send_text(json.dumps(message))

    async def send_error(self, err: Exception, **extra: Any) -> None:
        status, code, message, hint = error_of(err)
        if status >= 500:
            log.error("stream request failed", exc_info=err)
        try:
            await self.send_json({"type": "error", "code": code, "message": message, "hint": hint, **extra})
        except Exception:  # the socket is gone
            log.debug("could not send an error", exc_info=True)

    # --- control (JSON text)
    async def control(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "hello":
            if message.get("protocol") != wire.PROTOCOL:
                raise wire.WireError(f"This server speaks protocol {wire.PROTOCOL}, not {message.get('protocol')}.",
                                     "Run the same version of the app on both machines.")
            self.fmt, self.quality = wire.check_format(message.get("format"), message.get("quality"))
            await self.use_avatar(message.get("avatar"))
        elif kind == "avatar":
            await self.use_avatar(wire.check_id(message.get("id")))
        elif kind == "options":
            controls = message.get("controls") or {}
            if not isinstance(controls, dict):
                raise wire.WireError("controls must be an object.")
            motion = wire.Motion.from_json(message)
            self.state.changed(motion=MotionOptions(motion.relative, motion.adapt_scale), controls=dict(controls))
        elif kind == "reference":
            if message.get("clear") is not True:
                raise wire.WireError("A reference message in JSON only clears it ({\"clear\": true}); "
                                     "a reference image is a binary message.")
            self.state.changed(reference=None)
        else:
            raise wire.WireError(f"Unknown message type {kind!r}.", "See docs/REMOTE.md for the messages.")

    async def use_avatar(self, avatar_id: Any) -> None:
        if avatar_id is None:
            self.avatar_id = None
            await self.send_ready()
            return
        avatar_id = wire.check_id(avatar_id)
        if avatar_id not in self.server.service.avatars:
            self.avatar_id = None
            await self.send_json({"type": "need_avatar", "id": avatar_id})
            return
        await self.server.prepared(avatar_id)
        self.avatar_id = avatar_id
        await self.send_ready()

    async def send_ready(self) -> None:
        await self.send_json({"type": "ready", "avatar": self.avatar_id, **self.server.info()})

    # --- data (binary)
    async def data(self, message: bytes) -> None:
        header, parts = wire.unpack(message)
        kind = header.get("kind")
        if kind == "frame":
            seq = header.get("seq")
            if not isinstance(seq, int):
                raise wire.WireError("A frame needs an integer seq.")
            if len(parts) not in (1, 2):
                raise wire.WireError("A frame has an image part and an optional landmark part.")
            if self.avatar_id is None:
                await self.send_error(wire.WireError("No avatar yet.", "Send hello with an avatar first."), seq=seq)
                return
            if len(self._tasks) >= MAX_SESSION_IN_FLIGHT:
                await self.send_error(Busy(), seq=seq)
                return
            fmt = header.get("format", "jpeg")
            if fmt not in wire.FORMATS:
                raise wire.WireError(f"Unknown image format {fmt!r}.")
            job_parts = (parts[0], parts[1] if len(parts) > 1 else b"", header.get("landmarks"))
            task = asyncio.get_running_loop().create_task(self.frame(seq, *job_parts, time.perf_counter()))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif kind == "reference":
            _ref_id, reference = self.server.service.add_reference(
                parts[0] if parts else b"", (parts[1] if len(parts) > 1 else b"", header.get("landmarks")))
            self.state.changed(reference=reference)
        elif kind == "avatar":
            avatar = self.server.service.add_avatar(parts[0] if parts else b"",
                                                    (parts[1] if len(parts) > 1 else b"", header.get("landmarks")),
                                                    max_bytes=wire.MAX_MESSAGE_BYTES)
            if header.get("id") not in (None, avatar.id):
                raise wire.WireError("The avatar's id does not match its content.",
                                     "The id is the SHA-256 of the decoded pixels and landmarks (wire.content_id).")
            await self.use_avatar(avatar.id)
        else:
            raise wire.WireError(f"Unknown binary message kind {kind!r}.", "See docs/REMOTE.md for the messages.")

    async def frame(self, seq: int, data: bytes, lms: bytes, count: int | None, t0: float) -> None:
        try:
            try:
                prepared = await self.server.prepared(self.avatar_id)
            except wire.WireError as err:
                if err.code == "unknown_avatar":
                    await self.send_error(err, seq=seq, id=self.avatar_id)
                    self.avatar_id = None
                    return
                raise
            job = FrameJob(prepared, self.state, data, lms, count, self.fmt, self.quality, seq, t0)
            result = await self.server.animate(job)
            if result.error is not None:
                await self.send_error(result.error, seq=seq)
                return
            header = {"kind": "frame", "seq": seq, "format": result.fmt,
                      "server_ms": round((time.perf_counter() - t0) * 1000, 3), "engine_ms": round(result.engine_ms, 3)}
            async with self._send_lock:
                await self.ws.send_bytes(wire.pack(header, result.data))
        except asyncio.CancelledError:
            raise
        except Exception as err:
            await self.send_error(err, seq=seq)
