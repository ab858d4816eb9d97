"""The worker's Celery app: the Flask app's, with the job tasks registered.

Run: celery -A worker.celery_app worker -Q light -P threads -c 4
"""

from __future__ import annotations

from api import create_app
from config.logging_setup import configure_logging

flask_app = create_app()
celery_app = flask_app.extensions["celery"]
configure_logging(flask_app.config["LOG_LEVEL"])

import worker.tasks  # noqa: E402,F401  (registers the tasks on celery_app)
