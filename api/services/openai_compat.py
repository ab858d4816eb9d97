"""The OpenAI-compatible API on the gateway's own pipeline: requests become jobs, and a
job's events become chat.completion objects or chat.completion.chunk frames.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from api.models import Job
from api.services import jobs, routing
from api.services.errors import NotFound
from api.streams import Event

DONE_FRAME = "data: [DONE]\n\n"
HEARTBEAT = ": ping\n\n"
OWNER = "llm-gateway"


def job_request(payload: dict[str, Any], *, idempotency_key: str | None, cache: str):
    """The job for a chat.completions request; 404 model_not_found like OpenAI's API."""
    model = payload["model"].strip()
    if model not in routing.choices():
        raise NotFound(
            f"The model {model!r} does not exist; GET /v1/models lists the served ones.",
            code="model_not_found",
        )
    turns = [{"role": m["role"], "content": m["content"]} for m in payload["messages"]]
    *history, last = turns
    return jobs.JobRequest(
        message=last["content"],
        history=tuple(history),
        model=model,
        # OpenAI clients bring their own tools; the gateway's web search is not theirs.
        tools=False,
        max_tokens=payload.get("max_completion_tokens") or payload.get("max_tokens"),
        temperature=payload.get("temperature"),
        idempotency_key=idempotency_key,
        cache=cache,
    )


def models() -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": OWNER}
            for name in routing.choices()
        ],
    }


def _finish_reason(reason: str | None) -> str:
    return "length" if reason == "length" else "stop"


def _usage(prompt: int | None, completion: int | None) -> dict[str, int]:
    prompt, completion = prompt or 0, completion or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _identity(job: Job) -> dict[str, Any]:
    return {"id": f"chatcmpl-{job.id.hex}", "created": int(job.created_at.timestamp())}


def completion(job: Job) -> dict[str, Any]:
    """A succeeded job as a chat.completion object."""
    return {
        **_identity(job),
        "object": "chat.completion",
        "model": job.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": job.output or ""},
                "finish_reason": _finish_reason(job.finish_reason),
            }
        ],
        "usage": _usage(job.prompt_tokens, job.completion_tokens),
    }


def _frame(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


def _error_frame(code: str, message: str) -> str:
    return _frame(
        {"error": {"message": message, "type": "server_error", "param": None, "code": code}}
    )


def chunks(job: Job, events: Iterable[Event | None], *, include_usage: bool) -> Iterator[str]:
    """A job's events as chat.completion.chunk frames, ending with `data: [DONE]`.

    A failure is an error frame before [DONE], never a made-up finish_reason.
    """
    base = {**_identity(job), "object": "chat.completion.chunk", "model": job.model}
    if include_usage:
        base["usage"] = None  # as OpenAI: null on every chunk but the last

    def chunk(delta: dict[str, str], finish_reason: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        return _frame({**base, "choices": [choice]})

    yield chunk({"role": "assistant", "content": ""})
    sent_text = False
    for event in events:
        if event is None:
            yield HEARTBEAT
        elif event.name == "token":
            sent_text = True
            yield chunk({"content": event.data["text"]})
        elif event.name == "reset" and sent_text:
            # The job started over on another worker; text already sent cannot be unsent.
            yield _error_frame(
                "generation_restarted", "The generation was interrupted and started over."
            )
            break
        elif event.name == "done":
            yield chunk({}, _finish_reason(event.data.get("finish_reason")))
            if include_usage:
                usage = event.data.get("usage") or {}
                figures = _usage(usage.get("prompt_tokens"), usage.get("completion_tokens"))
                yield _frame({**base, "choices": [], "usage": figures})
            break
        elif event.name == "error":
            error = event.data.get("error") or {}
            yield _error_frame(error.get("code", "model_error"), error.get("message", ""))
            break
        elif event.name == "cancelled":
            yield _error_frame("cancelled", "The generation was cancelled.")
            break
    yield DONE_FRAME
