"""POST /v1/embeddings: OpenAI's embeddings API, answered in the API process.

No job, queue or stream (README, "Embeddings", says why): one round trip to the model
server, one usage row, the answer. A request the model server refuses as sent (a 4xx) is
a 400 and leaves no usage row, like any invalid request; one the model server fails
leaves a `failed` row, as a failed chat job does.
"""

from __future__ import annotations

import base64
import logging
import sys
import time
import uuid
from array import array
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from api import embedding_backends as backends
from api.services.identity import Identity
from config.settings import get_settings
from core.db import db
from core.errors import GenerationFailed, InvalidInput, NotFound, ServiceError
from core.models import UsageRecord
from core.models.usage import EMBEDDINGS_TIER
from core.repositories import usage as usage_repo
from core.statuses import JobStatus

log = logging.getLogger(__name__)


class ModelUnavailable(ServiceError):
    status = 503
    code = "model_unavailable"

    def __init__(self, message: str, **kwargs: Any):
        kwargs.setdefault("headers", {"Retry-After": "5"})
        super().__init__(message, **kwargs)


def embedding_model_names() -> list[str]:
    """The model names POST /v1/embeddings answers to (EMBEDDING_MODELS' aliases, in their
    configured order), for GET /v1/models."""
    return list(get_settings().models.embedding_models)


def backend_model(name: str) -> str:
    """The model server's name for an embedding model; 404 model_not_found like OpenAI's."""
    models = get_settings().models.embedding_models
    if name not in models:
        raise NotFound(
            f"The model {name!r} is not an embedding model of this gateway; "
            f"use one of: {', '.join(models)} (GET /v1/models lists every model).",
            code="model_not_found",
        )
    return models[name]


def encode(vector: list[float], encoding_format: str) -> list[float] | str:
    """A vector as OpenAI sends it: the numbers, or for base64 its little-endian float32
    bytes base64-encoded (what the openai SDKs decode with numpy or `array("f")`)."""
    if encoding_format != "base64":
        return vector
    packed = array("f", vector)
    if sys.byteorder != "little":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def create(identity: Identity, payload: dict[str, Any]) -> dict[str, Any]:
    """The embeddings of the request's texts, as OpenAI's `list` of `embedding` objects."""
    name = payload["model"].strip()
    model = backend_model(name)
    texts: list[str] = payload["input"]
    user_id, api_key_id = identity.user_id, identity.api_key_id
    db.session.close()  # no database connection held while the model server works

    started = time.monotonic()
    try:
        result = backends.embed(
            get_settings().models, model, texts, dimensions=payload.get("dimensions")
        )
    except backends.BackendRejected as exc:
        # OpenAI's `param` comes from the field the details name (api.errors).
        details = {"json": {exc.param or "_schema": [exc.message]}}
        raise InvalidInput(exc.message, details=details) from None
    except backends.BackendError as exc:
        _record_failure(user_id, api_key_id, model, _ms_since(started))
        raise _service_error(exc, name, model) from None
    _record(
        user_id, api_key_id, model, JobStatus.SUCCEEDED, result.prompt_tokens, _ms_since(started)
    )

    encoding_format = payload.get("encoding_format") or "float"
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": encode(vector, encoding_format)}
            for index, vector in enumerate(result.vectors)
        ],
        "model": name,
        "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
    }


def _ms_since(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


def _record(
    user_id: uuid.UUID,
    api_key_id: uuid.UUID | None,
    model: str,
    status: str,
    prompt_tokens: int,
    duration_ms: float,
) -> None:
    usage_repo.add(
        UsageRecord(
            job_id=None,
            user_id=user_id,
            api_key_id=api_key_id,
            model=model,
            tier=EMBEDDINGS_TIER,
            status=status,
            prompt_tokens=prompt_tokens,
            completion_tokens=0,
            duration_ms=duration_ms,
            cached=False,
        )
    )
    db.session.commit()


def _record_failure(
    user_id: uuid.UUID, api_key_id: uuid.UUID | None, model: str, duration_ms: float
) -> None:
    """The failed row; the client hears of the model server's failure even if it cannot be
    written."""
    try:
        _record(user_id, api_key_id, model, JobStatus.FAILED, 0, duration_ms)
    except SQLAlchemyError as exc:
        db.session.rollback()
        log.error("usage row of failed embeddings not written: %s", exc.__class__.__name__)


def _service_error(exc: backends.BackendError, name: str, model: str) -> ServiceError:
    if isinstance(exc, backends.BackendUnavailable):
        return ModelUnavailable(exc.message)
    if isinstance(exc, backends.BackendTimeout):
        return ModelUnavailable(exc.message, code="model_timeout")
    if isinstance(exc, backends.BackendModelNotFound):
        log.error(
            "embedding model missing on the model server (pull it, or fix EMBEDDING_MODELS)",
            extra={"model": model, "alias": name},
        )
        return NotFound(
            f"The model {name!r} is not available on the model server.", code="model_not_found"
        )
    code = exc.code if isinstance(exc, backends.BackendFailed) else "model_error"
    return GenerationFailed(exc.message, code=code)
