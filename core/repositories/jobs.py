from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select, update

from core.db import db
from core.models import Job
from core.repositories.pagination import Page, paginate
from core.statuses import ACTIVE_STATUSES, JobStatus


def add(job: Job) -> Job:
    # Written at the commit's flush with everything else: its id is known already.
    db.session.add(job)
    return job


def get(job_id: uuid.UUID) -> Job | None:
    return db.session.get(Job, job_id)


def get_for_user(user_id: uuid.UUID, job_id: uuid.UUID) -> Job | None:
    return db.session.scalar(select(Job).where(Job.id == job_id, Job.user_id == user_id))


def get_by_idempotency_key(user_id: uuid.UUID, key: str) -> Job | None:
    return db.session.scalar(select(Job).where(Job.user_id == user_id, Job.idempotency_key == key))


def list_page_for_user(
    user_id: uuid.UUID, page: int, page_size: int, *, status: str | None = None
) -> Page:
    query = select(Job).where(Job.user_id == user_id).order_by(Job.created_at.desc(), Job.id)
    if status:
        query = query.where(Job.status == status)
    return paginate(query, page, page_size)


def cancel_if_queued(job_id: uuid.UUID, when: datetime) -> bool:
    """queued → cancelled, atomically: False when a worker claimed it first."""
    result = db.session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.QUEUED)
        .values(status=JobStatus.CANCELLED, finished_at=when)
        .returning(Job.id)
    )
    return result.first() is not None


def claim(job_id: uuid.UUID, when: datetime) -> Job | None:
    """Mark a job running for a new attempt and load it, in one statement; None if it has
    ended (or does not exist). Its `attempts` is the number of this attempt.

    A job still `running` is claimed too: that is a redelivery after its worker died.
    """
    statement = (
        update(Job)
        .where(Job.id == job_id, Job.status.in_(ACTIVE_STATUSES))
        .values(
            status=JobStatus.RUNNING,
            attempts=Job.attempts + 1,
            started_at=func.coalesce(Job.started_at, when),
            first_token_at=None,
        )
        .returning(Job)
    )
    # populate_existing: a Job already in the session takes the row as now written.
    return db.session.scalar(statement, execution_options={"populate_existing": True})


def status_of(job_id: uuid.UUID) -> str | None:
    return db.session.scalar(select(Job.status).where(Job.id == job_id))


def count_in_flight(user_id: uuid.UUID) -> int:
    """The user's interactive jobs queued or running (batch requests wait their turn)."""
    query = select(func.count()).where(
        Job.user_id == user_id, Job.status.in_(ACTIVE_STATUSES), Job.batch_id.is_(None)
    )
    return db.session.scalar(query) or 0


def waiting_follower_ids(leader_id: uuid.UUID) -> list[uuid.UUID]:
    query = select(Job.id).where(Job.leader_job_id == leader_id, Job.status == JobStatus.QUEUED)
    return list(db.session.scalars(query.order_by(Job.created_at)))


def lock_waiting_follower(job_id: uuid.UUID, leader_id: uuid.UUID) -> Job | None:
    """The follower, row-locked, if it still waits for `leader_id`; else None."""
    query = (
        select(Job)
        .where(Job.id == job_id, Job.leader_job_id == leader_id, Job.status == JobStatus.QUEUED)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return db.session.scalar(query)


def count_in_flight_by_tier() -> dict[tuple[str, str], int]:
    """(tier, status) → jobs queued or running now, across all users."""
    query = (
        select(Job.tier, Job.status, func.count())
        .where(Job.status.in_(ACTIVE_STATUSES))
        .group_by(Job.tier, Job.status)
    )
    return {(tier, status): count for tier, status, count in db.session.execute(query)}


def queued_without_leader(created_before: datetime, limit: int) -> list[Job]:
    """Queued jobs that wait for a queue message (not for a leader's answer), oldest first."""
    query = (
        select(Job)
        .where(
            Job.status == JobStatus.QUEUED,
            Job.leader_job_id.is_(None),
            Job.created_at < created_before,
        )
        .order_by(Job.created_at)
        .limit(limit)
    )
    return list(db.session.scalars(query))


def running_jobs(limit: int) -> list[Job]:
    query = select(Job).where(Job.status == JobStatus.RUNNING).order_by(Job.started_at).limit(limit)
    return list(db.session.scalars(query))
