"""The reconciler against the real PostgreSQL and Redis: which jobs it puts back, and how."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest

from core.db import db
from core.models import Job
from core.models.base import utcnow
from core.redis import redis_store
from pipeline.streams import enqueued_key, lock_key
from tests.conftest import own_key_prefix
from tests.helpers import app_with, bearer, queued_messages
from worker.reconciler import reconcile_once


@pytest.fixture
def app(app, monkeypatch, redis_client):
    """The run's app under a key prefix of its own, whose queues no worker process reads.

    (Other tests' Celery workers may be running; they must not take these messages.)
    """
    with own_key_prefix(redis_client, "reconciler") as prefix:
        isolated = app_with(monkeypatch, TEST_REDIS_KEY_PREFIX=prefix)
        yield isolated
        with isolated.app_context():
            db.engine.dispose()


@pytest.fixture
def owner(app, alice):
    return uuid.UUID(alice.id)


def add_job(app, user_id, *, status="queued", age=60, batch=None, leader=None) -> str:
    """A job row as the API leaves it, created `age` seconds ago."""
    with app.app_context():
        created = utcnow() - timedelta(seconds=age)
        job = Job(
            user_id=user_id,
            status=status,
            tier="heavy",
            model="qwen2.5:7b",
            route_score=0.9,
            route_reason="test",
            input={"messages": [{"role": "user", "content": "hi"}], "params": {}},
            created_at=created,
            started_at=created if status == "running" else None,
            leader_job_id=leader,
        )
        db.session.add(job)
        db.session.commit()
        return str(job.id)


def mark_enqueued(app, job_id: str) -> None:
    with app.app_context():
        redis_store.client.set(enqueued_key(app.config["REDIS_KEY_PREFIX"], job_id), "1")


def hold_lock(app, job_id: str) -> None:
    with app.app_context():
        redis_store.client.set(lock_key(app.config["REDIS_KEY_PREFIX"], job_id), "worker")


def reconcile(app):
    with app.app_context():
        return reconcile_once()


def sent(app, redis_client) -> list[str]:
    return [m["job_id"] for m in queued_messages(app, redis_client)]


def test_a_queued_job_whose_message_was_lost_is_enqueued_again(app, redis_client, owner):
    lost = add_job(app, owner)
    kept = add_job(app, owner)
    mark_enqueued(app, kept)  # its message is still on the broker
    done = reconcile(app)
    assert (done.queued, done.running) == (1, 0)
    assert sent(app, redis_client) == [lost]
    messages = queued_messages(app, redis_client)
    assert messages[0]["queue"] == "heavy" and messages[0]["task"] == "gateway.jobs.run_heavy"
    # Enqueued means marked: the next pass leaves it alone.
    assert reconcile(app).queued == 0
    assert sent(app, redis_client) == [lost]


def test_young_jobs_and_followers_are_left_alone(app, redis_client, owner):
    add_job(app, owner, age=1)  # the API may still be enqueueing it
    leader = add_job(app, owner)
    mark_enqueued(app, leader)
    add_job(app, owner, leader=uuid.UUID(leader))  # waits for its leader's answer
    assert reconcile(app).queued == 0
    assert sent(app, redis_client) == []


def test_a_running_job_without_a_live_worker_is_enqueued_again(app, redis_client, owner):
    orphan = add_job(app, owner, status="running")
    alive = add_job(app, owner, status="running")
    hold_lock(app, alive)
    # A missing lock is not proof yet: Redis may have just restarted under a live worker,
    # which takes its lock again within JOB_LOCK_TTL / 3.
    assert reconcile(app).running == 0
    assert sent(app, redis_client) == []
    time.sleep(app.config["JOB_LOCK_TTL"] + 0.5)
    assert reconcile(app).running == 1
    assert sent(app, redis_client) == [orphan]


def test_a_lock_that_comes_back_clears_the_suspicion(app, redis_client, owner):
    job = add_job(app, owner, status="running")
    assert reconcile(app).running == 0
    hold_lock(app, job)  # the worker renewed it
    reconcile(app)
    with app.app_context():
        redis_store.client.delete(lock_key(app.config["REDIS_KEY_PREFIX"], job))
    time.sleep(app.config["JOB_LOCK_TTL"] + 0.5)
    # Missing again, but only since the last pass: it must wait out a whole TTL again.
    assert reconcile(app).running == 0
    assert sent(app, redis_client) == []


def test_batch_requests_go_back_at_batch_priority(app, redis_client, alice):
    created = app.test_client().post(
        "/api/batches/",
        json={"requests": [{"custom_id": "a", "message": "hi"}]},
        headers=bearer(alice.access_token),
    )
    assert created.status_code == 202, created.get_json()
    first = queued_messages(app, redis_client)
    with app.app_context():
        prefix = app.config["REDIS_KEY_PREFIX"]
        job = db.session.scalars(db.select(Job)).one()
        job.created_at = utcnow() - timedelta(minutes=5)
        db.session.commit()
        # Redis lost its data: the message and the marker are gone.
        redis_store.client.delete(enqueued_key(prefix, str(job.id)))
        for key in redis_store.client.scan_iter(match=f"{prefix}celery:*"):
            if redis_store.client.type(key) == "list":
                redis_store.client.delete(key)
    assert reconcile(app).queued == 1
    again = queued_messages(app, redis_client)
    assert [(m["job_id"], m["priority"], m["queue"]) for m in again] == [
        (m["job_id"], m["priority"], m["queue"]) for m in first
    ]
