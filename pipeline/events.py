"""The event protocol of a job's stream: what each event is called and carries.

A job's answer travels as events, written by the worker (and by the API for a cached
answer, a cancel before any worker, or a stream rebuilt from PostgreSQL) and read by the
relays (SSE, /v1, the Responses API). The builders below are the only place an event's
data is put together, and `Event` with `decode_entry` the only parser.

start        {job_id, model, tier, attempt?, cached?, overhead_ms?}   a (new) attempt begins
token        {text, logprobs?}                                       a piece of the answer
tool_call    {name, arguments}       the agent calls a tool (web search) on the worker
tool_result  {name, content}
reset        {reason, attempt?}      discard the text received so far: an attempt starts over
done         {message_id, usage, finish_reason, tool_calls?, cached?}        terminal
error        {error: {code, message}}                                        terminal
cancelled    {job_id, partial}                                               terminal
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

if TYPE_CHECKING:
    from core.models import Job


class EventName(StrEnum):
    START = "start"
    TOKEN = "token"  # noqa: S105 - an event's name, not a secret
    TOOL_CALL = "tool_call"
    TOOL_RESULT = "tool_result"
    RESET = "reset"
    DONE = "done"
    ERROR = "error"
    CANCELLED = "cancelled"


# One of these ends a stream; after it the stream expires (STREAM_TTL_SECONDS).
TERMINAL_EVENTS = frozenset({EventName.DONE, EventName.ERROR, EventName.CANCELLED})


class Draft(NamedTuple):
    """An event to be written: its name and data (the stream gives it its id)."""

    name: EventName
    data: dict[str, Any]


def compact_json(data: Any) -> str:
    """JSON as stored in a stream and sent to clients: one line, no spaces, UTF-8 as is.

    orjson: every token of every answer is encoded here (and every SSE frame), at a
    fraction of the standard library's cost.
    """
    return orjson.dumps(data).decode()


# --- builders ---------------------------------------------------------------------------


def start(
    job_id: Any,
    model: str,
    tier: str,
    *,
    attempt: int | None = None,
    cached: bool = False,
    overhead_ms: dict[str, float] | None = None,
) -> Draft:
    data: dict[str, Any] = {"job_id": str(job_id), "model": model, "tier": tier}
    if attempt is not None:
        data["attempt"] = attempt
    if cached:
        data["cached"] = True
    if overhead_ms is not None:
        data["overhead_ms"] = overhead_ms
    return Draft(EventName.START, data)


def token(text: str, logprobs: list[dict[str, Any]] | None = None) -> Draft:
    data: dict[str, Any] = {"text": text}
    if logprobs is not None:
        data["logprobs"] = logprobs
    return Draft(EventName.TOKEN, data)


def tool_call(name: str, arguments: dict[str, Any]) -> Draft:
    return Draft(EventName.TOOL_CALL, {"name": name, "arguments": arguments})


def tool_result(name: str, content: str) -> Draft:
    return Draft(EventName.TOOL_RESULT, {"name": name, "content": content})


def reset(reason: str, *, attempt: int | None = None) -> Draft:
    data: dict[str, Any] = {"reason": reason}
    if attempt is not None:
        data["attempt"] = attempt
    return Draft(EventName.RESET, data)


def done(
    *,
    message_id: Any,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    finish_reason: str | None,
    tool_calls: list[dict[str, Any]] | None = None,
    cached: bool = False,
) -> Draft:
    data: dict[str, Any] = {
        "message_id": str(message_id) if message_id else None,
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
        "finish_reason": finish_reason,
    }
    if tool_calls:
        data["tool_calls"] = tool_calls
    if cached:
        data["cached"] = True
    return Draft(EventName.DONE, data)


def done_of(job: Job) -> Draft:
    """The `done` event of a job that has succeeded, from its row (a cached answer's job,
    or one whose stream is rebuilt)."""
    return done(
        message_id=job.assistant_message_id,
        prompt_tokens=job.prompt_tokens,
        completion_tokens=job.completion_tokens,
        finish_reason=job.finish_reason,
        tool_calls=job.tool_calls,
        cached=job.cached,
    )


def error(code: str | None, message: str | None) -> Draft:
    return Draft(EventName.ERROR, {"error": {"code": code, "message": message}})


def cancelled(job_id: Any, *, partial: bool) -> Draft:
    return Draft(EventName.CANCELLED, {"job_id": str(job_id), "partial": partial})


# --- the parser -------------------------------------------------------------------------


class Event:
    """One event of a job as read: its stream entry id, name and JSON data.

    An event read from Redis keeps its data as the JSON text it was stored as: relaying it
    to a client needs no decoding and encoding again (most are relayed, never inspected).
    """

    __slots__ = ("_data", "_raw", "id", "name")

    def __init__(self, id: str, name: str, data: dict[str, Any] | None = None, *, raw=None):
        self.id, self.name, self._data, self._raw = id, name, data, raw

    @classmethod
    def of(cls, id: str, draft: Draft) -> Event:
        """A drafted event given an id (one rebuilt rather than read from a stream)."""
        return cls(id, draft.name, draft.data)

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


def entry_fields(draft: Draft) -> dict[str, str]:
    """A drafted event as the fields of its stream entry."""
    return {"event": str(draft.name), "data": compact_json(draft.data)}


def decode_entry(entry_id: Any, fields: dict) -> Event:
    """An event from a stream entry as redis-py returns it."""

    def text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else value

    return Event(
        text(entry_id),
        text(fields.get("event") or fields.get(b"event")),
        raw=text(fields.get("data") or fields.get(b"data") or "{}"),
    )
