"""Shared route plumbing: the documented error responses."""

from __future__ import annotations

from typing import Any

_ERROR_SCHEMA: dict[str, Any] = {
    "description": "OpenAI-style error",
    "content": {
        "application/json": {
            "example": {
                "error": {
                    "message": "...",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                }
            }
        }
    },
}
ERRORS: dict[int | str, dict[str, Any]] = {
    status: _ERROR_SCHEMA for status in (400, 401, 404, 413, 429)
}
