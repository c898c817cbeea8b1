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

import asyncio
import hashlib
import hmac
import json
import logging
import time
from typing import Any

import ray
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError
from ray import serve
from starlette.websockets import WebSocketDisconnect

from avatarify_app.config import MotionOptions
from avatarify_app.engines.remote import wire
from avatarify_app.errors import AvatarifyError, BadImageError, NoFaceError
from avatarify_app.serve.service import FrameJob, FrameResult, Prepared, Service, SessionState
from avatarify_app.serve.settings import ServerSettings

log = logging.getLogger(__name__)

APP_NAME = "avatarify"
MAX_AVATARS_PER_REPLICA = 8  # prepared avatars (engines) a replica keeps; least recently used go first
MAX_SESSION_IN_FLIGHT = 4  # frames of one WebSocket session being animated at once; more are refused


# ----------------------------------------------------------------------------- schemas (for /docs)
class InfoResponse(BaseModel):
    protocol: int
    engine: str = Field(description="the engine this server runs")
    device: str = Field(description="what runs it, e.g. 'cuda:0 NVIDIA A10 fp16 torch'")
    size: int = Field(description="side of the square crops it takes and returns")
    random_weights: bool
    avatars: int = Field(description="avatars this replica holds")
    formats: list[str]
    max_avatar_bytes: int
    max_message_bytes: int
    max_side: int
    frames: int = Field(description="frames this replica animated")
    batches: int = Field(description="calls to the engine thread they took (fewer than frames: batched)")
    max_batch: int
    batching: bool
    replica: str
    node: str


class AvatarUpload(BaseModel):
    image: str = Field(description="the aligned square face crop, JPEG or PNG, base64")
    landmarks: list[list[float]] | None = Field(None, description="face-mesh points [[x, y], ...] in the crop's "
                                                "pixels (optional: the engine finds them)")


class AvatarResponse(BaseModel):
    avatar: str = Field(description="its id: SHA-256 of the decoded pixels and landmarks")
    width: int
    height: int


class FrameRequest(BaseModel):
    avatar: str = Field(description="id from POST /v1/avatars")
    image: str = Field(description="the aligned square driving crop, JPEG or PNG, base64")
    landmarks: list[list[float]] | None = None
    reference: str | None = Field(None, description="the reference crop (no motion), base64; or reference_id")
    reference_landmarks: list[list[float]] | None = None
    reference_id: str | None = Field(None, description="id from a previous answer's X-Avatarify-Reference-Id")
    relative: bool = True
    adapt_scale: bool = True
    controls: dict[str, Any] = Field(default_factory=dict, description="live options of the engine")
    format: str = Field("jpeg", description="jpeg or png (lossless)")
    quality: int = Field(wire.DEFAULT_QUALITY, ge=1, le=100)


class ErrorResponse(BaseModel):
    code: str
    message: str
    hint: str = ""


def _json_body(model: type[BaseModel], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    content = {"application/json": {"schema": model.model_json_schema()}}
    content.update(extra or {})
    return {"requestBody": {"required": True, "content": content}}


ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 404, 409, 413, 422)}

api = FastAPI(
    title="avatarify remote engine",
    version=str(wire.PROTOCOL),
    description="Animate an avatar with the motion of driving face crops on this server's engine. "
    "Send `Authorization: Bearer TOKEN` when the server has a token. The WebSocket stream "
    "(`/v1/stream`, what the app uses) is described in docs/REMOTE.md.",
)


def _error(status: int, code: str, message: str, hint: str = "") -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"code": code, "message": message, "hint": hint}, status_code=status, headers=headers)


def error_of(err: Exception) -> tuple[int, str, str, str]:
    """(status, code, message, hint) for an exception; never a stack trace."""
    if isinstance(err, wire.WireError):
        return err.status, err.code, err.message, err.hint
    if isinstance(err, NoFaceError):
        return 422, "no_face", err.message, err.hint
    if isinstance(err, BadImageError):
        return 422, "bad_image", err.message, err.hint
    if isinstance(err, ValidationError):
        first = err.errors()[0] if err.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return 422, "bad_request", f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg")), ""
    if isinstance(err, AvatarifyError):
        return 400, "bad_request", err.message, err.hint
    return 500, "engine_error", "The engine failed on this request (the server log has the details).", ""


@api.exception_handler(AvatarifyError)
@api.exception_handler(ValidationError)
async def _request_error(request: Request, err: Exception) -> JSONResponse:
    """Bad input (wire, image, face, JSON schema): 4xx with a message, never a stack trace."""
    return _error(*error_of(err))


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


# ----------------------------------------------------------------------------- sessions
class _Busy(wire.WireError):
    status = 429
    code = "busy"

    def __init__(self) -> None:
        super().__init__(f"More than {MAX_SESSION_IN_FLIGHT} frames of this session are on the way; this one is dropped.",
                         "Wait for answers before sending more frames.")



class _Unauthorized(wire.WireError):
    status = 401
    code = "unauthorized"

    def __init__(self) -> None:
        super().__init__("wrong or missing token", "Send the server's token as `Authorization: Bearer TOKEN`.")


class _UnsupportedMedia(wire.WireError):
    status = 415
    code = "unsupported_media"

    def __init__(self, kind: str) -> None:
        super().__init__(f"Content-Type {kind or 'none'} is not accepted here.",
                         "Send image/jpeg, image/png or application/json.")


class StreamSession:
    """One client session over a WebSocket (see docs/REMOTE.md for the messages)."""

    def __init__(self, server: "EngineServer", websocket: WebSocket) -> None:
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
                await self.send_error(_Busy(), seq=seq)
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


# ----------------------------------------------------------------------------- the deployment
# (Serve pickles the class when it is decorated: everything it uses is defined above.)
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
            raise _Unauthorized()

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
              responses=ERRORS, openapi_extra=_json_body(AvatarUpload, {
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
            raise _UnsupportedMedia(kind)
        avatar = self.service.add_avatar(data, landmarks)
        await self.prepared(avatar.id)  # prepared here: NoFaceError answers now, and routing finds it
        return {"avatar": avatar.id, "width": int(avatar.image.shape[1]), "height": int(avatar.image.shape[0])}

    @api.post(wire.FRAME, summary="Animate one driving crop (one-shot)", responses={
        200: {"content": {"image/jpeg": {}, "image/png": {}}, "description": "the animated crop; headers "
              "X-Avatarify-Server-Ms, X-Avatarify-Engine-Ms and (when a reference was sent) X-Avatarify-Reference-Id"},
        **ERRORS}, openapi_extra=_json_body(FrameRequest))
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
