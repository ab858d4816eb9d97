"""PostgreSQL goes away and comes back while jobs run.

The app processes reach the run's database through a TCP proxy of the test's own; cutting
it closes every connection they hold and refuses new ones, as a database restart does,
without touching the machine's PostgreSQL. While it is down the API must answer 503 in
its JSON error shape (never a 500) and /health must name the database; afterwards the
same processes serve again, the jobs that were generating end succeeded, and none is
lost or left queued or running.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
import requests
from sqlalchemy.engine import make_url

from tests.faults.conftest import (
    FaultyOllama,
    Follower,
    PgProxy,
    RedisServer,
    Stack,
    assert_answered_once,
    assert_error_shape,
    assert_not_restarted,
    expected_reply,
    jobs_in_database,
    process_ids,
    proxied_database_url,
    running_stack,
    stuck_jobs,
    submit,
    tagged_replies,
    unique,
    wait_ended,
    wait_healthy,
)
from tests.integration.conftest import text_of

pytestmark = pytest.mark.faults

WORDS = 40
DOWN_SECONDS = 5
JOB_SOFT_TIME_LIMIT = 30
# Interrupted jobs come back through the reconciler once their lock has lapsed
# (JOB_LOCK_TTL, 3 s in the tests), then generate again for a few seconds.
RECOVERY_DEADLINE = 90


@pytest.fixture(scope="module")
def stack(migrated_database, tmp_path_factory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("database-restart")
    redis_server = RedisServer(workdir)
    database = make_url(os.environ["TEST_DATABASE_URL"])
    proxy = PgProxy(database.host or "127.0.0.1", database.port or 5432)
    fake = FaultyOllama()
    try:
        redis_server.start()
        proxy.start()
        fake.start()
        with running_stack(
            workdir,
            redis_server=redis_server,
            concurrency={"light": 2, "heavy": 1},
            fakes={"light": fake, "heavy": fake},
            database_url=proxied_database_url(os.environ["TEST_DATABASE_URL"], proxy.port),
            proxy=proxy,
            env={
                "JOB_SOFT_TIME_LIMIT": str(JOB_SOFT_TIME_LIMIT),
                "JOB_TIME_LIMIT": str(JOB_SOFT_TIME_LIMIT + 5),
                "BROKER_VISIBILITY_TIMEOUT": str(JOB_SOFT_TIME_LIMIT + 15),
            },
        ) as running:
            yield running
    finally:
        fake.stop()
        proxy.stop()
        redis_server.stop()


@pytest.fixture
def fake(gateway: Stack) -> FaultyOllama:
    fake = gateway.fakes["light"]
    fake.reply_fn = tagged_replies(WORDS)
    return fake


def assert_database_outage_answers(gateway: Stack, client, api_key: str, job_id: str) -> None:
    """While the database is down: 503 in the JSON error shape, and /health says why."""
    health = gateway.health()
    assert health.status_code == 503, health.text
    assert health.json() == {
        "status": "unavailable",
        "checks": {"database": "unavailable", "redis": "ok"},
    }
    by_key = {"X-API-Key": api_key}
    for response in (
        client.post("/api/jobs/", json={"message": unique("during the outage"), "tools": False}),
        client.get(f"/api/jobs/{job_id}"),
        requests.get(f"{gateway.url}/api/user/me", headers=by_key, timeout=30),
        requests.post(
            f"{gateway.url}/api/jobs/",
            json={"message": unique("by key, during the outage"), "tools": False},
            headers=by_key,
            timeout=30,
        ),
    ):
        error = assert_error_shape(response, 503, "service_unavailable")
        assert "database" in error["message"], error
        assert "postgres" not in response.text.lower(), response.text


@pytest.mark.timeout(180)
def test_database_restart_answers_503_then_recovers_and_running_jobs_succeed(
    gateway, user, fake, app
):
    created = user.post("/api/user/api-keys", json={"name": "outage"})
    assert created.status_code == 201, created.text
    api_key = created.json()["key"]
    fake.token_delay = 0.15  # ~6 s per job: still generating when the database goes

    messages = {}
    for tier in ("light", "light", "heavy"):  # every worker slot busy
        message = unique(f"{tier} job")
        messages[submit(user, message, model=tier)["id"]] = message
    followers = {job_id: Follower(user, job_id) for job_id in messages}
    for follower in followers.values():
        follower.start()
    for follower in followers.values():
        follower.wait_tokens(3, timeout=30)
    assert {job.status for job in jobs_in_database(app)} == {"running"}
    processes = process_ids(gateway)

    gateway.proxy.cut()
    down_since = time.monotonic()
    assert_database_outage_answers(gateway, user, api_key, next(iter(messages)))
    time.sleep(max(0.0, DOWN_SECONDS - (time.monotonic() - down_since)))
    gateway.proxy.resume()

    assert wait_healthy(gateway) == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}
    assert_not_restarted(gateway, processes)
    me = requests.get(f"{gateway.url}/api/user/me", headers={"X-API-Key": api_key}, timeout=30)
    assert me.status_code == 200, me.text

    # The generations went on (they need only Redis and the model); the jobs end
    # succeeded with their whole answer once, and each client's stream tells the same.
    for job_id, message in messages.items():
        job = wait_ended(user, job_id, timeout=RECOVERY_DEADLINE)
        assert_answered_once(user, job, expected_reply(message, WORDS), followers[job_id])
        assert text_of(user.events(job_id)) == job["output"]  # a late reader too
    refusals = {status for follower in followers.values() for status in follower.refused}
    assert refusals <= {503}, refusals

    fake.token_delay = 0.01
    for tier in ("light", "heavy"):
        message = unique(f"{tier} after the restart")
        job = wait_ended(user, submit(user, message, model=tier)["id"], timeout=30)
        assert_answered_once(user, job, expected_reply(message, WORDS), None)
    assert stuck_jobs(app) == []
    assert_not_restarted(gateway, processes)


@pytest.mark.timeout(150)
def test_a_job_delivered_while_the_database_is_down_is_not_lost(gateway, user, fake, app):
    # The heavy worker has one slot: `first` generates, `waiting` is next in its queue.
    fake.token_delay = 0.05
    first_message, waiting_message = unique("first"), unique("waiting")
    first = submit(user, first_message, model="heavy")
    waiting = submit(user, waiting_message, model="heavy")
    follower = Follower(user, first["id"])
    follower.start()
    # Cut near the end of `first`, so its slot frees (and `waiting` is delivered) while the
    # database is still away.
    follower.wait_tokens(WORDS - 8, timeout=30)
    assert {job.status for job in jobs_in_database(app)} == {"running", "queued"}

    gateway.proxy.cut()
    time.sleep(DOWN_SECONDS + 1)
    gateway.proxy.resume()
    wait_healthy(gateway)

    # Both jobs need a few seconds each on the one slot once the database is back (the
    # reconciler looks every second); 25 s is plenty.
    ended = wait_ended(user, waiting["id"], timeout=25)
    assert ended["status"] == "succeeded", ended
    assert ended["output"] == expected_reply(waiting_message, WORDS)
    job = wait_ended(user, first["id"], timeout=RECOVERY_DEADLINE)
    assert job["status"] == "succeeded", job
    follower.stop()
    assert stuck_jobs(app) == []
