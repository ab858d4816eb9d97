"""The job queue: task names, routing, the Celery app, and putting a job on its queue.

The Celery app is built from the Flask app (Flask's documented pattern). The API only
sends tasks by name; the worker package registers the task bodies under the same names
on this same app, so gunicorn never imports the worker (nor LangGraph).
"""

from __future__ import annotations

import logging
import uuid

import redis
from celery import Celery, Task
from flask import Flask, current_app, g, has_request_context
from kombu.exceptions import OperationalError as KombuOperationalError

from config.settings import get_settings
from core.redis import redis_store
from core.statuses import Tier
from pipeline.streams import enqueued_key

log = logging.getLogger(__name__)

TASK_BY_TIER: dict[str, str] = {
    Tier.LIGHT: "gateway.jobs.run_light",
    Tier.HEAVY: "gateway.jobs.run_heavy",
}
# A tier's queue has the tier's name (the Procfile and docker-compose start `-Q light` and
# `-Q heavy` workers).
TASK_ROUTES = {task: {"queue": str(tier)} for tier, task in TASK_BY_TIER.items()}
DEFAULT_QUEUE = str(Tier.LIGHT)


def tier_models() -> dict[str, str]:
    """The model each tier's workers run (MODEL_LIGHT, MODEL_HEAVY)."""
    settings = get_settings()
    return {Tier.LIGHT: settings.models.model_light, Tier.HEAVY: settings.models.model_heavy}


def celery_init_app(app: Flask) -> Celery:
    class FlaskTask(Task):
        def __call__(self, *args, **kwargs):
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(app.config["CELERY"])
    celery_app.conf.task_routes = TASK_ROUTES
    celery_app.conf.task_default_queue = DEFAULT_QUEUE
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app


# On Redis, 0 is the highest priority (kombu's default steps: 0, 3, 6, 9). Interactive jobs
# take the default; batch requests go last, so a person waiting is served first.
BATCH_PRIORITY = 9


# The enqueued marker outlives any wait in a queue; the job's end deletes it.
ENQUEUED_MARKER_TTL = 7 * 24 * 3600


def enqueue_job(job_id: uuid.UUID, tier: str, *, priority: int | None = None) -> None:
    """Put a job on its tier's queue (routed by task name)."""
    request_id = g.get("request_id") if has_request_context() else None
    # Set first: a message is never without its marker. If Redis loses its data, both go,
    # and the reconciler finds a queued job without a marker.
    marker = enqueued_key(get_settings().redis.key_prefix, str(job_id))
    redis_store.client.set(marker, "1", ex=ENQUEUED_MARKER_TTL)
    current_app.extensions["celery"].send_task(
        TASK_BY_TIER[tier],
        args=[str(job_id)],
        kwargs={"request_id": request_id},
        priority=priority,
        # Results live in PostgreSQL: without this Celery subscribes to a result key per
        # job that nothing reads.
        ignore_result=True,
    )


def queue_depths() -> dict[str, int | None]:
    """Messages waiting on each tier's queue (all priorities); None when the broker is down."""
    try:
        with current_app.extensions["celery"].connection_for_read() as connection:
            # One quick attempt: the metrics must answer even when the broker does not.
            connection.ensure_connection(max_retries=1, timeout=2)
            channel = connection.default_channel
            # kombu's Redis channel sums the queue's list over every priority step. Its
            # public queue_declare(passive=True) would do the same but wrongly says
            # NOT_FOUND under a global_keyprefix (its EXISTS check is not prefixed).
            return {tier: int(channel._size(tier)) for tier in TASK_BY_TIER}
    except (KombuOperationalError, OSError, redis.RedisError) as exc:
        log.warning("queue depth unavailable: %s", exc.__class__.__name__)
        return dict.fromkeys(TASK_BY_TIER)
