from __future__ import annotations

from api import sse, stream_leases
from api.resources.blueprint import Blueprint
from api.resources.jobs import TOO_MANY_CONVERSATIONS, TOO_MANY_STREAMS, cache_header, job_request
from api.schemas.jobs import ChatResponseSchema, JobCreateSchema, JobEventSchema
from api.security import auth_required, current_identity
from api.services import jobs

blp = Blueprint("chat", __name__, url_prefix="/api/chat", description="Chat")


@blp.route("/", methods=["POST"])
@auth_required
@blp.arguments(JobCreateSchema)
@blp.response(200, ChatResponseSchema)
@blp.alt_response(404, description="conversation_id names no conversation of yours")
@blp.alt_response(409, description=TOO_MANY_CONVERSATIONS)
@blp.alt_response(502, description="The model failed; the error carries the job id")
@blp.alt_response(504, description="No answer within CHAT_WAIT_SECONDS; the job goes on")
def chat(payload):
    """Send a message and wait for the answer

    A cached answer comes at once (X-Cache: HIT); `Cache-Control: no-cache` asks for a
    fresh generation.
    """
    job, _created = jobs.submit(current_identity(), job_request(payload))
    job = jobs.wait_for_answer(job)
    return job, cache_header(job)


@blp.route("/stream", methods=["POST"])
@auth_required
@blp.arguments(JobCreateSchema)
@blp.alt_response(404, description="conversation_id names no conversation of yours")
@blp.alt_response(409, description=TOO_MANY_CONVERSATIONS)
@blp.alt_response(429, description=TOO_MANY_STREAMS)
@blp.doc(
    responses={
        "200": {
            "description": "text/event-stream of the new job's events",
            "content": {"text/event-stream": {"schema": JobEventSchema}},
        }
    }
)
def chat_stream(payload):
    """Send a message and receive the answer as Server-Sent Events"""
    stream_leases.reserve()  # at the cap, refused before a job is submitted
    job, created = jobs.submit(current_identity(), job_request(payload))
    headers = {"X-Job-ID": str(job.id), **cache_header(job)}
    return sse.response(job.id, None, fresh=created, headers=headers)
