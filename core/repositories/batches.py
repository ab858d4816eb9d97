from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select, update

from core.db import db
from core.models import Batch, Job
from core.models.batch import ENDED_BATCH_STATUSES
from core.repositories.pagination import Page, paginate
from core.statuses import ACTIVE_STATUSES, TERMINAL_STATUSES, JobStatus


def add(batch: Batch) -> Batch:
    db.session.add(batch)
    db.session.flush()
    return batch


def get_for_user(user_id: uuid.UUID, batch_id: uuid.UUID) -> Batch | None:
    return db.session.scalar(select(Batch).where(Batch.id == batch_id, Batch.user_id == user_id))


def list_page_for_user(user_id: uuid.UUID, page: int, page_size: int) -> Page:
    query = (
        select(Batch).where(Batch.user_id == user_id).order_by(Batch.created_at.desc(), Batch.id)
    )
    return paginate(query, page, page_size)


def counts_for_user(user_id: uuid.UUID) -> tuple[int, int]:
    """(stored, active): the user's batches, and those of them not yet ended."""
    active = Batch.status.not_in(ENDED_BATCH_STATUSES)
    query = select(func.count(), func.count().filter(active)).where(Batch.user_id == user_id)
    stored, active_count = db.session.execute(query).one()
    return stored, active_count


def delete(batch: Batch) -> None:
    """Delete a batch; PostgreSQL deletes its jobs with it (usage rows stay)."""
    db.session.delete(batch)


def lock(batch_id: uuid.UUID) -> Batch | None:
    query = (
        select(Batch)
        .where(Batch.id == batch_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return db.session.scalar(query)


def job_counts(batch_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, int]]:
    """batch id → job status → jobs, for all the batches in one query."""
    if not batch_ids:
        return {}
    query = (
        select(Job.batch_id, Job.status, func.count())
        .where(Job.batch_id.in_(batch_ids))
        .group_by(Job.batch_id, Job.status)
    )
    counts: dict[uuid.UUID, dict[str, int]] = {}
    for batch_id, status, count in db.session.execute(query):
        counts.setdefault(batch_id, {})[status] = count
    return counts


def in_flight(batch_id: uuid.UUID) -> bool:
    query = select(Job.id).where(Job.batch_id == batch_id, Job.status.in_(ACTIVE_STATUSES))
    return db.session.scalar(query.limit(1)) is not None


def _end_queued(batch_id: uuid.UUID, **values) -> list[Job]:
    """End every request of the batch that has not started; the jobs, as now stored."""
    ids = db.session.scalars(
        update(Job)
        .where(Job.batch_id == batch_id, Job.status == JobStatus.QUEUED)
        .values(**values)
        .returning(Job.id)
    ).all()
    if not ids:
        return []
    query = select(Job).where(Job.id.in_(ids)).execution_options(populate_existing=True)
    return list(db.session.scalars(query))


def cancel_queued(batch_id: uuid.UUID, when: datetime) -> list[Job]:
    return _end_queued(batch_id, status=JobStatus.CANCELLED, finished_at=when)


def fail_queued(batch_id: uuid.UUID, when: datetime, code: str) -> list[Job]:
    return _end_queued(
        batch_id,
        status=JobStatus.FAILED,
        finished_at=when,
        error_code=code,
        error_message="The job queue was unavailable when the batch was submitted.",
    )


def ended_jobs(batch_id: uuid.UUID):
    query = (
        select(Job)
        .where(Job.batch_id == batch_id, Job.status.in_(TERMINAL_STATUSES))
        .order_by(Job.created_at, Job.custom_id)
        .execution_options(yield_per=500)
    )
    return db.session.scalars(query)
