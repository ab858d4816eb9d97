from __future__ import annotations

import uuid

import marshmallow as ma
from flask import request

from api import sse
from api.resources.blueprint import Blueprint
from api.schemas.jobs import (
    JobCreateSchema,
    JobEventSchema,
    JobPageSchema,
    JobQuerySchema,
    JobSchema,
)
from api.security import auth_required, current_identity
from api.services import jobs
from core.errors import InvalidInput
from pipeline.streams import valid_event_id

blp = Blueprint("jobs", __name__, url_prefix="/api/jobs", description="Submit-and-poll jobs")

IDEMPOTENCY_HEADER = "Idempotency-Key"
# The OpenAPI descriptions of the per-account caps met by the views that stream or start
# a conversation (a 429 otherwise means the per-minute rate limit).
TOO_MANY_STREAMS = (
    "Rate limited, or your open event streams are at their cap (code too_many_streams)"
)
TOO_MANY_CONVERSATIONS = "Your stored conversations are at their cap (code too_many_conversations)"


def idempotency_key() -> str | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    key = key.strip()
    if not 1 <= len(key) <= 200 or not key.isprintable():
        raise InvalidInput(
            "Idempotency-Key must be 1 to 200 printable characters.",
            details={"headers": {IDEMPOTENCY_HEADER: ["Must be 1 to 200 printable characters."]}},
        )
    return key


def cache_mode() -> str:
    """The client's Cache-Control: no-cache generates anew (and refreshes the cache),
    no-store neither reads nor writes it."""
    if request.cache_control.no_store:
        return "off"
    if request.cache_control.no_cache:
        return "refresh"
    return "use"


def job_request(payload: dict) -> jobs.JobRequest:
    return jobs.JobRequest(**payload, idempotency_key=idempotency_key(), cache=cache_mode())


def cache_header(job) -> dict[str, str]:
    """X-Cache: HIT when the answer came without a generation of its own."""
    return {"X-Cache": "HIT" if job.cached else "MISS"}


def last_event_id() -> str | None:
    value = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    return value if valid_event_id(value) else None


@blp.route("/", methods=["POST"])
@auth_required
@blp.arguments(JobCreateSchema)
@blp.response(202, JobSchema)
@blp.alt_response(404, description="conversation_id names no conversation of yours")
@blp.alt_response(409, description=TOO_MANY_CONVERSATIONS)
def create_job(payload):
    """Submit a chat job; poll it or follow its events

    The classifier routes `model: auto` to the light or heavy tier. Send an
    `Idempotency-Key` header to make retries safe: the same key returns the same job.
    A cached answer makes a job that has already succeeded (`cached: true`, X-Cache: HIT);
    `Cache-Control: no-cache` bypasses the cache.
    """
    job, _created = jobs.submit(current_identity(), job_request(payload))
    return job, cache_header(job)


@blp.route("/", methods=["GET"])
@auth_required
@blp.arguments(JobQuerySchema, location="query", unknown=ma.RAISE)
@blp.response(200, JobPageSchema)
def list_jobs(query):
    """Your jobs, newest first, optionally by status"""
    return jobs.list_page(
        current_identity().user_id, query["page"], query["page_size"], query.get("status")
    )


@blp.route("/<uuid:job_id>", methods=["GET"])
@auth_required
@blp.response(200, JobSchema)
def get_job(job_id: uuid.UUID):
    """A job's status, output, error, usage and timings"""
    return jobs.get(current_identity().user_id, job_id)


@blp.route("/<uuid:job_id>", methods=["DELETE"])
@auth_required
@blp.response(202, JobSchema)
@blp.alt_response(409, description="The job has already ended")
def cancel_job(job_id: uuid.UUID):
    """Cancel a job

    A queued job never runs; a running one stops within a second, keeps its partial
    output and ends `cancelled`.
    """
    return jobs.cancel(current_identity().user_id, job_id)


@blp.route("/<uuid:job_id>/events", methods=["GET"])
@auth_required
@blp.alt_response(429, description=TOO_MANY_STREAMS)
@blp.doc(
    responses={
        "200": {
            "description": "text/event-stream of the job's events (see README)",
            "content": {"text/event-stream": {"schema": JobEventSchema}},
        }
    }
)
def job_events(job_id: uuid.UUID):
    """Follow a job's events as Server-Sent Events

    Honours Last-Event-ID; a late client replays from the start; a finished job's events
    are rebuilt from its stored result once its stream has expired.
    """
    job = jobs.get(current_identity().user_id, job_id)
    return sse.response(job.id, last_event_id())
