"""PostgreSQL goes away and comes back while jobs run.

The app processes reach the run's database through a TCP proxy of the test's own; cutting
it closes every connection they hold and refuses new ones, as a database restart does,
without touching the machine's PostgreSQL. While it is down the API must answer 503 in
its JSON error shape (never a 500) and /health must name the database; afterwards the
same processes serve again, the jobs that were generating end succeeded, and none is
lost or left queued or running.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from tests.faults.conftest import (
    FaultyOllama,
    Follower,
    Stack,
    assert_health_unavailable,
    assert_not_restarted,
    assert_refused_only_with_503,
    assert_serves_after_outage,
    expected_reply,
    follow,
    jobs_in_database,
    process_ids,
    running_stack,
    stuck_jobs,
    submit,
    submit_tagged,
    tagged_replies,
    time_limits,
    unique,
    wait_answered_once,
    wait_ended,
    wait_healthy,
)
from tests.integration.conftest import http_error_of
from tests.sse_client import text_of

pytestmark = pytest.mark.faults

WORDS = 40
DOWN_SECONDS = 5
JOB_SOFT_TIME_LIMIT = 30
# Interrupted jobs come back through the reconciler once their lock has lapsed
# (JOB_LOCK_TTL, 3 s in the tests), then generate again for a few seconds.
RECOVERY_DEADLINE = 90


@pytest.fixture(scope="module")
def stack(migrated_database, tmp_path_factory) -> Iterator[Stack]:
    with running_stack(
        tmp_path_factory.mktemp("database-restart"),
        concurrency={"light": 2, "heavy": 1},
        env=time_limits(JOB_SOFT_TIME_LIMIT),
        cut_database=True,
    ) as running:
        yield running


@pytest.fixture
def fake(gateway: Stack) -> FaultyOllama:
    fake = gateway.fakes["light"]
    fake.reply_fn = tagged_replies(WORDS)
    return fake


def assert_database_outage_answers(gateway: Stack, client, api_key: str, job_id: str) -> None:
    """While the database is down: 503 in the JSON error shape, and /health says why."""
    assert_health_unavailable(gateway, "database")
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
        error = http_error_of(response, 503, "service_unavailable")
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

    messages = submit_tagged(user, ("light", "light", "heavy"))  # every worker slot busy
    followers = follow(user, messages)
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
        follower = followers[job_id]
        job = wait_answered_once(user, job_id, message, WORDS, follower, RECOVERY_DEADLINE)
        assert text_of(user.events(job_id)) == job["output"]  # a late reader too
    assert_refused_only_with_503(followers.values())

    fake.token_delay = 0.01
    assert_serves_after_outage(gateway, user, app, processes, WORDS)


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
