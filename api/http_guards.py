"""Checks on the raw request that run before any view: content type of bodies."""

from __future__ import annotations

from flask import Flask, request

from api.errors import error_response
from config.settings import get_settings

BODY_METHODS = {"POST", "PUT", "PATCH"}
UPLOAD_TYPES = {
    "multipart/form-data",
    "application/jsonl",
    "application/x-ndjson",
    "application/x-jsonlines",
}


def _is_json(mimetype: str) -> bool:
    return mimetype == "application/json" or mimetype.endswith("+json")


def accepts_uploads(view):
    """Mark a view that takes file uploads (multipart or JSON Lines) and bigger bodies."""
    view.accepts_uploads = True
    return view


def _takes_uploads(app: Flask) -> bool:
    view = app.view_functions.get(request.endpoint or "")
    return bool(getattr(view, "accepts_uploads", False))


def init_app(app: Flask) -> None:
    @app.before_request
    def require_json_bodies():
        # Without this, a form or text body would be silently ignored by the JSON
        # argument parser and reported as "missing field" instead of the real problem.
        if request.method not in BODY_METHODS:
            return None
        mimetype = request.mimetype or ""
        if _takes_uploads(app):
            request.max_content_length = get_settings(app).limits.batch_max_bytes
            if mimetype in UPLOAD_TYPES:
                return None
        has_body = bool(request.content_length) or request.headers.get("Transfer-Encoding")
        if has_body and not _is_json(mimetype):
            return error_response(
                415,
                "Send the request body as JSON with 'Content-Type: application/json'.",
            )
        return None
