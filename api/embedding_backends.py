"""The model servers' embedding endpoints: Ollama's /api/embed, or /embeddings of an
OpenAI-compatible server (LLM_PROVIDER), over one shared HTTP client per process.

Failures come out as the exceptions below, never as httpx's; none of them, and nothing
logged here, carries the input text.
"""

from __future__ import annotations

import functools
import logging
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from config.settings import ModelSettings

log = logging.getLogger(__name__)

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"  # as the openai SDK, for an empty setting
# The request fields a model server's complaint may name, as the client sent them.
REQUEST_PARAMS = ("input", "model", "dimensions", "encoding_format", "user")


@dataclass(frozen=True)
class Embeddings:
    vectors: list[list[float]]  # one per input, in the inputs' order, as the server sent them
    prompt_tokens: int


class BackendError(Exception):
    """The model server did not give embeddings; `message` is safe to show the client."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class BackendUnavailable(BackendError):
    """Not reachable, or answered 503 (starting, loading its model)."""


class BackendTimeout(BackendError):
    """Took the request but did not answer within LLM_READ_TIMEOUT."""


class BackendModelNotFound(BackendError):
    """The server does not have the model (HTTP 404)."""


class BackendRejected(BackendError):
    """A 4xx: the server refused the request as sent (e.g. more dimensions than the model's)."""

    def __init__(self, message: str, param: str | None):
        super().__init__(message)
        self.param = param


class BackendFailed(BackendError):
    """A 5xx, a dropped connection or an answer that is not embeddings."""

    def __init__(self, message: str, *, code: str = "model_error"):
        super().__init__(message)
        self.code = code


@functools.cache
def http_client(connect_timeout: float, read_timeout: float) -> httpx.Client:
    """One client (connection pool, TLS context) per process and timeouts; made at the first
    request, so after gunicorn forks and gevent patches the sockets."""
    return httpx.Client(timeout=httpx.Timeout(read_timeout, connect=connect_timeout))


def embed(
    models: ModelSettings, model: str, texts: Sequence[str], *, dimensions: int | None
) -> Embeddings:
    """Embeddings of `texts` by `model` on the configured model server: one round trip."""
    client = http_client(models.llm_connect_timeout, models.llm_read_timeout)
    if models.llm_provider == "openai":
        base = (models.openai_base_url or OPENAI_DEFAULT_BASE_URL).rstrip("/")
        url = f"{base}/embeddings"
        body: dict[str, Any] = {"model": model, "input": list(texts), "encoding_format": "float"}
        headers = {"Authorization": f"Bearer {models.openai_api_key}"}
        parse = _openai_answer
    else:
        url = f"{models.ollama_url.rstrip('/')}/api/embed"
        # truncate: a text longer than the model's context is cut, as OpenAI's API would
        # refuse it only beyond 8k tokens; the model server's own limit is the one that counts.
        body = {"model": model, "input": list(texts), "truncate": True}
        headers = {}
        parse = _ollama_answer
    if dimensions is not None:
        body["dimensions"] = dimensions

    started = time.monotonic()
    try:
        response = client.post(url, json=body, headers=headers)
    except httpx.ConnectTimeout as exc:
        _log_failure(model, texts, started, exc.__class__.__name__)
        raise BackendUnavailable("The model server cannot be reached (connect timeout).") from None
    except httpx.TimeoutException as exc:
        _log_failure(model, texts, started, exc.__class__.__name__)
        raise BackendTimeout(
            f"The model server did not answer within {models.llm_read_timeout:g} s."
        ) from None
    except httpx.ConnectError as exc:
        _log_failure(model, texts, started, exc.__class__.__name__)
        raise BackendUnavailable("The model server cannot be reached.") from None
    except httpx.TransportError as exc:  # reset or closed mid-answer, protocol errors
        _log_failure(model, texts, started, exc.__class__.__name__)
        raise BackendFailed("The model server closed the connection without an answer.") from None

    if response.status_code >= 400:
        _log_failure(model, texts, started, f"HTTP {response.status_code}")
        raise _status_error(response, model, dimensions)
    try:
        result = parse(response.json(), len(texts))
    except (ValueError, TypeError, KeyError) as exc:
        _log_failure(model, texts, started, f"malformed answer ({exc.__class__.__name__})")
        raise BackendFailed(
            "The model server sent a malformed embeddings answer.", code="model_bad_response"
        ) from None
    if dimensions is not None and any(len(v) != dimensions for v in result.vectors):
        _log_failure(model, texts, started, "dimensions ignored")
        got = len(result.vectors[0])
        raise BackendRejected(
            f"The model server does not support dimensions for {model!r} "
            f"(it answered {got} dimensions); leave dimensions out.",
            "dimensions",
        )
    log.debug(
        "embeddings from model server",
        extra={"model": model, "inputs": len(texts), "duration_ms": _ms_since(started)},
    )
    return result


def _ms_since(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


def _log_failure(model: str, texts: Sequence[str], started: float, reason: str) -> None:
    # The model server's message is not logged: it may quote the input.
    log.warning(
        "embeddings failed at the model server: %s",
        reason,
        extra={"model": model, "inputs": len(texts), "duration_ms": _ms_since(started)},
    )


def _vector(value: Any) -> list[float]:
    """A non-empty list of numbers, or ValueError/TypeError."""
    if not isinstance(value, list) or not value:
        raise ValueError("not a vector")
    array("d", value)  # raises TypeError on anything but numbers, in C
    return value


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _ollama_answer(answer: Any, expected: int) -> Embeddings:
    vectors = [_vector(v) for v in answer["embeddings"]]
    if len(vectors) != expected:
        raise ValueError("one embedding per input expected")
    return Embeddings(vectors, _count(answer.get("prompt_eval_count")))


def _openai_answer(answer: Any, expected: int) -> Embeddings:
    items = sorted(answer["data"], key=lambda item: item["index"])
    if [item["index"] for item in items] != list(range(expected)):
        raise ValueError("one embedding per input expected")
    usage = answer.get("usage") or {}
    return Embeddings(
        [_vector(item["embedding"]) for item in items], _count(usage.get("prompt_tokens"))
    )


def _error_text(response: httpx.Response) -> tuple[str, str | None]:
    """The model server's error message and the parameter it names, from Ollama's
    {"error": "..."}, OpenAI's {"error": {"message", "param"}} or vLLM's {"message"}."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300], None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str):
        return error[:300], None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        param = error.get("param")
        return error["message"][:300], param if isinstance(param, str) else None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        param = body.get("param")
        return body["message"][:300], param if isinstance(param, str) else None
    return response.text.strip()[:300], None


def _status_error(response: httpx.Response, model: str, dimensions: int | None) -> BackendError:
    status = response.status_code
    message, param = _error_text(response)
    if status == 404:
        return BackendModelNotFound(f"The model server does not have {model!r}.")
    if status == 503:
        return BackendUnavailable("The model server is unavailable (starting or overloaded).")
    if status >= 500:
        detail = f": {message}" if message else ""
        return BackendFailed(f"The model server failed (HTTP {status}){detail}")
    if param not in REQUEST_PARAMS:
        # Which field was wrong, when the message makes it plain.
        lowered = message.lower()
        if dimensions is not None and "dimension" in lowered:
            param = "dimensions"
        elif "input" in lowered or "context" in lowered or "token" in lowered:
            param = "input"
        else:
            param = None
    return BackendRejected(
        f"The model server refused the request: {message or f'HTTP {status}'}", param
    )
