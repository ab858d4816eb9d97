"""The reconciler: puts back on their queue the jobs that nothing is going to run.

PostgreSQL is the record of every job; Redis holds their queue messages and locks. When
Redis loses its data (a restart without persistence) queued jobs lose their messages, and
when a worker dies its running jobs wait for the broker's visibility timeout. Every
worker process runs a pass every RECONCILE_INTERVAL_SECONDS (one process at a time) and
re-enqueues:

- queued jobs, older than a grace period, whose enqueued marker is gone with the data;
- running jobs whose lock (renewed by a live worker every JOB_LOCK_TTL / 3) has been
  missing for longer than JOB_LOCK_TTL.

A job enqueued twice is harmless: a delivery of an ended job is skipped, and one of a
job another worker holds waits for its lock (worker.tasks).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from flask import Flask

from config.settings import Settings, get_settings
from core.db import db
from core.models import Job
from core.models.base import utcnow
from core.redis import redis_store
from core.repositories import jobs as jobs_repo
from pipeline import queue
from pipeline.streams import enqueued_key, lock_key

log = logging.getLogger(__name__)

# Jobs looked at per pass and state; the rest wait for the next pass.
BATCH_LIMIT = 1000


@dataclass
class Pass:
    queued: int = 0
    running: int = 0


def _grace_seconds(settings: Settings) -> int:
    # The API commits a job before it enqueues it (a large batch takes seconds).
    return max(2 * settings.queue.reconcile_interval_seconds, 10)


def reconcile_once() -> Pass:
    """One pass over queued and running jobs; how many of each were enqueued again."""
    settings = get_settings()
    client, prefix = redis_store.client, settings.redis.key_prefix
    done = Pass()
    cutoff = utcnow() - timedelta(seconds=_grace_seconds(settings))
    waiting = jobs_repo.queued_without_leader(cutoff, BATCH_LIMIT)
    if waiting:
        markers = client.mget([enqueued_key(prefix, str(job.id)) for job in waiting])
        for job, marker in zip(waiting, markers, strict=True):
            if marker is None:
                _requeue(job, "queued without a queue message")
                done.queued += 1
    running = jobs_repo.running_jobs(BATCH_LIMIT)
    done.running = _requeue_abandoned(running)
    db.session.remove()
    return done


def _requeue_abandoned(running: list[Job]) -> int:
    """Re-enqueue running jobs whose lock has been missing for longer than its TTL."""
    settings = get_settings()
    client, prefix = redis_store.client, settings.redis.key_prefix
    # When each running job was first seen without its lock (epoch seconds).
    suspects_key = f"{prefix}reconciler:lockless"
    suspects = client.hgetall(suspects_key)
    locks = client.mget([lock_key(prefix, str(job.id)) for job in running]) if running else []
    now, ttl = time.time(), settings.queue.lock_ttl
    requeued, keep = 0, {}
    for job, lock in zip(running, locks, strict=True):
        if lock is not None:
            continue
        job_id = str(job.id)
        first_seen = float(suspects.get(job_id, now))
        if now - first_seen > ttl:
            _requeue(job, "running without a live worker")
            requeued += 1
        else:
            keep[job_id] = first_seen
    pipe = client.pipeline(transaction=True)
    pipe.delete(suspects_key)
    if keep:
        pipe.hset(suspects_key, mapping=keep)
    pipe.execute()
    return requeued


def _requeue(job: Job, reason: str) -> None:
    priority = queue.BATCH_PRIORITY if job.batch_id is not None else None
    queue.enqueue_job(job.id, job.tier, priority=priority)
    log.warning(
        "job %s re-enqueued: %s",
        job.id,
        reason,
        extra={"job_id": str(job.id), "tier": job.tier, "status": job.status},
    )


class Reconciler:
    """Runs reconcile_once every RECONCILE_INTERVAL_SECONDS in a daemon thread."""

    def __init__(self, app: Flask, name: str):
        self._app, self._name = app, name
        self._stop = threading.Event()
        self._interval = get_settings(app).queue.reconcile_interval_seconds

    def start(self) -> None:
        if self._interval > 0:
            threading.Thread(target=self._loop, daemon=True, name="reconciler").start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            with self._app.app_context():
                try:
                    self._maybe_pass()
                except Exception as exc:  # Redis or PostgreSQL away: try again next time
                    log.warning("reconciler pass failed: %s", exc.__class__.__name__)
                    db.session.remove()

    def _maybe_pass(self) -> None:
        prefix = get_settings(self._app).redis.key_prefix
        # One pass per interval across all worker processes.
        turn_ms = max(self._interval * 1000 - 500, 500)
        turn = redis_store.client.set(f"{prefix}reconciler:turn", self._name, nx=True, px=turn_ms)
        if turn:
            done = reconcile_once()
            if done.queued or done.running:
                log.warning("re-enqueued %s queued and %s running jobs", done.queued, done.running)
