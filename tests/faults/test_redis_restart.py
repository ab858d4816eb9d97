"""Redis crashes and comes back empty while jobs run and wait.

The stack's Redis is a process of our own that keeps nothing on disk, so a restart loses
every queue message, token stream, lock and counter, as production's Redis would without
persistence. While it is down the API must answer 503 in its JSON error shape (and say in
/health which check failed); once it is back the API and the workers carry on without a
restart, and the jobs whose queue message was lost are found in PostgreSQL and put back
on their queue by the workers' reconciler, so no job is lost.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import requests

from tests.conftest import PASSWORD
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
    submit,
    submit_tagged,
    tagged_replies,
    time_limits,
    unique,
    wait_answered_once,
    wait_ended,
    wait_healthy,
)
from tests.helpers import bearer, register_over_http
from tests.integration.conftest import http_error_of
from tests.sse_client import text_of

pytestmark = pytest.mark.faults

WORDS = 40
TOKEN_DELAY = 0.15  # ~6 s per job: still generating when Redis goes
DOWN_SECONDS = 4
# Jobs wait out the outage inside their time limit, which counts from their start.
JOB_SOFT_TIME_LIMIT = 30
# Queued jobs come back after the reconciler's grace period (10 s after their creation)
# and then run for ~6 s behind one another: generous for a slow CI machine.
RECOVERY_DEADLINE = 90


@pytest.fixture(scope="module")
def stack(migrated_database, tmp_path_factory) -> Iterator[Stack]:
    with running_stack(
        tmp_path_factory.mktemp("redis-restart"),
        concurrency={"light": 2, "heavy": 1},
        env=time_limits(JOB_SOFT_TIME_LIMIT),
    ) as running:
        yield running


@pytest.fixture
def fake(gateway: Stack) -> FaultyOllama:
    fake = gateway.fakes["light"]
    fake.reply_fn = tagged_replies(WORDS)
    fake.token_delay = TOKEN_DELAY
    return fake


def assert_redis_outage_answers(gateway: Stack, client, job_id: str) -> None:
    """While Redis is down: 503 everywhere, in the JSON error shape, and /health says why."""
    assert_health_unavailable(gateway, "redis")
    for response in (
        client.post("/api/jobs/", json={"message": unique("during the outage"), "tools": False}),
        client.get(f"/api/jobs/{job_id}"),
        client.get("/api/jobs/"),
    ):
        error = http_error_of(response, 503, "service_unavailable")
        assert "Redis" in error["message"], error
        assert response.headers.get("Retry-After"), response.headers


@pytest.mark.timeout(180)
def test_redis_restart_answers_503_then_recovers_and_loses_no_job(gateway, user, fake, app):
    # Three jobs generating (the light worker's two slots, the heavy worker's one) and
    # four waiting in the queues behind them.
    messages = submit_tagged(user, ("light", "light", "heavy", "light", "light", "heavy", "heavy"))
    followers = follow(user, messages)
    running = list(messages)[:3]
    for job_id in running:
        followers[job_id].wait_tokens(3, timeout=30)
    states = {str(job.id): job.status for job in jobs_in_database(app)}
    queued = [job_id for job_id, status in states.items() if status == "queued"]
    assert sorted(states.values()) == ["queued"] * 4 + ["running"] * 3, states
    processes = process_ids(gateway)

    gateway.redis.kill()
    down_since = time.monotonic()
    assert_redis_outage_answers(gateway, user, running[0])
    time.sleep(max(0.0, DOWN_SECONDS - (time.monotonic() - down_since)))
    gateway.redis.start()  # same port, empty: every message, stream and lock is gone

    assert wait_healthy(gateway) == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}
    assert_not_restarted(gateway, processes)

    # The waiting jobs lost their queue messages; the reconciler finds them in PostgreSQL.
    # The generating ones ride out the outage: the workers' Redis calls retry for up to
    # WORKER_REDIS_RETRY_SECONDS (30 s by default), so they finish as if nothing happened.
    for job_id, message in messages.items():
        follower = followers[job_id]
        job = wait_answered_once(user, job_id, message, WORDS, follower, RECOVERY_DEADLINE)
        if job_id in queued:
            assert job["attempts"] == 1, job  # ran once, after the restart
    # The clients' reconnects while Redis was down were refused with 503, never a 500.
    assert_refused_only_with_503(followers.values())

    # New work is accepted and served on both tiers, by the same processes.
    fake.token_delay = 0.01
    assert_serves_after_outage(gateway, user, app, processes, WORDS)


@pytest.mark.timeout(120)
def test_a_late_reader_of_a_job_that_generated_through_a_redis_restart_gets_all_of_it(
    gateway, user, fake
):
    message = unique("generating through the restart")
    job_id = submit(user, message, model="light")["id"]
    follower = Follower(user, job_id)
    follower.start()
    follower.wait_tokens(5, timeout=30)

    gateway.redis.kill()
    time.sleep(DOWN_SECONDS)
    gateway.redis.start()

    job = wait_ended(user, job_id, timeout=RECOVERY_DEADLINE)
    follower.stop()
    assert job["status"] == "succeeded", job  # as in the test above
    assert job["output"] == expected_reply(message, WORDS), job
    # "A client that connects late gets every event from the start."
    late = user.events(job_id)
    # The worker rebuilt the lost stream: a reset (for clients that were reading it), then
    # the whole answer from its start.
    names = [event.event for event in late]
    rebuilt = names[names.index("reset") + 1 :] if "reset" in names else names
    assert rebuilt[0] == "start", names
    assert late[-1].event == "done", [event.event for event in late]
    assert text_of(late) == job["output"]


@pytest.mark.timeout(60)
def test_a_logged_out_session_stays_revoked_through_a_redis_restart(gateway):
    """Sessions and their revocations live in PostgreSQL; Redis only caches them."""
    base = gateway.url
    email = f"session-{uuid.uuid4().hex[:12]}@example.com"
    first = register_over_http(base, email, PASSWORD)
    credentials = {"email": email, "password": PASSWORD}
    second = requests.post(f"{base}/api/auth/login", json=credentials, timeout=10).json()

    def me(token: str) -> requests.Response:
        return requests.get(f"{base}/api/user/me", headers=bearer(token), timeout=10)

    def refresh(token: str) -> requests.Response:
        return requests.post(f"{base}/api/auth/refresh", headers=bearer(token), timeout=10)

    assert me(first["access_token"]).status_code == 200  # its "active" is now cached
    logout = requests.post(
        f"{base}/api/auth/logout", headers=bearer(first["access_token"]), timeout=10
    )
    assert logout.status_code == 204, logout.text

    gateway.redis.kill()
    gateway.redis.start()  # same port, empty: every cached session state is gone
    wait_healthy(gateway)

    http_error_of(me(first["access_token"]), 401, "token_revoked")
    http_error_of(refresh(first["refresh_token"]), 401, "token_revoked")
    # The other login of the same user was never ended, and still works.
    assert me(second["access_token"]).status_code == 200
    sessions = requests.get(
        f"{base}/api/user/sessions", headers=bearer(second["access_token"]), timeout=10
    ).json()
    assert [(s["current"], s["revoked_reason"]) for s in sessions] == [
        (True, None),
        (False, "logout"),
    ]
