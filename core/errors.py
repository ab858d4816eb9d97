"""Errors raised by services; api.errors turns each into the JSON error response."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        headers: dict | None = None,
    ):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details
        self.headers = headers or {}


class Unauthorized(ServiceError):
    status = 401
    code = "unauthorized"

    def __init__(self, message: str, **kwargs: Any):
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(message, **kwargs)


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class TooManyRequests(ServiceError):
    """A limit that frees up with time or as the caller's work ends: retry later."""

    status = 429
    code = "rate_limited"


class InvalidInput(ServiceError):
    """A rule on the request's content, reported per field like schema errors."""

    status = 422
    code = "validation_error"


class InvalidBatch(ServiceError):
    """A batch that cannot run as sent: nothing of it is stored or enqueued."""

    status = 400
    code = "invalid_batch"


class GenerationFailed(ServiceError):
    status = 502
    code = "generation_failed"


class AnswerTimeout(ServiceError):
    status = 504
    code = "answer_timeout"


class QueueUnavailable(ServiceError):
    status = 503
    code = "queue_unavailable"
