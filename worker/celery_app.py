"""The worker's Celery app: its Flask app's (worker/app.py), with the job tasks registered.

Run: celery -A worker.celery_app worker -Q light -P threads -c 4
"""

from __future__ import annotations

from celery.signals import worker_ready, worker_shutdown

from config import gc_policy
from worker.app import create_worker_app
from worker.reconciler import Reconciler

flask_app = create_worker_app()
celery_app = flask_app.extensions["celery"]

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
