"""The worker's Celery app: the Flask app's, with the job tasks registered.

Run: celery -A worker.celery_app worker -Q light -P threads -c 4
"""

from __future__ import annotations

from celery.signals import worker_ready, worker_shutdown

from api import create_app
from config import gc_policy
from config.logging_setup import configure_logging
from core.redis import redis_store
from worker.reconciler import Reconciler

flask_app = create_app()
# A Redis restart must not fail the jobs that are generating: the worker's Redis calls
# wait for it (the API's answer 503 at once instead).
redis_store.init_app(flask_app, retry_seconds=flask_app.config["WORKER_REDIS_RETRY_SECONDS"])
celery_app = flask_app.extensions["celery"]
configure_logging(flask_app.config["LOG_LEVEL"])

import worker.tasks  # noqa: E402,F401  (registers the tasks on celery_app)

_reconcilers: list[Reconciler] = []


@worker_ready.connect
def tune_gc(**kwargs) -> None:
    gc_policy.apply()  # the tasks' modules (LangGraph, LangChain) are loaded by now


@worker_ready.connect
def start_reconciler(sender=None, **kwargs) -> None:
    reconciler = Reconciler(flask_app, getattr(sender, "hostname", None) or "worker")
    reconciler.start()
    _reconcilers.append(reconciler)


@worker_shutdown.connect
def stop_reconciler(**kwargs) -> None:
    for reconciler in _reconcilers:
        reconciler.stop()
