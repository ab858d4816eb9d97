"""Why a generation stopped, as the stable codes clients see on a failed job."""

from __future__ import annotations

import json

import httpx


class JobStopped(Exception):
    """Generation stopped on purpose (cancel, time limit)."""


class JobCancelled(JobStopped):
    pass


class JobTimedOut(JobStopped):
    pass


class ModelError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def is_connection_error(exc: BaseException) -> bool:
    """The server could not be reached (refused, reset, no route); not a timeout."""
    import openai

    return isinstance(exc, httpx.ConnectError | ConnectionError | openai.APIConnectionError) and (
        not isinstance(exc, httpx.TimeoutException | openai.APITimeoutError)
    )


def is_unavailable(exc: BaseException) -> bool:
    """Errors worth a retry before the first token: the server is not there, or answers 503
    (llama.cpp's server while it loads its model, a proxy in front of one restarting)."""
    import ollama
    import openai

    if is_connection_error(exc):
        return True
    status = None
    if isinstance(exc, openai.APIStatusError | ollama.ResponseError):
        status = exc.status_code
    elif isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
    return status == 503


def model_error(exc: BaseException, model: str) -> ModelError:
    """Map a provider exception to a ModelError with a stable code."""
    import ollama
    import openai

    if isinstance(exc, ModelError):
        return exc
    if isinstance(exc, ollama.ResponseError) and exc.status_code == 404:
        return ModelError("model_not_found", f"The model server does not have {model!r}.")
    if isinstance(exc, openai.NotFoundError):
        return ModelError("model_not_found", f"The model server does not have {model!r}.")
    if isinstance(exc, httpx.TimeoutException | openai.APITimeoutError | TimeoutError):
        return ModelError("model_timeout", "The model server stopped answering in time.")
    if isinstance(exc, httpx.RemoteProtocolError):
        return ModelError("model_stream_truncated", "The model server closed the reply early.")
    if is_connection_error(exc):
        return ModelError("model_unavailable", "The model server cannot be reached.")
    if isinstance(exc, json.JSONDecodeError | ValueError):
        return ModelError("model_bad_response", "The model server sent a malformed response.")
    if isinstance(exc, ollama.ResponseError | openai.APIStatusError):
        return ModelError("model_error", f"The model server answered with an error: {exc}"[:300])
    return ModelError("internal_error", "The job failed unexpectedly; the worker log has details.")
