"""Batches: many prompts at once, validated whole, run as low-priority jobs, read back as JSONL.

A batch's state lives in PostgreSQL (the batch row and one job per request), so it
survives restarts of the API and of the workers.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import marshmallow as ma

from api import json_body
from api.schemas.batches import BatchItemSchema, BatchLineSchema
from api.services import caps, jobs, openai_compat, routing, usage
from api.services.identity import Identity
from config.settings import get_settings
from core.db import db
from core.errors import Conflict, InvalidBatch, NotFound, ServiceError, TooManyRequests
from core.models import Batch, Job
from core.models.base import utcnow
from core.repositories import batches as batches_repo
from core.repositories.pagination import Page
from core.statuses import ACTIVE_STATUSES, JobStatus
from pipeline import outcomes, queue
from pipeline.batch_progress import settle
from pipeline.events import compact_json

log = logging.getLogger(__name__)

# Bad lines listed in a 400, at most: enough to fix a file, small enough to read.
MAX_REPORTED_LINES = 100
# Retry-After of a batch refused for too many active ones: batches run for minutes.
ACTIVE_BATCH_RETRY_SECONDS = 60


@dataclass(frozen=True)
class BatchRequest:
    custom_id: str
    job: jobs.JobRequest


def _invalid(problems: list[dict[str, Any]], total: int) -> InvalidBatch:
    shown = problems[:MAX_REPORTED_LINES]
    lines = ", ".join(str(problem["line"]) for problem in shown)
    more = f" (and {len(problems) - len(shown)} more)" if len(problems) > len(shown) else ""
    return InvalidBatch(
        f"{len(problems)} of {total} batch requests are invalid (lines {lines}{more}); "
        "nothing was submitted.",
        details={"lines": shown, "invalid": len(problems), "total": total},
    )


def _check_size(count: int) -> None:
    limit = get_settings().limits.batch_max_requests
    if count == 0:
        raise InvalidBatch("A batch needs at least one request.")
    if count > limit:
        raise InvalidBatch(
            f"A batch holds at most {limit} requests; this one has {count}.",
            details={"total": count, "limit": limit},
        )


def _parse(
    entries: list[tuple[int, Any]], schema: ma.Schema, to_job
) -> tuple[list[BatchRequest], list[dict[str, Any]]]:
    """Validate every entry; (requests, problems). Lines count from 1."""
    requests: list[BatchRequest] = []
    problems: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    choices = routing.choices()
    for line, entry in entries:
        try:
            data = schema.load(entry)
        except ma.ValidationError as exc:
            problems.append({"line": line, "errors": exc.messages})
            continue
        custom_id = data["custom_id"]
        if custom_id in seen:
            problems.append(
                {"line": line, "errors": {"custom_id": [f"Repeats line {seen[custom_id]}."]}}
            )
            continue
        seen[custom_id] = line
        try:
            job_request = to_job(data)
        except ServiceError as exc:  # e.g. a model the gateway does not serve
            problems.append({"line": line, "errors": {"model": [exc.message]}})
            continue
        if (job_request.model or "auto") not in choices:
            message = f"Unknown model {job_request.model!r}; one of: {', '.join(choices)}."
            problems.append({"line": line, "errors": {"model": [message]}})
            continue
        requests.append(BatchRequest(custom_id, job_request))
    return requests, problems


def _from_item(data: dict[str, Any]) -> jobs.JobRequest:
    return jobs.JobRequest(
        message=data["message"],
        model=data.get("model"),
        tools=data.get("tools", True),
        max_tokens=data.get("max_tokens"),
        temperature=data.get("temperature"),
    )


def _from_line(data: dict[str, Any]) -> jobs.JobRequest:
    return openai_compat.job_request(data["body"], idempotency_key=None, cache="off")


def parse_items(items: Any) -> list[BatchRequest]:
    """The gateway's JSON form: [{custom_id, message, model?, tools?, max_tokens?}]."""
    _check_size(len(items))
    requests, problems = _parse(list(enumerate(items, 1)), BatchItemSchema(), _from_item)
    if problems:
        raise _invalid(problems, len(items))
    return requests


def parse_jsonl(text: str) -> list[BatchRequest]:
    """OpenAI's batch file: one {custom_id, method, url, body} per line."""
    entries: list[tuple[int, Any]] = []
    problems: list[dict[str, Any]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            entries.append((number, json_body.loads(raw)))
        except ValueError:
            problems.append({"line": number, "errors": {"_line": ["Not valid JSON."]}})
    total = len(entries) + len(problems)
    _check_size(total)
    requests, invalid = _parse(entries, BatchLineSchema(), _from_line)
    problems = sorted(problems + invalid, key=lambda problem: problem["line"])
    if problems:
        raise _invalid(problems, total)
    return requests


def create(
    identity: Identity,
    requests: list[BatchRequest],
    *,
    input_format: str,
    metadata: dict[str, Any] | None = None,
) -> Batch:
    """Store the batch and its jobs in one commit, then enqueue them at batch priority."""
    check_room(identity)
    usage.check_daily_quota(identity.user_id)
    now = utcnow()
    batch = batches_repo.add(
        Batch(
            user_id=identity.user_id,
            api_key_id=identity.api_key_id,
            status="in_progress",
            input_format=input_format,
            total=len(requests),
            meta=metadata,
            in_progress_at=now,
        )
    )
    batch_jobs = []
    for request in requests:
        job_request = request.job
        messages = job_request.model_turns()
        decision = jobs.route(job_request, messages)
        batch_jobs.append(
            jobs.new_job(
                identity,
                decision,
                messages,
                jobs.generation_params(job_request),
                batch_id=batch.id,
                custom_id=request.custom_id,
            )
        )
    db.session.add_all(batch_jobs)
    db.session.commit()
    try:
        for job in batch_jobs:
            queue.enqueue_job(job.id, job.tier, priority=queue.BATCH_PRIORITY)
    except Exception as exc:
        # The jobs stay queued in PostgreSQL; a cancel ends them cleanly.
        log.error("enqueue failed for batch %s: %s", batch.id, exc.__class__.__name__)
        failed = batches_repo.fail_queued(batch.id, utcnow(), "queue_unavailable")
        for job in failed:
            outcomes.add_usage_row(job)
        batch.status, batch.failed_at = "failed", utcnow()
        db.session.commit()
        for job in failed:
            outcomes.record_metrics(job)
    return batch


def check_room(identity: Identity) -> None:
    """409 when the user stores as many batches as their role may, 429 when as many are
    queued or running. The caller inserts the batch in this transaction: the user's row
    stays locked until it commits, so concurrent submissions are counted in turn."""
    stored_cap = caps.limit(identity.user, "STORED_BATCHES")
    active_cap = caps.limit(identity.user, "ACTIVE_BATCHES")
    if not stored_cap and not active_cap:
        return
    caps.lock_account(identity.user_id)
    stored, active = batches_repo.counts_for_user(identity.user_id)
    # Stored first: waiting does not make room there, so it is the answer that helps.
    if stored_cap and stored >= stored_cap:
        raise Conflict(
            f"You have {stored} batches stored (the limit is {stored_cap}); delete ended "
            "batches you no longer need (DELETE /api/batches/<id>, after downloading their "
            "results) to make room.",
            code="too_many_batches",
            details={"stored": stored, "limit": stored_cap},
        )
    if active_cap and active >= active_cap:
        raise TooManyRequests(
            f"You have {active} batches queued or running (the limit is {active_cap}); "
            "submit this one when one of them has ended, or cancel one "
            "(POST /api/batches/<id>/cancel).",
            code="too_many_active_batches",
            details={"active": active, "limit": active_cap},
            headers={"Retry-After": str(ACTIVE_BATCH_RETRY_SECONDS)},
        )


def get(user_id: uuid.UUID, batch_id: uuid.UUID) -> Batch:
    batch = batches_repo.get_for_user(user_id, batch_id)
    if batch is None:
        raise NotFound("Batch not found.")
    return batch


def list_page(user_id: uuid.UUID, page: int, page_size: int) -> Page:
    result = batches_repo.list_page_for_user(user_id, page, page_size)
    _fill_counts(result.items)
    return result


def with_counts(batch: Batch) -> Batch:
    """The batch with `request_counts` filled in from its jobs, as they are now."""
    _fill_counts([batch])
    return batch


def _fill_counts(found: list[Batch]) -> None:
    counts = batches_repo.job_counts([batch.id for batch in found])  # one query for all
    for batch in found:
        by_status = counts.get(batch.id, {})
        batch.request_counts = {
            "total": batch.total,
            "completed": by_status.get(JobStatus.SUCCEEDED, 0),
            "failed": by_status.get(JobStatus.FAILED, 0),
            "cancelled": by_status.get(JobStatus.CANCELLED, 0),
            "pending": sum(by_status.get(status, 0) for status in ACTIVE_STATUSES),
        }


def cancel(user_id: uuid.UUID, batch_id: uuid.UUID) -> Batch:
    """Requests not started never run; running ones finish; results so far stay readable."""
    get(user_id, batch_id)  # 404 unless it is the user's
    # Locked, so a last request ending right now cannot complete it under the cancel.
    batch = batches_repo.lock(batch_id)
    if batch.is_ended:
        db.session.rollback()
        raise Conflict(f"The batch has already ended ({batch.status}).")
    now = utcnow()
    batch.status, batch.cancelling_at = "cancelling", batch.cancelling_at or now
    cancelled = batches_repo.cancel_queued(batch.id, now)
    for job in cancelled:
        outcomes.add_usage_row(job)
    db.session.commit()
    for job in cancelled:
        outcomes.record_metrics(job)
    settle(batch.id)
    db.session.refresh(batch)
    return batch


def delete(user_id: uuid.UUID, batch_id: uuid.UUID) -> None:
    """Delete an ended batch with its requests and results (their usage rows stay)."""
    get(user_id, batch_id)  # 404 unless it is the user's
    batch = batches_repo.lock(batch_id)  # not deleted while a last request completes it
    if batch is None:  # deleted by a parallel request
        db.session.rollback()
        raise NotFound("Batch not found.")
    if not batch.is_ended:
        db.session.rollback()
        raise Conflict(
            f"The batch is {batch.status}; cancel it (POST /api/batches/{batch_id}/cancel) "
            "and delete it once it has ended.",
            details={"status": batch.status},
        )
    batches_repo.delete(batch)
    db.session.commit()


def _result(job: Job) -> dict[str, Any]:
    response = error = None
    if job.status == JobStatus.SUCCEEDED:
        prompt, completion = job.prompt_tokens or 0, job.completion_tokens or 0
        response = {
            "content": job.output or "",
            "model": job.model,
            "tier": job.tier,
            "finish_reason": job.finish_reason,
            **({"tool_calls": job.tool_calls} if job.tool_calls else {}),
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }
    else:
        code = job.error_code or ("cancelled" if job.status == JobStatus.CANCELLED else "failed")
        error = {"code": code, "message": job.error_message or f"The request was {job.status}."}
    return {
        "id": f"batch_req_{job.id.hex}",
        "custom_id": job.custom_id,
        "status": job.status,
        "response": response,
        "error": error,
    }


def results(batch: Batch) -> Iterator[str]:
    """One JSON line per ended request, in submission order."""
    for job in batches_repo.ended_jobs(batch.id):
        yield compact_json(_result(job)) + "\n"
