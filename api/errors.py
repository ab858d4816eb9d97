"""One JSON error shape for every error the gateway answers, framework errors included.

{"error": {"code": "not_found", "message": "...", "request_id": "...", "details": {...}}}
"""

from __future__ import annotations

import logging
from typing import Any

import marshmallow as ma
import redis
import sqlalchemy.exc
from flask import Flask, g, has_request_context, jsonify, request
from flask_smorest import Api
from werkzeug.exceptions import HTTPException

from api.extensions import limiter
from core.errors import ServiceError

log = logging.getLogger(__name__)

ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}

MESSAGES = {
    404: "The requested resource was not found.",
    405: "The method is not allowed for the requested URL.",
    500: "The server hit an unexpected error; the request id identifies it in the logs.",
}


class ErrorBodySchema(ma.Schema):
    code = ma.fields.String(required=True, metadata={"description": "Stable, machine-readable"})
    message = ma.fields.String(required=True, metadata={"description": "For people"})
    request_id = ma.fields.String(allow_none=True)
    details = ma.fields.Raw(metadata={"description": "Per-field messages, where there are any"})


class ErrorSchema(ma.Schema):
    """The error shape of every endpoint."""

    error = ma.fields.Nested(ErrorBodySchema, required=True)


# Under this prefix errors take OpenAI's shape, so OpenAI's client libraries understand them.
OPENAI_PREFIX = "/v1/"
OPENAI_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}


def _field_problems(messages: Any, path: str = "") -> list[tuple[str, str]]:
    """(dotted field path, message) pairs from marshmallow's nested error messages."""
    if isinstance(messages, dict):
        return [
            problem
            for name, inner in messages.items()
            # marshmallow files whole-object errors under "_schema": they belong to the parent
            for problem in _field_problems(
                inner, path if name == "_schema" else f"{path}.{name}" if path else str(name)
            )
        ]
    if isinstance(messages, list):
        return [(path, str(message)) for message in messages]
    return [(path, str(messages))]


def _openai_error(status: int, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """OpenAI's {message, type, param, code}; its APIs answer bad parameters with 400.

    OpenAI's shape has no per-field details, so the field messages go into `message`.
    """
    details = body.get("details")
    fields = details.get("json") if isinstance(details, dict) else None
    problems = _field_problems(fields) if isinstance(fields, dict) else []
    message = "; ".join(f"{path}: {text}" if path else text for path, text in problems)
    message = message or body["message"]
    if isinstance(details, dict) and details.get("job_id"):  # e.g. a 504: the job goes on
        message += f" (job {details['job_id']}: GET /api/jobs/{details['job_id']})"
    if status == 422:
        status = 400
    kind = OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    param = next((path for path, _text in problems if path), None)
    return status, {"message": message, "type": kind, "param": param, "code": body["code"]}


def error_response(
    status: int,
    message: str,
    *,
    code: str | None = None,
    details: Any = None,
    headers: dict | None = None,
):
    body: dict[str, Any] = {
        "code": code or ERROR_CODES.get(status, "error"),
        "message": message,
        "request_id": g.get("request_id") if has_request_context() else None,
    }
    if details is not None:
        body["details"] = details
    if has_request_context():
        g.error_code = body["code"]  # the metrics tell rate limits from quotas by it
        if request.path.startswith(OPENAI_PREFIX):
            status, body = _openai_error(status, body)
    response = jsonify({"error": body})
    response.status_code = status
    if isinstance(details, dict) and details.get("job_id"):
        response.headers["X-Job-ID"] = str(details["job_id"])
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _validation_message(details: Any) -> str:
    if details == {"json": ["Invalid JSON body."]}:
        return "The request body is not valid JSON."
    fields: list[str] = []
    if isinstance(details, dict):
        for location, messages in details.items():
            if isinstance(messages, dict):
                fields.extend(f"{location}.{name}" for name in messages)
            else:
                fields.append(location)
    if fields:
        return "Invalid input: " + ", ".join(sorted(fields)) + " (see details)."
    return "The request is invalid."


class GatewayApi(Api):
    """flask-smorest's Api, answering every HTTP error in the gateway's shape."""

    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error: HTTPException):
        status = error.code or 500
        data = getattr(error, "data", None) or {}
        details = data.get("errors") or data.get("messages")
        headers = dict(data.get("headers") or {})
        if error.response is not None:  # e.g. flask-limiter's 429 carries Retry-After
            headers.update(
                (k, v) for k, v in error.response.headers.items() if k.lower() != "content-type"
            )
        if status == 405 and hasattr(error, "valid_methods") and error.valid_methods:
            headers["Allow"] = ", ".join(error.valid_methods)
        if data.get("message"):
            message = data["message"]
        elif status in (400, 422) and details is not None:
            message = _validation_message(details)
        elif status == 413:
            # The request's own limit: some endpoints (batches) allow more than the default.
            limit = request.max_content_length
            message = f"The request body is larger than the limit of {limit} bytes."
        elif status == 429:
            message = f"Rate limit exceeded ({error.description}); retry after Retry-After seconds."
        else:
            message = MESSAGES.get(status) or error.description or error.name
        return error_response(status, message, details=details, headers=headers)


def redis_unavailable(error: Exception):
    """503 for a request that needed Redis while it was away."""
    log.error("redis unavailable: %s", error.__class__.__name__)
    # The rate-limit headers (and deductions) of this response would need Redis too: the
    # limiter's own hook computing them turned this 503 into a 500.
    limiter.context.reset()
    return error_response(
        503,
        "A backing service (Redis) is unavailable; retry shortly.",
        headers={"Retry-After": "5"},
    )


def init_app(app: Flask) -> None:
    """Register handlers for errors that are not HTTPExceptions."""

    @app.errorhandler(ServiceError)
    def handle_service_error(error: ServiceError):
        return error_response(
            error.status,
            error.message,
            code=error.code,
            details=error.details,
            headers=error.headers,
        )

    app.register_error_handler(redis.exceptions.ConnectionError, redis_unavailable)
    app.register_error_handler(redis.exceptions.TimeoutError, redis_unavailable)

    @app.errorhandler(sqlalchemy.exc.OperationalError)
    @app.errorhandler(sqlalchemy.exc.InterfaceError)
    def handle_database_down(error: Exception):
        log.error("database unavailable: %s", error.__class__.__name__)
        return error_response(
            503,
            "A backing service (database) is unavailable; retry shortly.",
            headers={"Retry-After": "5"},
        )
