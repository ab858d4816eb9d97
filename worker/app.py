"""The worker's Flask app: configuration, PostgreSQL, Redis and Celery, without the HTTP side.

The worker's code runs inside this app's context (Celery tasks, the reconciler); it never
builds the API's app, so it imports nothing of api/.
"""

from __future__ import annotations

from flask import Flask

import pipeline.app
from config.logging_setup import configure_logging
from config.settings import Config, load_config
from core import models  # noqa: F401 - every table's mapper known before the first query


def create_worker_app(config: Config | None = None) -> Flask:
    config = config or load_config()
    configure_logging(config.LOG_LEVEL)
    app = Flask("worker", static_folder=None)
    app.config.from_object(config)
    # A Redis restart must not fail the jobs that are generating: the worker's Redis calls
    # wait for it (the API's answer 503 at once instead).
    pipeline.app.init_app(app, redis_retry_seconds=config.WORKER_REDIS_RETRY_SECONDS)
    return app
