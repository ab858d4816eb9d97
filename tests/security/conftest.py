"""The security suites run under a Redis key prefix of their own.

Their jobs must stay where they put them: the Celery workers that other tests of the run
start read the run's main queues and would take these jobs (and hold their rows) too.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from config.settings import TestingConfig
from tests.conftest import fresh_app, own_key_prefix


@pytest.fixture(autouse=True)
def security_key_prefix(monkeypatch, redis_client) -> Iterator[str]:
    """Every app built in these tests (also by app_with) uses this prefix."""
    with own_key_prefix(redis_client, "security") as prefix:
        monkeypatch.setenv("TEST_REDIS_KEY_PREFIX", prefix)
        yield prefix


@pytest.fixture
def app(migrated_database, redis_client, security_key_prefix) -> Iterator:
    with fresh_app(TestingConfig(), redis_client) as app:
        yield app
