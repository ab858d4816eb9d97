"""The OpenAI-compatible API on the gateway's own pipeline: requests become jobs, and a
job's events become chat.completion objects or chat.completion.chunk frames.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any

from api.chat_messages import text_of
from api.services import embeddings, jobs, routing
from config.settings import get_settings
from core.errors import InvalidInput, NotFound
from core.models import Job
from pipeline.events import Event, EventName, compact_json

DONE_FRAME = "data: [DONE]\n\n"
HEARTBEAT = ": ping\n\n"
OWNER = "llm-gateway"


# Loaded request fields that shape the answer beyond max_tokens and temperature: they go
# into the job's params (and so the cache key) and on to the model server.
OPTION_FIELDS = (
    "top_p",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "response_format",
    "tool_choice",
    "parallel_tool_calls",
)


def job_request(
    payload: dict[str, Any],
    *,
    idempotency_key: str | None,
    cache: str,
    response: dict[str, Any] | None = None,
) -> jobs.JobRequest:
    """The job for a chat.completions request (as the schema loaded it); 404
    model_not_found like OpenAI's API. `response`: the Responses API's fields, kept."""
    model = payload["model"].strip()
    if model not in routing.choices():
        raise NotFound(
            f"The model {model!r} does not exist; GET /v1/models lists the served ones.",
            code="model_not_found",
        )
    turns = tuple(payload["messages"])
    _check_image_urls(turns)
    options = {name: payload.get(name) for name in OPTION_FIELDS}
    if (options["response_format"] or {}).get("type") == "text":
        options["response_format"] = None  # the default: plain text
    if not options["logprobs"]:
        options["logprobs"] = options["top_logprobs"] = None
    client_tools = payload.get("tools") or None
    if not client_tools:
        options["tool_choice"] = options["parallel_tool_calls"] = None
    # The gateway's web search is a server-side tool the operator enables per model name;
    # a request that brings its own tools gets only those, so the two never mix.
    search = not client_tools and model in get_settings().models.openai_web_search_models
    last_user = next((turn for turn in reversed(turns) if turn["role"] == "user"), None)
    return jobs.JobRequest(
        message=text_of(last_user["content"]) if last_user else "",
        model=model,
        tools=search,
        max_tokens=payload.get("max_completion_tokens") or payload.get("max_tokens"),
        temperature=payload.get("temperature"),
        idempotency_key=idempotency_key,
        cache=cache,
        turns=turns,
        options={**options, "client_tools": client_tools},
        response=response,
    )


def _check_image_urls(turns: tuple[dict[str, Any], ...]) -> None:
    """Ollama takes images inline; the gateway fetches nothing for a client (no SSRF)."""
    if get_settings().models.llm_provider != "ollama":
        return  # OpenAI-compatible servers take image URLs themselves
    for index, turn in enumerate(turns):
        parts = turn["content"] if isinstance(turn["content"], list) else ()
        urls = [part["image_url"]["url"] for part in parts if part["type"] == "image_url"]
        if not all(url.startswith("data:image/") for url in urls):
            message = "Ollama takes images inline: send them as data:image/...;base64 URLs."
            raise InvalidInput(
                message, details={"json": {"messages": {str(index): {"content": [message]}}}}
            )


def models() -> dict[str, Any]:
    """The chat model names (routing's choices), then the embedding models'."""
    names = [*routing.choices(), *embeddings.embedding_model_names()]
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": OWNER} for name in names
        ],
    }


def _finish_reason(reason: str | None) -> str:
    return reason if reason in ("length", "tool_calls") else "stop"


def _usage(prompt: int | None, completion: int | None) -> dict[str, int]:
    prompt, completion = prompt or 0, completion or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _identity(job: Job) -> dict[str, Any]:
    return {"id": f"chatcmpl-{job.id.hex}", "created": int(job.created_at.timestamp())}


def _wants_logprobs(job: Job) -> bool:
    return bool(job.input.get("params", {}).get("logprobs"))


def completion(job: Job) -> dict[str, Any]:
    """A succeeded job as a chat.completion object."""
    message: dict[str, Any] = {"role": "assistant", "content": job.output or "", "refusal": None}
    if job.tool_calls:
        message["tool_calls"] = job.tool_calls
        message["content"] = job.output or None  # OpenAI's: null next to tool calls
    logprobs = None
    if _wants_logprobs(job):
        logprobs = {"content": job.logprobs or [], "refusal": None}
    return {
        **_identity(job),
        "object": "chat.completion",
        "model": job.model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": logprobs,
                "finish_reason": _finish_reason(job.finish_reason),
            }
        ],
        "usage": _usage(job.prompt_tokens, job.completion_tokens),
    }


def _frame(data: dict[str, Any]) -> str:
    return f"data: {compact_json(data)}\n\n"


def _error_frame(code: str, message: str) -> str:
    return _frame(
        {"error": {"message": message, "type": "server_error", "param": None, "code": code}}
    )


def chunks(job: Job, events: Iterable[Event | None], *, include_usage: bool) -> Iterator[str]:
    """A job's events as chat.completion.chunk frames, ending with `data: [DONE]`.

    Tool calls come as OpenAI's tool-call deltas (one whole call per delta) before the
    finish chunk. A failure is an error frame before [DONE], never a made-up finish_reason.
    """
    base = {**_identity(job), "object": "chat.completion.chunk", "model": job.model}
    if include_usage:
        base["usage"] = None  # as OpenAI: null on every chunk but the last
    with_logprobs = _wants_logprobs(job)

    def chunk(delta: dict[str, Any], finish_reason: str | None = None, logprobs=None) -> str:
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        if with_logprobs:
            choice["logprobs"] = {"content": logprobs, "refusal": None} if logprobs else None
        return _frame({**base, "choices": [choice]})

    yield chunk({"role": "assistant", "content": ""})
    sent_text = False
    for event in events:
        if event is None:
            yield HEARTBEAT
        elif event.name == EventName.TOKEN:
            sent_text = True
            yield chunk({"content": event.data["text"]}, logprobs=event.data.get("logprobs"))
        elif event.name == EventName.RESET and sent_text:
            # The job started over on another worker; text already sent cannot be unsent.
            yield _error_frame(
                "generation_restarted", "The generation was interrupted and started over."
            )
            break
        elif event.name == EventName.DONE:
            for index, call in enumerate(event.data.get("tool_calls") or ()):
                yield chunk({"tool_calls": [{"index": index, **call}]})
            yield chunk({}, _finish_reason(event.data.get("finish_reason")))
            if include_usage:
                usage = event.data.get("usage") or {}
                figures = _usage(usage.get("prompt_tokens"), usage.get("completion_tokens"))
                yield _frame({**base, "choices": [], "usage": figures})
            break
        elif event.name == EventName.ERROR:
            error = event.data.get("error") or {}
            yield _error_frame(error.get("code", "model_error"), error.get("message", ""))
            break
        elif event.name == EventName.CANCELLED:
            yield _error_frame("cancelled", "The generation was cancelled.")
            break
    yield DONE_FRAME


# --- legacy completions (/v1/completions) ------------------------------------------------


def completion_job_request(
    payload: dict[str, Any], *, idempotency_key: str | None, cache: str
) -> jobs.JobRequest:
    """The job for a legacy completions request: its prompt is the user's message to the
    chat model (after SYSTEM_PROMPT), without tools."""
    chat = {
        **{name: payload.get(name) for name in OPTION_FIELDS if name in payload},
        "model": payload["model"],
        "messages": [{"role": "user", "content": payload["prompt"]}],
        "max_tokens": payload.get("max_tokens"),
        "temperature": payload.get("temperature"),
        "logprobs": payload.get("logprobs") is not None,
        "top_logprobs": payload.get("logprobs") or None,
    }
    request = job_request(chat, idempotency_key=idempotency_key, cache=cache)
    return dataclasses.replace(request, tools=False)


def _legacy_logprobs(entries: list[dict[str, Any]], offset: int = 0) -> dict[str, Any]:
    """Chat logprobs entries in the legacy shape: parallel lists, top ones as a dict."""
    offsets, position = [], offset
    for entry in entries:
        offsets.append(position)
        position += len(entry["token"])
    return {
        "tokens": [entry["token"] for entry in entries],
        "token_logprobs": [entry["logprob"] for entry in entries],
        "top_logprobs": [
            {top["token"]: top["logprob"] for top in entry.get("top_logprobs") or ()}
            for entry in entries
        ],
        "text_offset": offsets,
    }


def text_completion(job: Job) -> dict[str, Any]:
    """A succeeded job as a text_completion object."""
    logprobs = _legacy_logprobs(job.logprobs or []) if _wants_logprobs(job) else None
    return {
        "id": f"cmpl-{job.id.hex}",
        "object": "text_completion",
        "created": int(job.created_at.timestamp()),
        "model": job.model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "text": job.output or "",
                "logprobs": logprobs,
                "finish_reason": _finish_reason(job.finish_reason),
            }
        ],
        "usage": _usage(job.prompt_tokens, job.completion_tokens),
    }


def text_chunks(job: Job, events: Iterable[Event | None], *, include_usage: bool) -> Iterator[str]:
    """A job's events as text_completion chunks, ending with `data: [DONE]`."""
    base = {
        "id": f"cmpl-{job.id.hex}",
        "object": "text_completion",
        "created": int(job.created_at.timestamp()),
        "model": job.model,
    }
    with_logprobs = _wants_logprobs(job)
    offset = 0

    def chunk(text: str, finish_reason: str | None = None, logprobs=None) -> str:
        choice = {"index": 0, "text": text, "logprobs": logprobs, "finish_reason": finish_reason}
        return _frame({**base, "choices": [choice]})

    sent_text = False
    for event in events:
        if event is None:
            yield HEARTBEAT
        elif event.name == EventName.TOKEN:
            sent_text = True
            text = event.data["text"]
            logprobs = None
            if with_logprobs:
                logprobs = _legacy_logprobs(event.data.get("logprobs") or [], offset)
            offset += len(text)
            yield chunk(text, logprobs=logprobs)
        elif event.name == EventName.RESET and sent_text:
            yield _error_frame(
                "generation_restarted", "The generation was interrupted and started over."
            )
            break
        elif event.name == EventName.DONE:
            yield chunk("", _finish_reason(event.data.get("finish_reason")))
            if include_usage:
                usage = event.data.get("usage") or {}
                figures = _usage(usage.get("prompt_tokens"), usage.get("completion_tokens"))
                yield _frame({**base, "choices": [], "usage": figures})
            break
        elif event.name == EventName.ERROR:
            error = event.data.get("error") or {}
            yield _error_frame(error.get("code", "model_error"), error.get("message", ""))
            break
        elif event.name == EventName.CANCELLED:
            yield _error_frame("cancelled", "The generation was cancelled.")
            break
    yield DONE_FRAME
