"""The job event stream protocol, shared by the worker (writer) and the API (reader).

Each job has one Redis Stream. An entry is {"event": name, "data": json}; its entry id is
the SSE `id:`. A reader that reconnects with Last-Event-ID continues right after it, and a
late reader replays from the start: nothing is lost, nothing is seen twice.

Events: start, token, tool_call, tool_result, reset, done, error, cancelled. `reset` means
"a new attempt starts over: discard the text received so far" (sent when a job is
delivered again after its worker died). done, error and cancelled end a stream; after one
of them the stream expires after STREAM_TTL_SECONDS.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
import redis

TERMINAL_EVENTS = frozenset({"done", "error", "cancelled"})


def compact_json(data: Any) -> str:
    """JSON as stored in a stream and sent to clients: one line, no spaces, UTF-8 as is.

    orjson: every token of every answer is encoded here (and every SSE frame), at a
    fraction of the standard library's cost.
    """
    return orjson.dumps(data).decode()


class Event:
    """One event of a job: its stream entry id, name and JSON data.

    An event read from Redis keeps its data as the JSON text it was stored as: relaying it
    to a client needs no decoding and encoding again (most are relayed, never inspected).
    """

    __slots__ = ("_data", "_raw", "id", "name")

    def __init__(self, id: str, name: str, data: dict[str, Any] | None = None, *, raw=None):
        self.id, self.name, self._data, self._raw = id, name, data, raw

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            self._data = json.loads(self._raw or "{}")
        return self._data

    @property
    def is_terminal(self) -> bool:
        return self.name in TERMINAL_EVENTS

    def to_sse(self) -> str:
        payload = self._raw
        if payload is None:
            payload = compact_json(self._data)
        return f"id: {self.id}\nevent: {self.name}\ndata: {payload}\n\n"


def stream_key(prefix: str, job_id: str) -> str:
    return f"{prefix}job:{job_id}:events"


def cancel_key(prefix: str, job_id: str) -> str:
    return f"{prefix}job:{job_id}:cancel"


def lock_key(prefix: str, job_id: str) -> str:
    return f"{prefix}job:{job_id}:lock"


def enqueued_key(prefix: str, job_id: str) -> str:
    """Set while a job's queue message exists; it vanishes with the broker's data."""
    return f"{prefix}job:{job_id}:enqueued"


class EventWriter:
    """Appends a job's events; used by the worker (and by the API for `cancelled`)."""

    def __init__(self, client: redis.Redis, prefix: str, job_id: str, *, maxlen: int, ttl: int):
        self._client = client
        self._key = stream_key(prefix, job_id)
        self._maxlen = maxlen
        self._ttl = ttl

    def emit(
        self, name: str, data: dict[str, Any] | None = None, *, only_if_exists: bool = False
    ) -> str | None:
        """Append an event; with `only_if_exists`, None instead when the stream is gone."""
        fields = {"event": name, "data": compact_json(data or {})}
        if only_if_exists:
            # NOMKSTREAM: a stream Redis lost must be rebuilt whole, not restarted mid-answer.
            entry_id = self._client.xadd(
                self._key, fields, maxlen=self._maxlen, approximate=True, nomkstream=True
            )
        elif name in TERMINAL_EVENTS:
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

    def emit_many(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        """Append several events in one round trip (a replayed answer, say)."""
        pipe = self._client.pipeline(transaction=True)
        for name, data in events:
            fields = {"event": name, "data": compact_json(data)}
            pipe.xadd(self._key, fields, maxlen=self._maxlen, approximate=True)
        if events and events[-1][0] in TERMINAL_EVENTS:
            pipe.expire(self._key, self._ttl)
        pipe.execute()


def decode_entry(entry_id: Any, fields: dict) -> Event:
    """An event from a stream entry as redis-py returns it."""

    def text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else value

    return Event(
        text(entry_id),
        text(fields.get("event") or fields.get(b"event")),
        raw=text(fields.get("data") or fields.get(b"data") or "{}"),
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
