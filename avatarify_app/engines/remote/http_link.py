"""The remote engine's HTTP transport: one POST per frame (``/v1/frame``), ``max_in_flight`` at once
from a small thread pool; the avatar goes up with ``POST /v1/avatars`` and the reference inline
once, then by the id the server returned. Like ``links.WebSocketLink`` it knows its engine only as
a ``links.LinkOwner``."""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from avatarify_app.engines.remote import wire
from avatarify_app.engines.remote.links import (
    BAD_TOKEN,
    LOST,
    AvatarPayload,
    Link,
    LinkOwner,
    error_message,
    motion_json,
)

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)


class HttpLink(Link):
    """One HTTP POST per frame (``/v1/frame``), ``max_in_flight`` at once; the avatar goes up with
    ``POST /v1/avatars`` and the reference inline once, then by the id the server returned.

    ``http`` is the owner's client (its base URL the server, its headers the token); the link posts
    with it from its thread and its pool, and the owner closes it."""

    def __init__(self, owner: LinkOwner, http: httpx.Client) -> None:
        super().__init__(owner)
        self._http = http
        self._pool = ThreadPoolExecutor(owner.max_in_flight, thread_name_prefix="avatarify-remote-post")
        self._reference_id: str | None = None
        self._lost = threading.Event()
        self._avatar_sent: str | None = None

    def _serve_once(self) -> str:
        import httpx

        e = self.owner
        while not self._stop.is_set():
            state = e.snapshot()
            avatar, ready = state.avatar, state.ready
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

    def _upload(self, avatar: AvatarPayload) -> str:
        e = self.owner
        avatar_id, image, lms = avatar
        body = {"image": wire.b64encode(wire.encode_image(image, "png")),
                "landmarks": None if lms is None else lms.tolist()}
        e.on_uploading()
        response = self._http.post(wire.AVATARS, json=body, headers={wire.ROUTE_HEADER: avatar_id})
        if response.status_code == 401:
            return BAD_TOKEN
        if response.status_code != 200:
            code, message = error_message(response)
            e.on_avatar_error(code, message)
            return "ok" if code in ("no_face", "bad_image") else LOST
        if response.json().get("avatar") != avatar_id:
            e.on_avatar_error("avatar_error", "the server computed another id for it")
            return LOST
        self._avatar_sent = avatar_id
        self._reference_id = None
        e.on_ready()
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
        e = self.owner
        state = e.snapshot()
        if state.avatar_id is None:
            return False
        body: dict[str, Any] = {"avatar": state.avatar_id, "image": wire.b64encode(data),
                                "landmarks": None if lms is None else lms.tolist(),
                                "format": e.image_format, "quality": e.jpeg_quality,
                                **motion_json(state.motion), "controls": state.controls}
        if self._reference_id is not None:
            body["reference_id"] = self._reference_id
        elif state.reference is not None:
            ref, ref_lms = state.reference
            body["reference"] = wire.b64encode(wire.encode_image(ref, "png"))
            body["reference_landmarks"] = None if ref_lms is None else ref_lms.tolist()
        try:
            content = json.dumps(body).encode()
            e.bytes_up += len(content)
            self._pool.submit(self._post, seq, content, "reference" in body, state.avatar_id, state.version)
        except RuntimeError:  # shut down
            return False
        return True

    def _post(self, seq: int, content: bytes, inline_reference: bool, avatar_id: str, version: int) -> None:
        import httpx

        e = self.owner
        try:
            response = self._http.post(wire.FRAME, content=content, timeout=e.lost_after + 1.0,
                                    headers={wire.ROUTE_HEADER: avatar_id, "Content-Type": "application/json"})
        except httpx.HTTPError as err:
            log.info("frame %d: %s", seq, err)
            e.on_frame_failed(seq, str(err))
            self.reset("unreachable")
            return
        if response.status_code == 200:
            e.bytes_down += len(response.content)
            ref_id = response.headers.get("x-avatarify-reference-id")
            if ref_id and inline_reference:
                with e.lock:
                    if version == e.snapshot().version:  # not a reference replaced since
                        self._reference_id = ref_id
            e.on_reply(seq, response.content, float(response.headers.get("x-avatarify-server-ms", 0.0)),
                        float(response.headers.get("x-avatarify-engine-ms", 0.0)))
            return
        code, message = error_message(response)
        e.on_frame_failed(seq, message)
        if response.status_code == 401:
            e.on_lost(BAD_TOKEN)
            self.reset(BAD_TOKEN)
        elif code == "unknown_avatar":
            e.on_avatar_unknown()
            self._avatar_sent = None
            self._wake.set()
        elif code == "unknown_reference":
            self._reference_id = None

