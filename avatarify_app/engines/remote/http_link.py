"""The remote engine's HTTP transport: one POST per frame (``/v1/frame``), ``max_in_flight`` at once
from a small thread pool; the avatar goes up with ``POST /v1/avatars`` and the reference inline
once, then by the id the server returned."""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from avatarify_app.engines.remote import wire
from avatarify_app.engines.remote.links import BAD_TOKEN, LOST, UPLOADING, Link, error_message, motion_json

if TYPE_CHECKING:
    from avatarify_app.engines.remote.client import RemoteEngine

log = logging.getLogger(__name__)


class HttpLink(Link):
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
            code, message = error_message(response)
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
                                **motion_json(state["motion"]), "controls": state["controls"]}
        if self._reference_id is not None:
            body["reference_id"] = self._reference_id
        elif state["reference"] is not None:
            ref, ref_lms = state["reference"]
            body["reference"] = wire.b64encode(wire.encode_image(ref, "png"))
            body["reference_landmarks"] = None if ref_lms is None else ref_lms.tolist()
        try:
            content = json.dumps(body).encode()
            e.bytes_up += len(content)
            self._pool.submit(self._post, seq, content, "reference" in body, state["avatar"][0], e._version)
        except RuntimeError:  # shut down
            return False
        return True

    def _post(self, seq: int, content: bytes, inline_reference: bool, avatar_id: str, version: int) -> None:
        import httpx

        e = self.engine
        try:
            response = e._http.post(wire.FRAME, content=content, timeout=e.lost_after + 1.0,
                                    headers={wire.ROUTE_HEADER: avatar_id, "Content-Type": "application/json"})
        except httpx.HTTPError as err:
            log.info("frame %d: %s", seq, err)
            e._on_frame_failed(seq, str(err))
            self.reset("unreachable")
            return
        if response.status_code == 200:
            e.bytes_down += len(response.content)
            ref_id = response.headers.get("x-avatarify-reference-id")
            if ref_id and inline_reference:
                with e._cond:
                    if version == e._version:  # not a reference replaced since
                        self._reference_id = ref_id
            e._on_reply(seq, response.content, float(response.headers.get("x-avatarify-server-ms", 0.0)),
                        float(response.headers.get("x-avatarify-engine-ms", 0.0)))
            return
        code, message = error_message(response)
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

