"""The security suites run under a Redis key prefix of their own.

Their jobs must stay where they put them: the Celery workers that other tests of the run
start read the run's main queues and would take these jobs (and hold their rows) too.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from api import create_app
from api.extensions import db
from config.settings import TestingConfig
from tests.conftest import clean_state


@pytest.fixture(autouse=True)
def own_key_prefix(monkeypatch, test_config) -> str:
    """Every app built in these tests (also by app_with) uses this prefix."""
    prefix = f"{test_config.REDIS_KEY_PREFIX}security:"
    monkeypatch.setenv("TEST_REDIS_KEY_PREFIX", prefix)
    return prefix


@pytest.fixture
def app(migrated_database, redis_client, own_key_prefix) -> Iterator:
    app = create_app(TestingConfig())
    clean_state(app, redis_client)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
