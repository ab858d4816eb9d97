"""What a job leaves behind when it ends: its answer message, its usage row, its metrics."""

from __future__ import annotations

import uuid

from core import metrics_store
from core.db import db
from core.models import Conversation, Job, Message, UsageRecord
from core.models.base import elapsed_ms
from core.repositories import messages as messages_repo
from core.repositories import usage as usage_repo


def add_answer_message(
    job: Job,
    text: str,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    conversation: Conversation | None = None,
) -> uuid.UUID | None:
    """Store the answer in the job's conversation, if it still exists; the message id.

    `conversation` is the job's conversation when the caller has it at hand (it may be
    new, not yet written).
    """
    if job.conversation_id is None:
        return None
    if conversation is None:
        conversation = db.session.get(Conversation, job.conversation_id)
    if conversation is None:
        return None
    message = messages_repo.add(
        Message(
            conversation_id=conversation.id,
            role="assistant",
            content=text,
            model=job.model,
            tier=job.tier,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )
    )
    conversation.updated_at = message.created_at
    return message.id


def add_usage_row(job: Job) -> None:
    """Add the usage row of a job that has just ended (the caller commits)."""
    usage_repo.add(
        UsageRecord(
            job_id=job.id,
            user_id=job.user_id,
            api_key_id=job.api_key_id,
            model=job.model,
            tier=job.tier,
            status=job.status,
            prompt_tokens=job.prompt_tokens or 0,
            completion_tokens=job.completion_tokens or 0,
            queue_wait_ms=job.queue_wait_ms,
            ttft_ms=job.ttft_ms,
            duration_ms=job.duration_ms,
            cached=job.cached,
        )
    )


def record_metrics(job: Job, overhead: dict[str, float] | None = None) -> None:
    """Count a job that has just ended in the metrics (API and workers alike);
    `overhead`: the worker's stages of api/overhead.py, in milliseconds."""
    generating_ms = elapsed_ms(job.first_token_at, job.finished_at)
    tokens_per_second = None
    if not job.cached and job.completion_tokens and generating_ms:
        tokens_per_second = job.completion_tokens / (generating_ms / 1000)
    metrics_store.record_job(
        tier=job.tier,
        model=job.model,
        status=job.status,
        cached=job.cached,
        prompt_tokens=job.prompt_tokens or 0,
        completion_tokens=job.completion_tokens or 0,
        queue_wait_ms=None if job.cached else job.queue_wait_ms,
        ttft_ms=None if job.cached else job.ttft_ms,
        tokens_per_second=tokens_per_second,
        overhead=overhead,
    )
