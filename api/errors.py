"""OpenAI-style error bodies for every failure: ``{"error": {message, type, param, code}}``.

Bad input is always a 4xx with a message a client can act on; a 500 only means a bug.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ragline.ingest.collection import CollectionNotFound

log = logging.getLogger(__name__)

# OpenAI's error "type" per status.
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    408: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def error_body(
    message: str, status: int, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class ApiError(StarletteHTTPException):
    """Raised anywhere below a route; rendered as an OpenAI error body.

    A Starlette ``HTTPException`` so that FastAPI re-raises it unchanged even from inside
    its own body parsing (the body-size limit trips there)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status, message, dict(headers) if headers else None)
        self.message = message
        self.param = param
        self.code = code


def not_found(what: str, param: str | None = None) -> ApiError:
    return ApiError(404, f"{what} not found", param=param, code="not_found")


def error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse(
        error_body(exc.message, exc.status_code, exc.param, exc.code),
        status_code=exc.status_code,
        headers=exc.headers,
    )


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None, str]:
    errors = exc.errors()
    if not errors:
        return "invalid request", None, "invalid_request"
    first = errors[0]
    if first.get("type") == "json_invalid":
        return "the request body is not valid JSON", None, "invalid_json"
    # ("body", "messages", 0, "role") -> "messages[0].role"
    param = ""
    for part in first.get("loc", ())[1:]:
        param += f"[{part}]" if isinstance(part, int) else (f".{part}" if param else str(part))
    message = str(first.get("msg", "invalid value"))
    if first.get("type") == "missing":
        message = f"missing required parameter {param!r}" if param else "missing request body"
    elif param:
        message = f"{param}: {message}"
    # A check of the whole body (see schemas.lone_surrogate) names the value it refused.
    param = param or str(first.get("ctx", {}).get("where", ""))
    return message, param or None, "invalid_value"


def install(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc, ApiError):
            return error_response(exc)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return JSONResponse(
            error_body(str(exc.detail), exc.status_code, code=code),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # OpenAI answers every malformed request with 400, not FastAPI's 422.
        message, param, code = _validation_message(exc)
        return JSONResponse(error_body(message, 400, param, code), status_code=400)

    @app.exception_handler(CollectionNotFound)
    async def collection_gone(request: Request, exc: CollectionNotFound) -> JSONResponse:
        # Dropped by another process while a request read it.
        return error_response(ApiError(404, str(exc), param="collection", code="not_found"))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            error_body("internal server error", 500, code="internal_error"), status_code=500
        )
