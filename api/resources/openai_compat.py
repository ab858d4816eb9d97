from __future__ import annotations

from api import sse, stream_leases
from api.resources.blueprint import Blueprint
from api.resources.jobs import TOO_MANY_STREAMS, cache_header, cache_mode, idempotency_key
from api.schemas.openai_compat import (
    ChatCompletionChunkEventSchema,
    ChatCompletionRequestSchema,
    ChatCompletionSchema,
    CompletionRequestSchema,
    CompletionSchema,
    ModelListSchema,
)
from api.security import auth_required, current_identity
from api.services import jobs, openai_compat

blp = Blueprint(
    "openai",
    __name__,
    url_prefix="/v1",
    description="OpenAI-compatible API: point an OpenAI client at /v1 with an API key",
)


@blp.route("/chat/completions", methods=["POST"])
@auth_required
@blp.arguments(ChatCompletionRequestSchema)
@blp.response(200, ChatCompletionSchema)
@blp.alt_response(404, description="The model does not exist (code model_not_found)")
@blp.alt_response(429, description=TOO_MANY_STREAMS)
@blp.alt_response(502, description="The model failed")
@blp.alt_response(504, description="No answer within CHAT_WAIT_SECONDS; the job goes on")
# Keyed 200 like @blp.response's, so the stream is added to the JSON body, not put instead.
@blp.doc(
    responses={
        200: {
            "description": "chat.completion, or with stream: true chunk frames",
            "content": {"text/event-stream": {"schema": ChatCompletionChunkEventSchema}},
        }
    }
)
def chat_completions(payload):
    """Create a chat completion (OpenAI's chat.completions)

    Runs on the gateway's pipeline: routing (`auto`, `light`, `heavy` or a model name),
    cache, quotas and usage apply. With `stream: true` the answer comes as
    `chat.completion.chunk` frames ending with `data: [DONE]`; a failure mid-stream is an
    error frame. Errors use OpenAI's shape.
    """
    request = openai_compat.job_request(
        payload, idempotency_key=idempotency_key(), cache=cache_mode()
    )
    if payload["stream"]:
        stream_leases.reserve()  # at the cap, refused before a job is submitted
    job, created = jobs.submit(current_identity(), request)
    headers = {"X-Job-ID": str(job.id), **cache_header(job)}
    if payload["stream"]:
        include_usage = bool((payload.get("stream_options") or {}).get("include_usage"))
        frames = openai_compat.chunks(
            job, sse.answer_events(job.id, fresh=created), include_usage=include_usage
        )
        return sse.event_stream(frames, headers)
    job = jobs.wait_for_answer(job)
    return openai_compat.completion(job), headers


@blp.route("/completions", methods=["POST"])
@auth_required
@blp.arguments(CompletionRequestSchema)
@blp.response(200, CompletionSchema)
@blp.alt_response(404, description="The model does not exist (code model_not_found)")
@blp.alt_response(429, description=TOO_MANY_STREAMS)
@blp.alt_response(502, description="The model failed")
@blp.alt_response(504, description="No answer within CHAT_WAIT_SECONDS; the job goes on")
@blp.doc(
    responses={
        200: {
            "description": "text_completion, or with stream: true its chunks",
            "content": {"text/event-stream": {"schema": ChatCompletionChunkEventSchema}},
        }
    }
)
def completions(payload):
    """Create a completion (OpenAI's legacy completions)

    Served by the chat models: the prompt is sent as the user's message (after the
    gateway's SYSTEM_PROMPT), on the same pipeline as chat completions. One prompt and one
    choice per request; echo, suffix and best_of are refused.
    """
    request = openai_compat.completion_job_request(
        payload, idempotency_key=idempotency_key(), cache=cache_mode()
    )
    if payload["stream"]:
        stream_leases.reserve()  # at the cap, refused before a job is submitted
    job, created = jobs.submit(current_identity(), request)
    headers = {"X-Job-ID": str(job.id), **cache_header(job)}
    if payload["stream"]:
        include_usage = bool((payload.get("stream_options") or {}).get("include_usage"))
        frames = openai_compat.text_chunks(
            job, sse.answer_events(job.id, fresh=created), include_usage=include_usage
        )
        return sse.event_stream(frames, headers)
    job = jobs.wait_for_answer(job)
    return openai_compat.text_completion(job), headers


@blp.route("/models", methods=["GET"])
@auth_required
@blp.response(200, ModelListSchema)
def list_models():
    """The models this gateway serves: auto, the tiers and their configured models"""
    return openai_compat.models()
