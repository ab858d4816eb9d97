from __future__ import annotations

from api import sse, stream_leases
from api.resources.blueprint import Blueprint
from api.resources.jobs import TOO_MANY_STREAMS, cache_header, cache_mode
from api.schemas.responses import (
    ResponseCreateSchema,
    ResponseEventSchema,
    ResponseObjectSchema,
    ResponseQuerySchema,
)
from api.security import auth_required, current_identity
from api.services import jobs, responses

blp = Blueprint(
    "responses",
    __name__,
    url_prefix="/v1/responses",
    description="OpenAI's Responses API on the job pipeline: background, poll, resume, cancel",
)

STREAM_DOC = {
    200: {
        "description": "The response object, or with stream: true its events",
        "content": {"text/event-stream": {"schema": ResponseEventSchema}},
    }
}


def _stream(job, after: int | None = None):
    # A resumed stream (after a sequence number) is read from its start too, and
    # filtered: OpenAI's sequence numbers count every event.
    events = sse.answer_events(job.id) if after is None else sse.job_events(job.id, None)
    frames = responses.sse(job, events, after=after)
    return sse.event_stream(frames, {"X-Job-ID": str(job.id), **cache_header(job)})


@blp.route("", methods=["POST"])
@auth_required
@blp.arguments(ResponseCreateSchema)
@blp.response(200, ResponseObjectSchema)
@blp.alt_response(404, description="The model, or the previous response, does not exist")
@blp.alt_response(429, description=TOO_MANY_STREAMS)
@blp.alt_response(502, description="The model failed (not in background)")
@blp.alt_response(504, description="No answer within CHAT_WAIT_SECONDS; the response goes on")
@blp.doc(responses=STREAM_DOC)
def create(payload):
    """Create a response (OpenAI's responses.create)

    Runs as a job: routing, cache, quotas and usage apply. With `background: true` it
    answers at once (status `queued`); poll `GET /v1/responses/{id}`, stream it with
    `?stream=true` (resuming with `starting_after`), or cancel it. With `stream: true`
    the events come as OpenAI's (`response.created`, `response.output_text.delta`, ...,
    `response.completed`), each with its `sequence_number`.
    """
    if payload["stream"]:
        stream_leases.reserve()  # at the cap, refused before a job is submitted
    job = responses.create(current_identity(), payload, cache=cache_mode())
    if payload["stream"]:
        return _stream(job)
    if not payload["background"]:
        job = jobs.wait_for_answer(job)
    return responses.response_object(job), {"X-Job-ID": str(job.id), **cache_header(job)}


@blp.route("/<string:response_id>", methods=["GET"])
@auth_required
@blp.arguments(ResponseQuerySchema, location="query")
@blp.response(200, ResponseObjectSchema)
@blp.alt_response(404, description="No such response of yours")
@blp.alt_response(429, description=TOO_MANY_STREAMS)
@blp.doc(responses=STREAM_DOC)
def get(query, response_id: str):
    """Retrieve a response; with `stream=true` its events (after `starting_after`)"""
    job = responses.get(current_identity().user_id, response_id)
    if query["stream"]:
        return _stream(job, query["starting_after"])
    return responses.response_object(job)


@blp.route("/<string:response_id>/cancel", methods=["POST"])
@auth_required
@blp.response(200, ResponseObjectSchema)
@blp.alt_response(400, description="Not a background response")
@blp.alt_response(404, description="No such response of yours")
@blp.alt_response(409, description="The response has already ended")
def cancel(response_id: str):
    """Cancel a background response; it ends `cancelled` with the text so far"""
    return responses.response_object(responses.cancel(current_identity().user_id, response_id))
