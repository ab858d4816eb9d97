"""Celery tasks, one name per tier so that routing by name puts each on its queue."""

from __future__ import annotations

from celery import Task, shared_task
from sqlalchemy.exc import OperationalError

from config.logging_setup import request_id_var
from config.settings import get_settings
from core.db import db
from core.statuses import Tier
from pipeline.queue import TASK_BY_TIER
from worker.runner import JobBusy, run_job

# How long a job whose database is away waits before its next try (as long as it takes).
DATABASE_RETRY_SECONDS = 5


def _run(task: Task, job_id: str, queue: str, request_id: str | None) -> None:
    # The API request's id follows the job, so its worker log lines can be found with it.
    request_id_var.set(request_id or f"job-{job_id}")
    try:
        run_job(job_id, queue=queue, hostname=task.request.hostname)
    except JobBusy as exc:
        # Delivered twice while its first worker is alive: look again once that lock lapses.
        raise task.retry(countdown=get_settings().queue.lock_ttl, max_retries=20) from exc
    except OperationalError as exc:
        # PostgreSQL is unreachable. A failed task is acknowledged and its message gone, so
        # the job waits for the database in a new message instead of being dropped.
        db.session.remove()
        raise task.retry(countdown=DATABASE_RETRY_SECONDS, max_retries=None) from exc
    finally:
        request_id_var.set(None)


# The queue a tier's task is routed to has the tier's name (pipeline/queue.py).
@shared_task(name=TASK_BY_TIER[Tier.LIGHT], bind=True, ignore_result=True)
def run_light(self, job_id: str, request_id: str | None = None) -> None:
    _run(self, job_id, Tier.LIGHT, request_id)


@shared_task(name=TASK_BY_TIER[Tier.HEAVY], bind=True, ignore_result=True)
def run_heavy(self, job_id: str, request_id: str | None = None) -> None:
    _run(self, job_id, Tier.HEAVY, request_id)
