"""What a process needs attached to its Flask app to move jobs: PostgreSQL, Redis, Celery.

The API's factory (api/__init__.py) and the worker's (worker/app.py) both call init_app;
each adds its own side (HTTP hooks and routes; tasks and the reconciler).
"""

from __future__ import annotations

from flask import Flask

from core.db import db
from core.redis import redis_store
from pipeline import queue


def init_app(app: Flask, *, redis_retry_seconds: int | None = None) -> None:
    """Attach the database, Redis (riding out an outage for `redis_retry_seconds`, when
    given) and the Celery app to `app`."""
    db.init_app(app)
    redis_store.init_app(app, retry_seconds=redis_retry_seconds)
    queue.celery_init_app(app)
