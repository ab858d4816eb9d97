"""Jobs: submit (route, persist, enqueue), read, list and cancel — always the owner's."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy.exc import IntegrityError

from api import queue
from api.extensions import db, redis_store
from api.models import Conversation, Job, Message
from api.models.base import utcnow
from api.repositories import conversations as conversations_repo
from api.repositories import jobs as jobs_repo
from api.repositories import messages as messages_repo
from api.repositories.pagination import Page
from api.security import Identity
from api.services import conversations, routing, usage
from api.services.errors import AnswerTimeout, Conflict, NotFound, QueueUnavailable
from api.streams import EventWriter, cancel_key, read_events

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobRequest:
    message: str
    conversation_id: uuid.UUID | None = None
    model: str | None = None
    tools: bool = True
    max_tokens: int | None = None
    temperature: float | None = None
    idempotency_key: str | None = None


def event_writer(job_id: uuid.UUID) -> EventWriter:
    config = current_app.config
    return EventWriter(
        redis_store.client,
        config["REDIS_KEY_PREFIX"],
        str(job_id),
        maxlen=config["STREAM_MAXLEN"],
        ttl=config["STREAM_TTL_SECONDS"],
    )


def submit(identity: Identity, request: JobRequest) -> tuple[Job, bool]:
    """Create and enqueue a job; (job, created). The same idempotency key returns the same job."""
    user_id = identity.user_id
    if request.idempotency_key:
        existing = jobs_repo.get_by_idempotency_key(user_id, request.idempotency_key)
        if existing is not None:
            return existing, False

    conversation: Conversation | None = None
    history: list[dict[str, str]] = []
    if request.conversation_id is not None:
        conversation = conversations.get(user_id, request.conversation_id)
        history = conversations.context(conversation.id, current_app.config["CONTEXT_BUDGET_CHARS"])
    # Routing may refuse the model (422) before anything is written.
    decision = routing.choose(request.model, request.message, history)
    usage.check_submission_allowed(user_id)

    if conversation is None:
        conversation = conversations_repo.add(
            Conversation(user_id=user_id, title=conversations.title_from(request.message))
        )
    user_message = messages_repo.add(
        Message(conversation_id=conversation.id, role="user", content=request.message)
    )
    conversation.updated_at = user_message.created_at
    params: dict[str, Any] = {
        "tools": request.tools,
        "max_tokens": request.max_tokens or current_app.config["DEFAULT_MAX_TOKENS"],
        "temperature": request.temperature,
    }
    job = Job(
        user_id=user_id,
        api_key_id=identity.api_key_id,
        conversation_id=conversation.id,
        status="queued",
        tier=decision.tier,
        model=decision.model,
        route_score=decision.score,
        route_reason=decision.reason,
        input={
            "messages": [*history, {"role": "user", "content": request.message}],
            "params": params,
        },
        idempotency_key=request.idempotency_key,
        user_message_id=user_message.id,
    )
    try:
        jobs_repo.add(job)
        db.session.commit()
    except IntegrityError:
        # The same idempotency key raced in from a parallel request: that one wins.
        db.session.rollback()
        existing = jobs_repo.get_by_idempotency_key(user_id, request.idempotency_key or "")
        if existing is None:
            raise
        return existing, False

    try:
        queue.enqueue_job(job.id, job.tier)
    except Exception as exc:
        log.error("enqueue failed for job %s: %s", job.id, exc.__class__.__name__)
        finish(
            job,
            "failed",
            error_code="queue_unavailable",
            error_message="The job queue is unavailable.",
        )
        raise QueueUnavailable("The job queue is unavailable; retry shortly.") from exc
    return job, True


def finish(job: Job, status: str, **fields: Any) -> None:
    """End a job with `status` and its usage row, in one commit (API and worker alike)."""
    job.status = status
    job.finished_at = utcnow()
    for name, value in fields.items():
        setattr(job, name, value)
    usage.record_job(job)
    db.session.commit()


def get(user_id: uuid.UUID, job_id: uuid.UUID) -> Job:
    job = jobs_repo.get_for_user(user_id, job_id)
    if job is None:
        raise NotFound("Job not found.")
    return job


def list_page(user_id: uuid.UUID, page: int, page_size: int, status: str | None) -> Page:
    return jobs_repo.list_page_for_user(user_id, page, page_size, status=status)


def cancel(user_id: uuid.UUID, job_id: uuid.UUID) -> Job:
    """Cancel a job: a queued one never runs, a running one stops within a second."""
    job = get(user_id, job_id)
    if job.is_terminal:
        raise Conflict(f"The job has already ended ({job.status}).")
    config = current_app.config
    # The worker polls this flag between tokens.
    redis_store.client.set(
        cancel_key(config["REDIS_KEY_PREFIX"], str(job.id)), "1", ex=config["JOB_TIME_LIMIT"] * 2
    )
    if jobs_repo.cancel_if_queued(job.id, utcnow()):
        db.session.refresh(job)
        usage.record_job(job)
        db.session.commit()
        event_writer(job.id).emit("cancelled", {"job_id": str(job.id), "partial": False})
    db.session.refresh(job)
    return job


def wait_until_ended(job: Job) -> None:
    """Follow the job's stream until its terminal event; 504 past CHAT_WAIT_SECONDS."""
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
        if event is None and get(job.user_id, job.id).is_terminal:
            return  # ended without a stream (e.g. it could not be enqueued)
