"""The application's Redis connection and its key namespace."""

from __future__ import annotations

import redis
from flask import Flask, current_app


class RedisStore:
    """One connection pool per process; every key is namespaced by REDIS_KEY_PREFIX."""

    def init_app(self, app: Flask) -> None:
        client = redis.Redis.from_url(
            app.config["REDIS_URL"],
            decode_responses=True,
            socket_timeout=app.config["REDIS_SOCKET_TIMEOUT"],
            socket_connect_timeout=app.config["REDIS_SOCKET_TIMEOUT"],
            health_check_interval=30,
        )
        app.extensions["redis"] = client

    @property
    def client(self) -> redis.Redis:
        return current_app.extensions["redis"]

    @staticmethod
    def key(*parts: str) -> str:
        return current_app.config["REDIS_KEY_PREFIX"] + ":".join(parts)
