"""The Ray Serve application: a FastAPI ingress in front of ``service.Service``.

    GET  /v1/health   liveness (no token)
    GET  /v1/info     engine, device, crop size, limits, replica and node
    POST /v1/avatars  upload an avatar crop (image bytes, or JSON with base64 and landmarks)
    POST /v1/frame    one-shot: animate one crop (JSON) and get the image back
    WS   /v1/stream   a client session: JSON control messages, binary frames both ways
    GET  /docs        the OpenAPI page (the HTTP reference); docs/REMOTE.md has the WebSocket one

Per replica: avatars prepared on demand through ``@serve.multiplexed`` (the avatar id is the
multiplexed model id, so the proxy routes a request carrying it in the
``serve_multiplexed_model_id`` header to a replica that has it), frames of concurrent sessions
animated through ``@serve.batch`` (one hop to the inference thread per batch) or one by one.
"""

import hashlib
import hmac
import json
import logging
import time
from typing import Any

import ray
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from ray import serve

from avatarify_app.config import MotionOptions
from avatarify_app.engines.remote import wire
from avatarify_app.errors import AvatarifyError
from avatarify_app.serve.schemas import (
    ERRORS,
    AvatarResponse,
    AvatarUpload,
    FrameRequest,
    InfoResponse,
    Unauthorized,
    UnsupportedMedia,
    error_of,
    error_response,
    json_body,
)
from avatarify_app.serve.service import FrameJob, FrameResult, Prepared, Service, SessionState
from avatarify_app.serve.settings import ServerSettings
from avatarify_app.serve.stream import StreamSession

log = logging.getLogger(__name__)

MAX_AVATARS_PER_REPLICA = 8  # prepared avatars (engines) a replica keeps; least recently used go first


api = FastAPI(
    title="avatarify remote engine",
    version=str(wire.PROTOCOL),
    description="Animate an avatar with the motion of driving face crops on this server's engine. "
    "Send `Authorization: Bearer TOKEN` when the server has a token. The WebSocket stream "
    "(`/v1/stream`, what the app uses) is described in docs/REMOTE.md.",
)


@api.exception_handler(AvatarifyError)
@api.exception_handler(ValidationError)
async def _request_error(request: Request, err: Exception) -> JSONResponse:
    """Bad input (wire, image, face, JSON schema): 4xx with a message, never a stack trace."""
    return error_response(*error_of(err))


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) past ``limit`` bytes without reading the rest."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise wire.TooLarge(f"The body is {declared} bytes; at most {limit} are accepted.")
        except ValueError as err:
            raise wire.WireError("Bad Content-Length header.") from err
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise wire.TooLarge(f"The body is over {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def _b64_limit(raw: int) -> int:
    return raw * 4 // 3 + 64 * 1024


def keep_internal_grpc_on_loopback() -> None:
    """Ray 2.60 replicas open an internal gRPC port on all interfaces ("[::]:0", hard-coded);
    on the embedded single-machine Ray (everything on 127.0.0.1) it is bound to 127.0.0.1."""
    from ray.serve._private import replica as replica_module

    original = replica_module.add_port_to_grpc_server
    if getattr(original, "avatarify_loopback", False):
        return

    def bind(server, address: str):
        if address.startswith(("[::]:", "0.0.0.0:")):
            address = "127.0.0.1:" + address.rsplit(":", 1)[1]
        return original(server, address)

    bind.avatarify_loopback = True
    replica_module.add_port_to_grpc_server = bind


# ----------------------------------------------------------------------------- the deployment
# (Serve pickles the class when it is decorated: what it uses is defined or imported above it.)
@serve.deployment(name="engine", max_ongoing_requests=256)
@serve.ingress(api)
class EngineServer:
    """One replica: the engine service, its avatars and its client sessions."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = ServerSettings(**settings)
        if self.settings.loopback:
            keep_internal_grpc_on_loopback()
        self.service = Service(self.settings.engine_config(), random_weights=self.settings.random_weights)
        self._animate_batch.set_max_batch_size(max(1, int(self.settings.max_batch_size)))
        self._animate_batch.set_batch_wait_timeout_s(max(0.0, float(self.settings.batch_wait_ms) / 1000.0))
        self._token = (self.settings.token or "").encode() or None
        context = serve.get_replica_context()
        self.replica = context.replica_id.unique_id if context else "local"
        self.node = ray.get_runtime_context().get_node_id()
        log.info("replica %s on node %s: %s on %s", self.replica, self.node, self.service.engine_name,
                 self.service.device)

    def __del__(self) -> None:
        service = getattr(self, "service", None)
        if service is not None:
            service.close()

    # ----------------------------------------------------------------- helpers
    def authorized(self, headers, query) -> bool:
        if self._token is None:
            return True
        given = headers.get("authorization", "")
        token = given[7:] if given.lower().startswith("bearer ") else headers.get("x-avatarify-token") or query.get(
            "token") or ""
        return hmac.compare_digest(token.encode(), self._token)

    def check(self, request: Request) -> None:
        if not self.authorized(request.headers, request.query_params):
            raise Unauthorized()

    def info(self) -> dict[str, Any]:
        return {**self.service.info(), "batching": self.settings.batching, "replica": self.replica,
                "node": self.node}

    @serve.multiplexed(max_num_models_per_replica=MAX_AVATARS_PER_REPLICA)
    async def _load_avatar(self, avatar_id: str) -> Prepared:
        return await self.service.call(self.service.prepare, self.service.avatar(avatar_id))

    async def prepared(self, avatar_id: str) -> Prepared:
        """The prepared avatar (UnknownAvatar when this replica does not hold its image)."""
        self.service.avatar(avatar_id)  # checked first: asking the loader for an unknown id would evict one
        return await self._load_avatar(avatar_id)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.002)
    async def _animate_batch(self, jobs: list[FrameJob]) -> list[FrameResult]:
        return await self.service.call(self.service.run_frames, jobs)

    async def animate(self, job: FrameJob) -> FrameResult:
        if self.settings.batching:
            return await self._animate_batch(job)
        return (await self.service.call(self.service.run_frames, [job]))[0]

    # ----------------------------------------------------------------- HTTP
    @api.get(wire.HEALTH, summary="Liveness (no token needed)")
    async def health(self) -> dict[str, bool]:
        return {"ok": True}

    @api.get(wire.INFO, summary="What this server runs", response_model=InfoResponse, responses=ERRORS)
    async def get_info(self, request: Request) -> dict[str, Any]:
        self.check(request)
        return self.info()

    @api.post(wire.AVATARS, summary="Upload an avatar (an aligned square face crop)", response_model=AvatarResponse,
              responses=ERRORS, openapi_extra=json_body(AvatarUpload, {
                  "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                  "image/png": {"schema": {"type": "string", "format": "binary"}}}))
    async def upload_avatar(self, request: Request) -> dict[str, Any]:
        self.check(request)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind in ("image/jpeg", "image/png"):
            data, landmarks = await read_body(request, wire.MAX_AVATAR_BYTES), None
        elif kind == "application/json":
            body = AvatarUpload.model_validate(wire.parse_json(
                await read_body(request, _b64_limit(wire.MAX_AVATAR_BYTES)), _b64_limit(wire.MAX_AVATAR_BYTES)))
            data, landmarks = wire.b64decode(body.image, "image"), body.landmarks
        else:
            raise UnsupportedMedia(kind)
        avatar = self.service.add_avatar(data, landmarks)
        await self.prepared(avatar.id)  # prepared here: NoFaceError answers now, and routing finds it
        return {"avatar": avatar.id, "width": int(avatar.image.shape[1]), "height": int(avatar.image.shape[0])}

    @api.post(wire.FRAME, summary="Animate one driving crop (one-shot)", responses={
        200: {"content": {"image/jpeg": {}, "image/png": {}}, "description": "the animated crop; headers "
              "X-Avatarify-Server-Ms, X-Avatarify-Engine-Ms and (when a reference was sent) X-Avatarify-Reference-Id"},
        **ERRORS}, openapi_extra=json_body(FrameRequest))
    async def frame(self, request: Request) -> Response:
        t0 = time.perf_counter()
        self.check(request)
        raw = await read_body(request, _b64_limit(wire.MAX_MESSAGE_BYTES) * 2)
        body = FrameRequest.model_validate(wire.parse_json(raw, len(raw)))
        fmt, quality = wire.check_format(body.format, body.quality)
        prepared = await self.prepared(wire.check_id(body.avatar))
        ref_id = None
        if body.reference is not None:
            ref_id, reference = self.service.add_reference(wire.b64decode(body.reference, "reference"),
                                                           body.reference_landmarks)
        elif body.reference_id is not None:
            ref_id = body.reference_id
            reference = self.service.reference(ref_id)
        motion = MotionOptions(relative=body.relative, adapt_scale=body.adapt_scale)
        if ref_id is None:  # no reference: the frame is its own (a state nobody else shares)
            state = SessionState(motion=motion, controls=dict(body.controls))
        else:  # the same reference and options give the same state: no switching between calls
            key = hashlib.sha256(json.dumps([ref_id, body.relative, body.adapt_scale, body.controls],
                                            sort_keys=True, default=str).encode()).hexdigest()
            state = SessionState(key=f"http-{key}", reference=reference, motion=motion, controls=dict(body.controls))
        image = wire.b64decode(body.image, "image")
        lms = b"" if body.landmarks is None else wire.landmarks_bytes(wire.landmarks_from_json(body.landmarks, 1 << 15))
        job = FrameJob(prepared, state, image, lms, None if body.landmarks is None else len(body.landmarks),
                       fmt, quality, 0, t0)
        result = await self.animate(job)
        if result.error is not None:
            raise result.error
        headers = {"X-Avatarify-Server-Ms": f"{(time.perf_counter() - t0) * 1000:.2f}",
                   "X-Avatarify-Engine-Ms": f"{result.engine_ms:.2f}"}
        if ref_id is not None:
            headers["X-Avatarify-Reference-Id"] = ref_id
        return Response(result.data, media_type=f"image/{fmt}", headers=headers)

    # ----------------------------------------------------------------- WebSocket
    @api.websocket(wire.STREAM)
    async def stream(self, websocket: WebSocket) -> None:
        if not self.authorized(websocket.headers, websocket.query_params):
            await websocket.close(code=1008, reason="wrong or missing token")
            return
        await websocket.accept()
        await StreamSession(self, websocket).run()


def build_app(settings: ServerSettings, *, num_replicas: int | None = 1, min_replicas: int | None = None,
              max_replicas: int | None = None, target_sessions: float = 4.0, gpus_per_replica: float = 0.0,
              cpus_per_replica: float = 1.0, max_replicas_per_node: int | None = None):
    """The application ``serve.run`` deploys: fixed replicas, or autoscaling between min and max on
    ongoing requests (a WebSocket session counts as one for as long as it lives)."""
    # A dead replica is noticed within seconds (Serve's default checks every 10 s).
    options: dict[str, Any] = {"ray_actor_options": {"num_cpus": cpus_per_replica, "num_gpus": gpus_per_replica},
                               "health_check_period_s": 2.0, "health_check_timeout_s": 30.0}
    if min_replicas is not None or max_replicas is not None:
        lo = 1 if min_replicas is None else int(min_replicas)
        hi = max(lo, 1 if max_replicas is None else int(max_replicas))
        options["autoscaling_config"] = {"min_replicas": lo, "max_replicas": hi,
                                         "target_ongoing_requests": target_sessions,
                                         "upscale_delay_s": 5.0, "downscale_delay_s": 60.0}
    else:
        options["num_replicas"] = int(num_replicas or 1)
    if max_replicas_per_node:
        options["max_replicas_per_node"] = int(max_replicas_per_node)
    return EngineServer.options(**options).bind(settings.to_dict())
