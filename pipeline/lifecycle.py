"""A job's life after it is written: enqueue, claim, finish, cancel.

The API (submit, cancel, a cached answer) and the worker (claim, finish) call the same
functions, so a job ends the same way wherever it ends: its row and usage row in one
commit, then its answer cached, its terminal event written, its batch and its followers
settled.

    queued ──claim──▶ running ──finish──▶ succeeded | failed | cancelled
       └──────── cancel (before any worker) ─────────▶ cancelled
    running ──claim again (its worker died)──▶ running, attempt + 1, `reset` event
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from typing import Any

from config.settings import get_settings
from core.db import db
from core.errors import QueueUnavailable
from core.models import Job
from core.models.base import utcnow
from core.redis import redis_store
from core.repositories import jobs as jobs_repo
from core.statuses import JobStatus
from pipeline import batch_progress, events, generations, outcomes, queue, response_cache
from pipeline.streams import cancel_key, enqueued_key, writer_for

log = logging.getLogger(__name__)


def enqueue(job: Job) -> None:
    """Put a written job on its tier's queue; if the queue is down, the job fails
    (queue_unavailable) and QueueUnavailable is raised."""
    try:
        queue.enqueue_job(job.id, job.tier)
    except Exception as exc:
        log.error("enqueue failed for job %s: %s", job.id, exc.__class__.__name__)
        finish(
            job,
            JobStatus.FAILED,
            error_code="queue_unavailable",
            error_message="The job queue is unavailable.",
        )
        raise QueueUnavailable("The job queue is unavailable; retry shortly.") from exc


def start(job: Job, answer: response_cache.CachedAnswer | None, *, share: bool) -> None:
    """Set a just-written job going: a cached answer is replayed on its stream; else, with
    `share`, it follows an identical job generating now (pipeline/generations.py); else it
    is enqueued (QueueUnavailable when the queue is down)."""
    if answer is not None:  # nothing to enqueue: the answer is already there
        generations.publish_cached(job, answer)
        return
    leader_id = None
    if share and job.cache_key:
        leader_id = response_cache.join_flight(job.cache_key, job.id)
    if leader_id is None:
        enqueue(job)
        return
    to_enqueue = generations.follow(job, leader_id)
    if to_enqueue is not None:
        enqueue(to_enqueue)


def claim(job_id: uuid.UUID) -> Job | None:
    """Start a worker's attempt at a job: the job, marked running, with `attempts` the
    number of this attempt; None when it has ended (or never existed).

    Claimed and loaded in one statement. No transaction stays open while the model
    generates (minutes): it would hold locks that block migrations and table maintenance,
    and die with a database restart. The job, fully loaded, is detached until finish().
    """
    job = jobs_repo.claim(job_id, utcnow())
    if job is not None:
        db.session.expunge(job)
    db.session.commit()
    return job


def finish(
    job: Job,
    status: JobStatus,
    *,
    event: events.Draft | None = None,
    chunks: generations.Chunks | None = None,
    overhead: dict[str, float] | None = None,
    **fields: Any,
) -> None:
    """End a job with `status` and its usage row, in one commit (API and worker alike).

    `event` is the job's terminal event for its stream; `chunks` are the answer's tokens
    as streamed, kept in the cache for replay; `overhead` the worker's stages of
    api/overhead.py, for the metrics.
    """
    db.session.add(job)  # a worker's job is back from its detachment
    job.status = status
    job.finished_at = utcnow()
    for name, value in fields.items():
        setattr(job, name, value)
    outcomes.add_usage_row(job)
    db.session.commit()
    _after_end(job, event, chunks, overhead)


def cancel(job: Job) -> None:
    """Cancel a job that has not ended: a queued one never runs (it ends here), a running
    one is stopped by its worker within a second (worker/stopping.py)."""
    settings = get_settings()
    redis_store.client.set(
        cancel_key(settings.redis.key_prefix, str(job.id)), "1", ex=settings.queue.time_limit * 2
    )
    if jobs_repo.cancel_if_queued(job.id, utcnow()):
        db.session.refresh(job)
        outcomes.add_usage_row(job)
        db.session.commit()
        _after_end(job, events.cancelled(job.id, partial=False))
    db.session.refresh(job)


def _after_end(
    job: Job,
    event: events.Draft | None,
    chunks: generations.Chunks | None = None,
    overhead: dict[str, float] | None = None,
) -> None:
    """Once a job's end is committed: cache its answer, announce the end, settle its
    batch and its followers."""
    answer = generations.cache_answer(job, chunks)  # before the end is announced
    if event is not None:
        writer_for(job.id).emit(event)
    redis_store.client.delete(enqueued_key(get_settings().redis.key_prefix, str(job.id)))
    outcomes.record_metrics(job, overhead)
    if job.batch_id is not None:
        batch_progress.settle(job.batch_id)
    for follower in generations.release_followers(job, answer):
        # If the queue is down the follower is failed with queue_unavailable, as any job.
        with contextlib.suppress(QueueUnavailable):
            enqueue(follower)
