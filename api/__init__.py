"""LLM Gateway API: the Flask application factory."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

import pipeline.app
from api import (
    cli,
    errors,
    http_guards,
    json_body,
    metrics,
    openapi,
    overhead,
    rate_limits,
    request_log,
    stream_leases,
)
from api.extensions import limiter, migrate
from api.security import jwt_callbacks
from config.logging_setup import configure_logging
from config.settings import Config, load_config
from core import models  # noqa: F401 - every table registered before migrations run
from core.db import db

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def create_app(config: Config | None = None) -> Flask:
    config = config or load_config()
    configure_logging(config.LOG_LEVEL)

    app = Flask(__name__, static_folder=None)
    app.json = json_body.JSONProvider(app)  # request.get_json() with the parser's limits
    app.config.from_object(config)
    app.url_map.strict_slashes = False
    if config.PROXY_FIX_HOPS:
        hops = config.PROXY_FIX_HOPS
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    request_log.init_app(app)  # first: every later hook and error has a request id
    metrics.init_app(app)
    overhead.init_app(app)  # X-Gateway-Overhead-Ms on every generated answer
    http_guards.init_app(app)
    errors.init_app(app)

    pipeline.app.init_app(app)  # PostgreSQL, Redis, Celery
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR))
    stream_leases.init_app(app)  # open SSE streams per account, counted in Redis
    jwt_callbacks.init_app(app)
    rate_limits.use_steady_storage(app)
    limiter.init_app(app)
    rate_limits.init_app(app)  # after the limiter: see its docstring
    openapi.init_app(app)
    cli.init_app(app)
    return app
