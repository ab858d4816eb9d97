"""A job's Redis keys and its event stream: where events are written and how ids look.

Each job has one Redis Stream. An entry is {"event": name, "data": json} (see
pipeline/events.py for the events); its entry id is the SSE `id:`. A reader that
reconnects with Last-Event-ID continues right after it, and a late reader replays from the
start: nothing is lost, nothing is seen twice. After a terminal event the stream expires
(STREAM_TTL_SECONDS); a reader then gets the job rebuilt from PostgreSQL.
"""

from __future__ import annotations

import re
import uuid

import redis

from config.settings import get_settings
from core.redis import redis_store
from pipeline.events import TERMINAL_EVENTS, Draft, entry_fields


def stream_key(prefix: str, job_id: str) -> str:
    return f"{prefix}job:{job_id}:events"


def cancel_key(prefix: str, job_id: str) -> str:
    """Set by a cancel; the worker's watcher stops the job when it sees it."""
    return f"{prefix}job:{job_id}:cancel"


def lock_key(prefix: str, job_id: str) -> str:
    """Held by the worker delivery running a job, so no second delivery runs it too."""
    return f"{prefix}job:{job_id}:lock"


def enqueued_key(prefix: str, job_id: str) -> str:
    """Set while a job's queue message exists; it vanishes with the broker's data."""
    return f"{prefix}job:{job_id}:enqueued"


class EventWriter:
    """Appends a job's events: the worker's, and the API's (a cached answer, a cancel)."""

    def __init__(self, client: redis.Redis, prefix: str, job_id: str, *, maxlen: int, ttl: int):
        self._client = client
        self._key = stream_key(prefix, job_id)
        self._maxlen = maxlen
        self._ttl = ttl

    def emit(self, draft: Draft, *, only_if_exists: bool = False) -> str | None:
        """Append an event; with `only_if_exists`, None instead when the stream is gone."""
        fields = entry_fields(draft)
        if only_if_exists:
            # NOMKSTREAM: a stream Redis lost must be rebuilt whole, not restarted mid-answer.
            entry_id = self._client.xadd(
                self._key, fields, maxlen=self._maxlen, approximate=True, nomkstream=True
            )
        elif draft.name in TERMINAL_EVENTS:
            # The end and its expiry in one round trip, so no stream is left without a TTL.
            pipe = self._client.pipeline(transaction=True)
            pipe.xadd(self._key, fields, maxlen=self._maxlen, approximate=True)
            pipe.expire(self._key, self._ttl)
            entry_id = pipe.execute()[0]
        else:
            entry_id = self._client.xadd(self._key, fields, maxlen=self._maxlen, approximate=True)
        if entry_id is None:
            return None
        return entry_id if isinstance(entry_id, str) else entry_id.decode()

    def emit_many(self, drafts: list[Draft]) -> None:
        """Append several events in one round trip (a replayed answer, say)."""
        pipe = self._client.pipeline(transaction=True)
        for draft in drafts:
            pipe.xadd(self._key, entry_fields(draft), maxlen=self._maxlen, approximate=True)
        if drafts and drafts[-1].name in TERMINAL_EVENTS:
            pipe.expire(self._key, self._ttl)
        pipe.execute()


def writer_for(job_id: uuid.UUID) -> EventWriter:
    """The writer of a job's stream, with the app's stream length and expiry."""
    settings = get_settings()
    return EventWriter(
        redis_store.client,
        settings.redis.key_prefix,
        str(job_id),
        maxlen=settings.streaming.stream_maxlen,
        ttl=settings.streaming.stream_ttl_seconds,
    )


def stream_exists(client: redis.Redis, prefix: str, job_id: str) -> bool:
    return bool(client.exists(stream_key(prefix, job_id)))


# Redis stream ids are two unsigned 64-bit integers, "ms-seq", in ASCII digits (str.isdigit
# would also accept "²"); Redis rejects anything else mid-stream.
_EVENT_ID = re.compile(r"(?P<ms>[0-9]{1,20})-(?P<seq>[0-9]{1,20})")
_UINT64_MAX = 2**64 - 1


def valid_event_id(value: str | None) -> bool:
    """Whether a client's Last-Event-ID is a Redis stream id (ms-seq) Redis accepts."""
    match = _EVENT_ID.fullmatch(value or "")
    return bool(match) and max(int(match["ms"]), int(match["seq"])) <= _UINT64_MAX
