"""The response cache in Redis, and single flight for identical requests in progress.

A cache key is a hash of everything that shapes the answer: the resolved model, the
provider, the full message list sent to the model (system prompt and conversation context
included) and every generation parameter. While one job generates an answer, identical
requests become its followers and are answered from its result (see services.jobs).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from config.settings import get_settings
from core.redis import redis_store
from pipeline.events import compact_json
from pipeline.prompts import model_messages

# Bumped when the key material changes shape, so old entries are never misread.
KEY_VERSION = 1

# Delete the flight marker only if it still names this job (a later leader may own it).
_END_FLIGHT = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end"


@dataclass(frozen=True)
class CachedAnswer:
    chunks: list[str]
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    source_job_id: str
    tool_calls: list[dict[str, Any]] | None = None
    # Each chunk's token log probabilities, when the request asked for them.
    chunk_logprobs: list[list[dict[str, Any]]] | None = None

    @property
    def text(self) -> str:
        return "".join(self.chunks)

    @property
    def logprobs(self) -> list[dict[str, Any]] | None:
        if self.chunk_logprobs is None:
            return None
        return [entry for entries in self.chunk_logprobs for entry in entries]


def enabled() -> bool:
    return get_settings().cache.ttl_seconds > 0


def key_for(
    model: str, messages: list[dict[str, str]], params: dict[str, Any], user_id: uuid.UUID
) -> str:
    """The cache key of a request: the same key means the model gets exactly the same input."""
    settings = get_settings()
    material = {
        "v": KEY_VERSION,
        "provider": settings.models.llm_provider,
        "model": model,
        "messages": model_messages(messages),
        "params": params,
        "tool_rounds": settings.models.agent_max_tool_rounds if params.get("tools") else 0,
        # "user" scope never shares answers between accounts, not even identical ones.
        "user": str(user_id) if settings.cache.scope == "user" else None,
    }
    encoded = json.dumps(material, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def _entry_key(key: str) -> str:
    return redis_store.key("cache", key)


def _flight_key(key: str) -> str:
    return redis_store.key("cache", key, "flight")


def lookup(key: str) -> CachedAnswer | None:
    raw = redis_store.client.get(_entry_key(key))
    if raw is None:
        return None
    try:
        return CachedAnswer(**json.loads(raw))
    except (TypeError, ValueError):
        return None  # written by another version: a miss, overwritten by the next answer


def store(key: str, answer: CachedAnswer) -> None:
    payload = compact_json(asdict(answer))
    redis_store.client.set(_entry_key(key), payload, ex=get_settings().cache.ttl_seconds)


def join_flight(key: str, job_id: uuid.UUID) -> uuid.UUID | None:
    """Lead the generation for `key` (None), or get the id of the job that already leads."""
    settings = get_settings()
    # The marker outlives any honest wait for the leader: queueing, every attempt, redelivery.
    ttl = (
        settings.queue.broker_visibility_timeout
        + settings.queue.time_limit * settings.queue.max_attempts
    )
    client, flight = redis_store.client, _flight_key(key)
    for _ in range(3):  # the marker may vanish between SET NX and GET: try again
        if client.set(flight, str(job_id), nx=True, ex=ttl):
            return None
        leader = client.get(flight)
        if leader is not None:
            return uuid.UUID(leader)
    return None


def end_flight(key: str, job_id: uuid.UUID) -> None:
    redis_store.client.eval(_END_FLIGHT, 1, _flight_key(key), str(job_id))
