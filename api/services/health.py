"""Readiness of the backing services."""

from __future__ import annotations

import logging

from sqlalchemy import text

from core.db import db
from core.redis import redis_store

log = logging.getLogger(__name__)


def _database_ok() -> bool:
    try:
        db.session.execute(text("SELECT 1"))
        return True
    except Exception as exc:  # any failure means "not ready"; the class name is logged
        db.session.rollback()
        log.warning("health: database check failed: %s", exc.__class__.__name__)
        return False


def _redis_ok() -> bool:
    try:
        return bool(redis_store.client.ping())
    except Exception as exc:
        log.warning("health: redis check failed: %s", exc.__class__.__name__)
        return False


def check() -> tuple[bool, dict[str, str]]:
    checks = {
        "database": "ok" if _database_ok() else "unavailable",
        "redis": "ok" if _redis_ok() else "unavailable",
    }
    return all(value == "ok" for value in checks.values()), checks
