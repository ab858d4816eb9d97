"""Shared generations: identical requests share one model run, and answers are replayed.

A request whose answer is in the response cache (pipeline/response_cache.py) is answered
at once: its job is written finished and its stream gets the cached events. A request
identical to one being generated right now becomes that job's *follower*: it waits,
unqueued, for its *leader* to end, and is then answered with the leader's answer — or,
when the leader ended without one, enqueued to generate its own.

Nothing here enqueues: the functions say which jobs need a queue, and lifecycle.py puts
them there (so this module and the lifecycle do not import each other).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from core.db import db
from core.models import Conversation, Job
from core.models.base import utcnow
from core.repositories import jobs as jobs_repo
from core.statuses import JobStatus
from pipeline import events, outcomes, response_cache
from pipeline.streams import writer_for


@dataclass(frozen=True)
class Chunks:
    """An answer's pieces as streamed, kept in the cache for replay."""

    texts: list[str]
    logprobs: list[list[dict[str, Any]]] | None = None


def look_up(
    mode: str,
    model: str,
    messages: list[dict[str, Any]],
    params: dict[str, Any],
    user_id: uuid.UUID,
) -> tuple[str | None, response_cache.CachedAnswer | None]:
    """A request's cache key (None when it must not touch the cache) and its cached answer,
    if any. `mode`: use (read and write), refresh (write only) or off (neither)."""
    if mode == "off" or not response_cache.enabled():
        return None, None
    key = response_cache.key_for(model, messages, params, user_id)
    return key, response_cache.lookup(key) if mode == "use" else None


def answer_from_cache(
    job: Job, answer: response_cache.CachedAnswer, conversation: Conversation | None = None
) -> None:
    """Complete a queued job with a cached (or shared) answer; the caller commits.

    `conversation` is the job's conversation when the caller has it at hand (it may be
    new, not yet written).
    """
    now = utcnow()
    job.status = JobStatus.SUCCEEDED
    job.cached = True
    job.output = answer.text
    job.tool_calls = answer.tool_calls
    job.logprobs = answer.logprobs
    job.finish_reason = answer.finish_reason
    job.prompt_tokens = answer.prompt_tokens
    job.completion_tokens = answer.completion_tokens
    job.started_at = job.first_token_at = job.finished_at = now
    job.assistant_message_id = outcomes.add_answer_message(
        job, answer.text, answer.prompt_tokens, answer.completion_tokens, conversation
    )
    outcomes.add_usage_row(job)


def publish_cached(job: Job, answer: response_cache.CachedAnswer) -> None:
    """Write a cached answer to the job's stream as its events, so SSE clients replay it."""
    logprobs = answer.chunk_logprobs or [None] * len(answer.chunks)
    tokens = [
        events.token(chunk, chunk_logprobs)
        for chunk, chunk_logprobs in zip(answer.chunks, logprobs, strict=True)
        if chunk
    ]
    start = events.start(job.id, job.model, job.tier, cached=True)
    # answer_from_cache put the answer's figures on the job: its done is the job's.
    writer_for(job.id).emit_many([start, *tokens, events.done_of(job)])
    outcomes.record_metrics(job)


def follow(job: Job, leader_id: uuid.UUID) -> Job | None:
    """Make `job` wait for the identical job generating now; settle it if that one has
    ended. The job when it must be enqueued after all."""
    job.leader_job_id = leader_id
    db.session.commit()
    leader = jobs_repo.get(leader_id)
    if leader is None or leader.is_terminal:
        # The leader ended before this job was attached: it could not have seen it.
        answer = None
        if leader is not None and leader.status == JobStatus.SUCCEEDED and job.cache_key:
            answer = response_cache.lookup(job.cache_key)
        to_enqueue = settle_follower(job.id, leader_id, answer)
        db.session.refresh(job)
        return to_enqueue
    return None


def settle_follower(
    job_id: uuid.UUID, leader_id: uuid.UUID, answer: response_cache.CachedAnswer | None
) -> Job | None:
    """Answer a follower with its leader's result; when there is none, detach it and
    return it, to be enqueued.

    Both the leader's worker and the follower's own request may get here; the row lock
    lets exactly one of them act.
    """
    follower = jobs_repo.lock_waiting_follower(job_id, leader_id)
    if follower is None:
        db.session.rollback()  # cancelled, or settled by the other side
        return None
    if answer is None:
        follower.leader_job_id = None
        db.session.commit()
        return follower
    answer_from_cache(follower, answer)
    db.session.commit()
    publish_cached(follower, answer)
    return None


def leads(job: Job) -> bool:
    """Whether identical requests may have followed this job (it generated for them)."""
    return job.cache_key is not None and job.leader_job_id is None


def cache_answer(job: Job, chunks: Chunks | None) -> response_cache.CachedAnswer | None:
    """A leader that succeeded: its answer, stored in the cache (before its end is
    announced, so a client that sees the end and asks again finds it there)."""
    if not leads(job) or job.status != JobStatus.SUCCEEDED:
        return None
    answer = response_cache.CachedAnswer(
        chunks=list(chunks.texts) if chunks is not None else [job.output or ""],
        finish_reason=job.finish_reason,
        prompt_tokens=job.prompt_tokens or 0,
        completion_tokens=job.completion_tokens or 0,
        source_job_id=str(job.id),
        tool_calls=job.tool_calls,
        chunk_logprobs=chunks.logprobs if chunks is not None else None,
    )
    response_cache.store(job.cache_key, answer)
    return answer


def release_followers(job: Job, answer: response_cache.CachedAnswer | None) -> list[Job]:
    """A leader has ended: answer its followers with `answer`; those left without one
    (it failed or was cancelled) are returned, to be enqueued."""
    if not leads(job):
        return []
    response_cache.end_flight(job.cache_key, job.id)
    settled = (
        settle_follower(follower_id, job.id, answer)
        for follower_id in jobs_repo.waiting_follower_ids(job.id)
    )
    return [follower for follower in settled if follower is not None]
