"""OpenAI's Responses API on the job pipeline: a response is a job.

`resp_<job id>` names it; background responses return at once and are polled, streamed,
resumed and cancelled through the job. A request's conversation (its instructions, the
previous response's turns and output, its input items) becomes the chat messages the
chat-completions schema checks, so both APIs send the model the same thing.

Streamed events are made from the job's Redis stream, numbered from its start: the same
stream always gives the same numbers, so `starting_after=N` resumes a dropped stream
exactly after event N (while the stream is kept: STREAM_TTL_SECONDS after the end).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import marshmallow as ma

from api.schemas.openai_compat import ChatCompletionRequestSchema
from api.schemas.responses import LOGPROBS_INCLUDE
from api.services import jobs, openai_compat
from api.services.identity import Identity
from config.settings import get_settings
from core.db import db
from core.errors import Conflict, InvalidInput, NotFound
from core.models import Job
from core.statuses import JobStatus
from pipeline.events import Event, EventName, compact_json

ID_PREFIX = "resp_"
HEARTBEAT = ": ping\n\n"
CANCEL_WAIT_SECONDS = 2.0
# The fields of a request kept with its job and shown on the response object.
KEPT_FIELDS = (
    "background",
    "instructions",
    "previous_response_id",
    "max_output_tokens",
    "temperature",
    "top_p",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "text",
    "user",
    "metadata",
    "top_logprobs",
)
STATUSES = {
    JobStatus.QUEUED: "queued",
    JobStatus.RUNNING: "in_progress",
    JobStatus.SUCCEEDED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "cancelled",
}


def response_id(job: Job) -> str:
    return f"{ID_PREFIX}{job.id.hex}"


# --- create ----------------------------------------------------------------------------


def create(identity: Identity, payload: dict[str, Any], *, cache: str) -> Job:
    """Submit a response's job (or answer it from the cache)."""
    messages = []
    if payload.get("instructions"):
        messages.append({"role": "system", "content": payload["instructions"]})
    if payload.get("previous_response_id"):
        messages += _previous_turns(identity, payload["previous_response_id"])
    messages += _input_messages(payload["input"])
    chat = _chat_payload(payload, messages)
    kept = {name: payload.get(name) for name in KEPT_FIELDS}
    request = openai_compat.job_request(chat, idempotency_key=None, cache=cache, response=kept)
    job, _created = jobs.submit(identity, request)
    return job


def _previous_turns(identity: Identity, previous_id: str) -> list[dict[str, Any]]:
    """The previous response's turns and output, without its instructions (as OpenAI:
    instructions are not carried over)."""
    try:
        previous = get(identity.user_id, previous_id)
    except NotFound:
        raise NotFound(
            f"Previous response with id {previous_id!r} not found.",
            details={"json": {"previous_response_id": ["Not found."]}},
        ) from None
    if previous.status != JobStatus.SUCCEEDED:
        message = f"The previous response is {STATUSES[previous.status]}, not completed."
        raise InvalidInput(message, details={"json": {"previous_response_id": [message]}})
    turns = list(previous.input["messages"])
    if turns and previous.input["response"].get("instructions"):
        turns = turns[1:]
    answer: dict[str, Any] = {"role": "assistant", "content": previous.output or ""}
    if previous.tool_calls:
        answer["tool_calls"] = previous.tool_calls
    return [*turns, answer]


def _input_messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Input items as chat messages: function calls in a row become one assistant message
    with tool_calls, their outputs tool messages."""
    messages: list[dict[str, Any]] = []
    for item in items:
        if item["type"] == "message":
            messages.append({"role": item["role"], "content": item["content"]})
        elif item["type"] == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        else:
            messages.append(
                {"role": "tool", "tool_call_id": item["call_id"], "content": item["output"]}
            )
    return messages


def _chat_payload(payload: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The chat.completions request the response amounts to, checked by its schema."""
    chat: dict[str, Any] = {"model": payload["model"], "messages": messages}
    if payload.get("max_output_tokens") is not None:
        chat["max_tokens"] = payload["max_output_tokens"]
    for name in ("temperature", "top_p", "tool_choice", "parallel_tool_calls"):
        if payload.get(name) is not None:
            chat[name] = payload[name]
    if isinstance(chat.get("tool_choice"), dict):
        chat["tool_choice"] = {
            "type": "function",
            "function": {"name": chat["tool_choice"]["name"]},
        }
    functions = [tool for tool in payload.get("tools") or () if tool["type"] == "function"]
    _check_web_search(payload, bool(functions))
    if functions:
        chat["tools"] = [
            {"type": "function", "function": {k: v for k, v in tool.items() if k != "type"}}
            for tool in functions
        ]
    text_format = (payload.get("text") or {}).get("format")
    if text_format and text_format["type"] == "json_schema":
        spec = {
            k: text_format[k]
            for k in ("name", "description", "schema", "strict")
            if k in text_format
        }
        chat["response_format"] = {"type": "json_schema", "json_schema": spec}
    elif text_format:
        chat["response_format"] = {"type": text_format["type"]}
    if LOGPROBS_INCLUDE in (payload.get("include") or ()):
        chat["logprobs"] = True
        if payload.get("top_logprobs"):
            chat["top_logprobs"] = payload["top_logprobs"]
    try:
        return ChatCompletionRequestSchema().load(chat)
    except ma.ValidationError as exc:
        raise InvalidInput(
            "The request's conversation is invalid.", details={"json": _as_input(exc.messages)}
        ) from None


def _check_web_search(payload: dict[str, Any], with_functions: bool) -> None:
    """OpenAI's built-in web search is the gateway's own, run on the worker: only for the
    models the operator enabled it for, and never mixed with the client's functions."""
    for index, tool in enumerate(payload.get("tools") or ()):
        if tool["type"] == "function":
            continue
        problem = None
        if payload["model"] not in get_settings().models.openai_web_search_models:
            problem = (
                f"Web search is not enabled for the model {payload['model']!r} "
                "(OPENAI_WEB_SEARCH_MODELS)."
            )
        elif with_functions:
            problem = "The gateway's web search cannot be combined with function tools."
        if problem:
            details = {"json": {"tools": {str(index): {"type": [problem]}}}}
            raise InvalidInput(problem, details=details)


def _as_input(errors: dict[str, Any]) -> dict[str, Any]:
    """Chat-schema errors in the Responses API's terms (messages are its input)."""
    names = {"messages": "input", "max_tokens": "max_output_tokens", "response_format": "text"}
    return {names.get(name, name): problem for name, problem in errors.items()}


# --- read, cancel --------------------------------------------------------------------


def get(user_id: uuid.UUID, response_id: str) -> Job:
    """The user's response (a job made by this API); 404 for anything else."""
    missing = NotFound(f"No response with id {response_id!r}.")
    hex_id = response_id.removeprefix(ID_PREFIX) if response_id.startswith(ID_PREFIX) else ""
    try:
        job = jobs.get(user_id, uuid.UUID(hex=hex_id))
    except (ValueError, NotFound):
        raise missing from None  # the same answer for a malformed id and another's
    if "response" not in job.input:
        raise missing
    return job


def cancel(user_id: uuid.UUID, response_id: str) -> Job:
    """Cancel a background response: it ends `cancelled` (waited for up to 2 s)."""
    job = get(user_id, response_id)
    if not job.input["response"].get("background"):
        raise InvalidInput("Only a background response can be cancelled.")
    if job.status == JobStatus.CANCELLED:
        return job
    if job.is_terminal:
        raise Conflict(f"The response has already ended ({STATUSES[job.status]}).")
    job = jobs.cancel(user_id, job.id)
    deadline = time.monotonic() + CANCEL_WAIT_SECONDS
    while not job.is_terminal and time.monotonic() < deadline:
        time.sleep(0.05)
        db.session.refresh(job)
    return job


# --- the response object --------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """Where a response stands: from its job row, or from its stream's events."""

    status: str
    text: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None
    error: dict[str, Any] | None = None
    logprobs: list[dict[str, Any]] | None = None

    @classmethod
    def of(cls, job: Job) -> Outcome:
        error = None
        if job.status == JobStatus.FAILED:
            error = {"code": job.error_code or "server_error", "message": job.error_message or ""}
        usage = None
        if job.status == JobStatus.SUCCEEDED:
            usage = {"prompt_tokens": job.prompt_tokens, "completion_tokens": job.completion_tokens}
        return cls(
            STATUSES[job.status],
            job.output,
            job.tool_calls,
            usage,
            job.finish_reason,
            error,
            job.logprobs,
        )


def _message_item(job: Job, text: str, logprobs, status: str = "completed") -> dict[str, Any]:
    return {
        "id": f"msg_{job.id.hex}",
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [_text_part(text, logprobs)] if status == "completed" else [],
    }


def _text_part(text: str, logprobs=None) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs or []}


def _call_item(job: Job, index: int, call: dict[str, Any], status="completed") -> dict[str, Any]:
    return {
        "id": f"fc_{job.id.hex}_{index}",
        "type": "function_call",
        "status": status,
        "call_id": call["id"],
        "name": call["function"]["name"],
        "arguments": call["function"]["arguments"] if status == "completed" else "",
    }


def _output(job: Job, outcome: Outcome) -> list[dict[str, Any]]:
    items = []
    if outcome.text:
        items.append(_message_item(job, outcome.text, outcome.logprobs))
    for index, call in enumerate(outcome.tool_calls or ()):
        items.append(_call_item(job, index, call))
    return items


def _usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    prompt, completion = usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


def response_object(job: Job, outcome: Outcome | None = None) -> dict[str, Any]:
    """OpenAI's response object for the job (as it stands, or at `outcome`)."""
    outcome = outcome or Outcome.of(job)
    kept = job.input["response"]
    status = outcome.status
    incomplete = None
    if status == "completed" and outcome.finish_reason == "length":
        status, incomplete = "incomplete", {"reason": "max_output_tokens"}
    text = kept.get("text") or {}
    return {
        "id": response_id(job),
        "object": "response",
        "created_at": int(job.created_at.timestamp()),
        "status": status,
        "background": bool(kept.get("background")),
        "error": outcome.error,
        "incomplete_details": incomplete,
        "instructions": kept.get("instructions"),
        "max_output_tokens": kept.get("max_output_tokens"),
        "model": job.model,
        "output": _output(job, outcome) if outcome.status == "completed" else [],
        "parallel_tool_calls": kept.get("parallel_tool_calls") is not False,
        "previous_response_id": kept.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "temperature": kept.get("temperature"),
        "text": {"format": text.get("format") or {"type": "text"}},
        "tool_choice": kept.get("tool_choice") or "auto",
        "tools": kept.get("tools") or [],
        "top_logprobs": kept.get("top_logprobs"),
        "top_p": kept.get("top_p"),
        "truncation": "disabled",
        "usage": _usage(outcome.usage),
        "user": kept.get("user"),
        "metadata": kept.get("metadata") or {},
    }


# --- streaming ------------------------------------------------------------------------


def events(job: Job, stream: Iterable[Event | None]) -> Iterator[dict[str, Any] | None]:
    """The job's events as the Responses API's stream events (without sequence numbers;
    None for a heartbeat), from response.created to its end."""
    message_id = f"msg_{job.id.hex}"
    text_part = {"item_id": message_id, "output_index": 0, "content_index": 0}
    yield {"type": "response.created", "response": response_object(job, Outcome("queued"))}
    parts: list[str] = []
    logprobs: list[dict[str, Any]] = []
    started = False
    for event in stream:
        if event is None:
            yield None
        elif event.name == EventName.START and not started:
            started = True
            progress = response_object(job, Outcome("in_progress"))
            yield {"type": "response.in_progress", "response": progress}
        elif event.name == EventName.TOKEN:
            if not parts:
                item = _message_item(job, "", None, status="in_progress")
                yield {"type": "response.output_item.added", "output_index": 0, "item": item}
                part = _text_part("")
                yield {"type": "response.content_part.added", **text_part, "part": part}
            parts.append(event.data["text"])
            logprobs += event.data.get("logprobs") or []
            delta = {"delta": event.data["text"], "logprobs": event.data.get("logprobs") or []}
            yield {"type": "response.output_text.delta", **text_part, **delta}
        elif event.name == EventName.RESET and parts:
            # The job started over on another worker; text already sent cannot be unsent.
            yield {
                "type": "error",
                "code": "generation_restarted",
                "message": "The generation was interrupted and started over.",
                "param": None,
            }
            return
        elif event.is_terminal:
            yield from _ending(job, event, "".join(parts), logprobs)
            return


def _ending(job: Job, event: Event, text: str, logprobs: list) -> Iterator[dict[str, Any]]:
    data = event.data
    if event.name == EventName.DONE:
        tool_calls = data.get("tool_calls")
        outcome = Outcome(
            "completed",
            text,
            tool_calls,
            data.get("usage"),
            data.get("finish_reason"),
            logprobs=logprobs or None,
        )
        if text:
            part = _text_part(text, logprobs)
            at = {"item_id": f"msg_{job.id.hex}", "output_index": 0, "content_index": 0}
            yield {
                "type": "response.output_text.done",
                **at,
                "text": text,
                "logprobs": part["logprobs"],
            }
            yield {"type": "response.content_part.done", **at, "part": part}
            item = _message_item(job, text, logprobs)
            yield {"type": "response.output_item.done", "output_index": 0, "item": item}
        for index, call in enumerate(tool_calls or ()):
            output_index = index + (1 if text else 0)
            added = _call_item(job, index, call, status="in_progress")
            at = {"item_id": added["id"], "output_index": output_index}
            yield {
                "type": "response.output_item.added",
                "output_index": output_index,
                "item": added,
            }
            arguments = call["function"]["arguments"]
            yield {"type": "response.function_call_arguments.delta", **at, "delta": arguments}
            yield {"type": "response.function_call_arguments.done", **at, "arguments": arguments}
            item = _call_item(job, index, call)
            yield {"type": "response.output_item.done", "output_index": output_index, "item": item}
        final = response_object(job, outcome)
        kind = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
        yield {"type": kind, "response": final}
    elif event.name == EventName.ERROR:
        error = data.get("error") or {}
        failed = {"code": error.get("code", "server_error"), "message": error.get("message", "")}
        yield {
            "type": "response.failed",
            "response": response_object(job, Outcome("failed", error=failed)),
        }
    else:
        # The stream events of OpenAI's SDKs have no response.cancelled: a cancelled
        # response ends with response.failed, its status saying what happened.
        cancelled = {"code": "cancelled", "message": "The response was cancelled."}
        ended = response_object(job, Outcome("cancelled", error=cancelled))
        yield {"type": "response.failed", "response": ended}


def sse(job: Job, stream: Iterable[Event | None], *, after: int | None = None) -> Iterator[str]:
    """The response's stream as Server-Sent Events, numbered from 0; after `after` only."""
    sequence = -1
    for event in events(job, stream):
        if event is None:
            yield HEARTBEAT
            continue
        sequence += 1
        if after is not None and sequence <= after:
            continue
        data = {"type": event["type"], "sequence_number": sequence, **event}
        yield f"event: {event['type']}\ndata: {compact_json(data)}\n\n"
