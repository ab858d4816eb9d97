"""Checks on the raw request that run before any view: content type of bodies."""

from __future__ import annotations

from flask import Flask, request

from api.errors import error_response

BODY_METHODS = {"POST", "PUT", "PATCH"}


def _is_json(mimetype: str) -> bool:
    return mimetype == "application/json" or mimetype.endswith("+json")


def init_app(app: Flask) -> None:
    @app.before_request
    def require_json_bodies():
        # Without this, a form or text body would be silently ignored by the JSON
        # argument parser and reported as "missing field" instead of the real problem.
        if request.method not in BODY_METHODS:
            return None
        has_body = bool(request.content_length) or request.headers.get("Transfer-Encoding")
        if has_body and not _is_json(request.mimetype or ""):
            return error_response(
                415,
                "Send the request body as JSON with 'Content-Type: application/json'.",
            )
        return None
