"""The application's Redis connection and its key namespace."""

from __future__ import annotations

import math

import redis
from flask import Flask, current_app
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from config.settings import get_settings

# The longest pause between two attempts while riding out an outage.
_RETRY_CAP_SECONDS = 1.0


class RedisStore:
    """One connection pool per process; every key is namespaced by REDIS_KEY_PREFIX."""

    def init_app(self, app: Flask, *, retry_seconds: int | None = None) -> None:
        """Connect `app`; with `retry_seconds`, commands retry that long while Redis is down."""
        options = {}
        if retry_seconds:
            # Connection errors and timeouts only: a command Redis refused is not retried.
            attempts = math.ceil(retry_seconds / _RETRY_CAP_SECONDS)
            backoff = ExponentialWithJitterBackoff(base=0.05, cap=_RETRY_CAP_SECONDS)
            options["retry"] = Retry(backoff, attempts)
        client = redis.Redis.from_url(
            get_settings(app).redis.url,
            decode_responses=True,
            socket_timeout=get_settings(app).redis.socket_timeout,
            socket_connect_timeout=get_settings(app).redis.socket_timeout,
            health_check_interval=30,
            **options,
        )
        app.extensions["redis"] = client

    @property
    def client(self) -> redis.Redis:
        return current_app.extensions["redis"]

    @staticmethod
    def key(*parts: str) -> str:
        return get_settings().redis.key_prefix + ":".join(parts)


# The one instance every process uses, attached in its app factory.
redis_store = RedisStore()
