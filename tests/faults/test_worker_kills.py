"""Workers killed with SIGKILL at random moments while 20 jobs stream.

tests/integration kills one worker once under one job. Here 20 jobs on both queues stream
to 20 SSE clients while the workers die several times at seeded-random moments (a
machine dying: nothing acknowledged, no warm shutdown) and come back as new processes.
Every job must end succeeded with its full text exactly once — in the job, in its
conversation and in what each client assembled from its event stream — and none may be
left queued or running. Set FAULTS_SEED to replay another schedule.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator

import pytest

from tests.faults.conftest import (
    Follower,
    Stack,
    follow,
    running_stack,
    stuck_jobs,
    submit_tagged,
    tagged_replies,
    wait_answered_once,
    wait_until,
)
from tests.sse_client import text_of

pytestmark = pytest.mark.faults

SEED = int(os.environ.get("FAULTS_SEED") or 20240611)
JOBS = 20
WORDS = 30  # ~2.5 s of tokens per attempt at 0.08 s a token
KILLS = 3
# A redelivered job comes back once its message's visibility timeout (12 s in the tests)
# has passed and a worker's restore sweep (every 5 s) has seen it, or earlier through the
# reconciler; then it runs for a few seconds. Generous, as CI machines are slow.
REDELIVERY_DEADLINE = 90


@pytest.fixture(scope="module")
def stack(migrated_database, tmp_path_factory) -> Iterator[Stack]:
    with running_stack(
        tmp_path_factory.mktemp("worker-kills"),
        concurrency={"light": 3, "heavy": 2},
        # A job may be hit by more than one kill: let it start over often enough.
        env={"JOB_MAX_ATTEMPTS": "10"},
    ) as running:
        yield running


def streaming_on(followers: dict[str, Follower], tiers: dict[str, str], queues: set[str]) -> bool:
    """Whether a job of one of `queues` is streaming tokens to its client right now."""
    return any(
        tiers[job_id] in queues and follower.tokens() > 0 and not follower.ended
        for job_id, follower in followers.items()
    )


@pytest.mark.timeout(240)
def test_jobs_survive_workers_killed_at_random_moments(gateway, user, app):
    rng = random.Random(SEED)
    fake = gateway.fakes["light"]
    fake.reply_fn = tagged_replies(WORDS)
    fake.token_delay = 0.08

    requested = ["light" if n % 2 == 0 else "heavy" for n in range(JOBS)]
    messages = submit_tagged(user, requested, label="job {n}")
    tiers = dict(zip(messages, requested, strict=True))  # a tier asked for by name is kept
    followers = follow(user, messages, timeout=REDELIVERY_DEADLINE + 60)

    schedule = []
    for _ in range(KILLS):
        victims = rng.choice([("light",), ("heavy",), ("light", "heavy")])
        delay = rng.uniform(0.3, 2.5)
        schedule.append((victims, round(delay, 2)))
        time.sleep(delay)
        # Kill while tokens flow on a victim's queue (if its jobs are all done, on any).
        if not wait_until(lambda v=victims: streaming_on(followers, tiers, set(v)), timeout=20):
            victims = ("light", "heavy")
        for queue in victims:
            gateway.workers[queue].kill()
        for queue in victims:
            gateway.workers[queue].start()  # a new process, with a new hostname
    context = f"seed {SEED}, kills {schedule}"

    for job_id, message in messages.items():
        # Succeeded with its text once: in the job, in its conversation, and in what its
        # client assembled live (discarding what each `reset` told it to).
        try:
            follower = followers[job_id]
            job = wait_answered_once(user, job_id, message, WORDS, follower, REDELIVERY_DEADLINE)
        except AssertionError as exc:
            raise AssertionError(f"{context}: {exc}") from exc
        # A client connecting now is told the same story.
        assert text_of(user.events(job_id)) == job["output"], (context, job_id)

    attempts = {job_id: user.job(job_id)["attempts"] for job_id in messages}
    # The kills did interrupt generations (the test would prove nothing otherwise).
    assert max(attempts.values()) >= 2, (context, attempts)
    assert stuck_jobs(app) == [], context
