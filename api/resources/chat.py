from __future__ import annotations

from flask_smorest import Blueprint

from api import sse
from api.resources.jobs import cache_header, job_request
from api.schemas.jobs import ChatResponseSchema, JobCreateSchema
from api.security import auth_required, current_identity
from api.services import jobs
from api.services.errors import GenerationFailed

blp = Blueprint("chat", __name__, url_prefix="/api/chat", description="Chat")


@blp.route("/", methods=["POST"])
@auth_required
@blp.arguments(JobCreateSchema)
@blp.response(200, ChatResponseSchema)
@blp.alt_response(502, description="The model failed; the error carries the job id")
@blp.alt_response(504, description="No answer within CHAT_WAIT_SECONDS; the job goes on")
def chat(payload):
    """Send a message and wait for the answer

    A cached answer comes at once (X-Cache: HIT); `Cache-Control: no-cache` asks for a
    fresh generation.
    """
    identity = current_identity()
    job, _created = jobs.submit(identity, job_request(payload))
    if not job.is_terminal:
        jobs.wait_until_ended(job)
    job = jobs.get(identity.user_id, job.id)
    if job.status != "succeeded":
        raise GenerationFailed(
            job.error_message or f"The job ended {job.status}.",
            code=job.error_code or f"job_{job.status}",
            details={"job_id": str(job.id), "status": job.status},
        )
    return job, cache_header(job)


@blp.route("/stream", methods=["POST"])
@auth_required
@blp.arguments(JobCreateSchema)
@blp.doc(responses={"200": {"description": "text/event-stream of the new job's events"}})
def chat_stream(payload):
    """Send a message and receive the answer as Server-Sent Events"""
    job, _created = jobs.submit(current_identity(), job_request(payload))
    return sse.response(job.id, None, headers={"X-Job-ID": str(job.id), **cache_header(job)})
