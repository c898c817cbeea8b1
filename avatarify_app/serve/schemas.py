"""The HTTP API's request and answer schemas (they make the OpenAPI page at /docs) and its errors:
every failure a client can cause is a 4xx JSON answer ``{"code", "message", "hint"}``, never a
stack trace."""

from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from avatarify_app.engines.remote import wire
from avatarify_app.errors import AvatarifyError, BadImageError, NoFaceError

MAX_SESSION_IN_FLIGHT = 4  # frames of one WebSocket session being animated at once; more are refused


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


def json_body(model: type[BaseModel], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    content = {"application/json": {"schema": model.model_json_schema()}}
    content.update(extra or {})
    return {"requestBody": {"required": True, "content": content}}


ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 404, 409, 413, 422)}


def error_response(status: int, code: str, message: str, hint: str = "") -> JSONResponse:
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


class Busy(wire.WireError):
    status = 429
    code = "busy"

    def __init__(self) -> None:
        super().__init__(f"More than {MAX_SESSION_IN_FLIGHT} frames of this session are on the way; this one is dropped.",
                         "Wait for answers before sending more frames.")



class Unauthorized(wire.WireError):
    status = 401
    code = "unauthorized"

    def __init__(self) -> None:
        super().__init__("wrong or missing token", "Send the server's token as `Authorization: Bearer TOKEN`.")


class UnsupportedMedia(wire.WireError):
    status = 415
    code = "unsupported_media"

    def __init__(self, kind: str) -> None:
        super().__init__(f"Content-Type {kind or 'none'} is not accepted here.",
                         "Send image/jpeg, image/png or application/json.")
