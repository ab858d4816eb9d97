"""The security suites run under a Redis key prefix of their own.

Their jobs must stay where they put them: the Celery workers that other tests of the run
start read the run's main queues and would take these jobs (and hold their rows) too.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from config.settings import TestingConfig
from core.models import Job
from core.models.base import utcnow
from pipeline import events, generations, lifecycle, outcomes
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


def answer_job(job: Job, answer: str, prompt_tokens: int, completion_tokens: int) -> None:
    """End a running job as a worker does when the model answered: the answer message, the
    `done` event, the usage row and the cache entry, in one commit."""
    message_id = outcomes.add_answer_message(job, answer, prompt_tokens, completion_tokens)
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}
    done = events.done(message_id=message_id, **usage, finish_reason="stop")
    lifecycle.finish(
        job,
        "succeeded",
        event=done,
        chunks=generations.Chunks([answer]),
        output=answer,
        finish_reason="stop",
        **usage,
        first_token_at=job.first_token_at or utcnow(),
        assistant_message_id=message_id,
    )
