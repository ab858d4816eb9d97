from __future__ import annotations

import time

from flask import current_app
from flask_smorest import Blueprint

from api import sse
from api.extensions import db, redis_store
from api.resources.jobs import job_request
from api.schemas.jobs import ChatResponseSchema, JobCreateSchema
from api.security import auth_required, current_identity
from api.services import jobs
from api.services.errors import ServiceError
from api.streams import read_events

blp = Blueprint("chat", __name__, url_prefix="/api/chat", description="Chat")


class AnswerTimeout(ServiceError):
    status = 504
    code = "answer_timeout"


class GenerationFailed(ServiceError):
    status = 502
    code = "generation_failed"


def wait_until_ended(job) -> None:
    """Follow the job's stream until its terminal event, or 504 past CHAT_WAIT_SECONDS."""
    config = current_app.config
    deadline = time.monotonic() + config["CHAT_WAIT_SECONDS"]
    db.session.close()  # no connection held while waiting
    events = read_events(redis_store.client, config["REDIS_KEY_PREFIX"], str(job.id), block_ms=1000)
    for event in events:
        if event is not None and event.is_terminal:
            return
        if time.monotonic() >= deadline:
            raise AnswerTimeout(
                "No answer within the wait; the job goes on: poll or follow it.",
                details={"job_id": str(job.id), "links": {"self": f"/api/jobs/{job.id}"}},
            )
        if event is None and jobs.get(job.user_id, job.id).is_terminal:
            return  # ended without a stream (e.g. it could not be enqueued)


@blp.route("/", methods=["POST"])
@auth_required
@blp.arguments(JobCreateSchema)
@blp.response(200, ChatResponseSchema)
@blp.alt_response(502, description="The model failed; the error carries the job id")
@blp.alt_response(504, description="No answer within CHAT_WAIT_SECONDS; the job goes on")
def chat(payload):
    """Send a message and wait for the answer"""
    identity = current_identity()
    job, _created = jobs.submit(identity, job_request(payload))
    if not job.is_terminal:
        wait_until_ended(job)
    job = jobs.get(identity.user_id, job.id)
    if job.status != "succeeded":
        raise GenerationFailed(
            job.error_message or f"The job ended {job.status}.",
            code=job.error_code or f"job_{job.status}",
            details={"job_id": str(job.id), "status": job.status},
        )
    return job


@blp.route("/stream", methods=["POST"])
@auth_required
@blp.arguments(JobCreateSchema)
@blp.doc(responses={"200": {"description": "text/event-stream of the new job's events"}})
def chat_stream(payload):
    """Send a message and receive the answer as Server-Sent Events"""
    job, _created = jobs.submit(current_identity(), job_request(payload))
    return sse.response(job.id, None, headers={"X-Job-ID": str(job.id)})
