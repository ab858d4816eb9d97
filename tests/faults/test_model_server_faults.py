"""The model server down, slow, hanging or garbling its reply, while other jobs run.

tests/integration already checks that each fault fails a lone job with some model_* code and
that the worker serves the next job afterwards. Here the faulty reply hits one request
while the same worker process is busy with healthy jobs on its other slot (the fake model
server faults only the request that asks for it), and the codes are the exact ones: the
faulty job fails with its code within its time limit, and every other job, on the same
queue and on the other tier, is answered in full meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from tests.faults.conftest import (
    FaultyOllama,
    Follower,
    Stack,
    expected_reply,
    running_stack,
    submit,
    tagged_replies,
    time_limits,
    unique,
    wait_ended,
    wait_until,
)
from tests.sse_client import text_of

pytestmark = pytest.mark.faults

LLM_READ_TIMEOUT = 8  # long enough that healthy jobs visibly finish while a slot hangs
JOB_SOFT_TIME_LIMIT = 20
JOB_TIME_LIMIT = 24
LIGHT_SLOTS = 2

# The fault, and the code the job must fail with (worker/agent/errors.py).
FAULT_CODES = {
    "slow": "model_timeout",  # first token only after LLM_READ_TIMEOUT
    "hang_mid_stream": "model_timeout",  # a few tokens, then silence
    "malformed": "model_bad_response",  # a line that is not JSON
    "error": "model_error",  # HTTP 500 before anything is streamed
    "error_mid_stream": "model_error",  # a few tokens, then Ollama's {"error": ...} line
    "disconnect_mid_stream": "model_stream_truncated",  # the socket closes mid-body
}
# Faults that hold their worker slot until LLM_READ_TIMEOUT.
HANGING = {"slow", "hang_mid_stream"}


@pytest.fixture(scope="module")
def stack(migrated_database, tmp_path_factory) -> Iterator[Stack]:
    with running_stack(
        tmp_path_factory.mktemp("model-faults"),
        concurrency={"light": LIGHT_SLOTS, "heavy": 1},
        fakes={"light": FaultyOllama(slow_delay=LLM_READ_TIMEOUT + 4), "heavy": FaultyOllama()},
        env={
            "LLM_READ_TIMEOUT": str(LLM_READ_TIMEOUT),
            **time_limits(JOB_SOFT_TIME_LIMIT, JOB_TIME_LIMIT, visibility=JOB_TIME_LIMIT + 20),
        },
    ) as running:
        yield running


@pytest.fixture
def fakes(gateway: Stack) -> tuple[FaultyOllama, FaultyOllama]:
    light, heavy = gateway.fakes["light"], gateway.fakes["heavy"]
    for fake in (light, heavy):
        fake.reply_fn = tagged_replies()
        fake.token_delay = 0.01
    return light, heavy


def moment(job: dict, name: str) -> datetime:
    return datetime.fromisoformat(job["timings"][name])


def assert_failed_with(client, job: dict, code: str) -> None:
    """A job failed with `code`, as the API and its event stream tell it."""
    assert job["status"] == "failed", job
    assert job["error"]["code"] == code, job
    assert job["error"]["message"], job
    assert job["finish_reason"] is None and job["message_id"] is None, job
    # Within its time limit, by the job's own clock.
    ran_for = (moment(job, "finished_at") - moment(job, "created_at")).total_seconds()
    assert ran_for <= JOB_TIME_LIMIT, job["timings"]
    events = client.events(job["id"])
    names = [event.event for event in events]
    assert names[-1] == "error" and "done" not in names, names
    assert events[-1].data["error"]["code"] == code, events[-1].data
    assert text_of(events) == (job["output"] or "")


def assert_answered(client, job_id: str, message: str) -> dict:
    job = wait_ended(client, job_id, timeout=30)
    assert job["status"] == "succeeded", job
    assert job["output"] == expected_reply(message), job
    return job


@pytest.mark.parametrize("fault", FAULT_CODES, ids=list(FAULT_CODES))
def test_a_faulty_reply_fails_its_job_while_the_worker_serves_the_others(user, fakes, fault):
    light, _heavy = fakes
    light.token_delay = 0.1  # the first healthy job streams for ~2 s
    # A healthy job streams on one of the light worker's two slots...
    first_message = unique("healthy, streaming")
    first = submit(user, first_message, model="light")
    follower = Follower(user, first["id"], timeout=60)
    follower.start()
    follower.wait_tokens(2, timeout=30)
    light.token_delay = 0.01

    # ...the faulty one takes the other slot...
    faulty_message = f"[fault:{fault}] {unique('faulty')}"
    faulty = submit(user, faulty_message, model="light")
    assert wait_until(lambda: light.saw(faulty_message), timeout=30), "never reached the model"

    # ...and more jobs arrive on the same queue and on the other tier.
    later = {m: submit(user, m, model="light") for m in (unique("light 1"), unique("light 2"))}
    other_tier = unique("heavy")
    later[other_tier] = submit(user, other_tier, model="heavy")

    events = follower.finish(timeout=30)
    assert_answered(user, first["id"], first_message)
    assert text_of(events) == expected_reply(first_message)
    served = [assert_answered(user, job["id"], m) for m, job in later.items()]

    ended = wait_ended(user, faulty["id"], timeout=JOB_TIME_LIMIT + 15)
    assert_failed_with(user, ended, FAULT_CODES[fault])
    if fault in HANGING:
        # The hanging reply held one slot the whole time; the other slot served the rest.
        assert all(moment(job, "finished_at") < moment(ended, "finished_at") for job in served)
    if fault == "slow":
        assert ended["output"] is None, ended
    if ended["output"]:  # what streamed before the fault is kept, and is a true prefix
        assert expected_reply(faulty_message).startswith(ended["output"]), ended
        assert ended["output"] != expected_reply(faulty_message)

    # The worker that saw the fault answers a new job normally.
    after = unique("after the fault")
    assert_answered(user, submit(user, after, model="light")["id"], after)


def test_a_model_server_that_is_down_fails_its_tier_while_the_other_tier_serves(user, fakes):
    light, _heavy = fakes
    light.stop()  # nothing listens on the light tier's model server port
    try:
        down_message = unique("nobody listens")
        down = submit(user, down_message, model="light")
        other_tier = unique("heavy meanwhile")
        heavy_job = submit(user, other_tier, model="heavy")

        ended = wait_ended(user, down["id"], timeout=JOB_TIME_LIMIT + 15)
        assert_failed_with(user, ended, "model_unavailable")
        assert ended["output"] is None
        assert_answered(user, heavy_job["id"], other_tier)
    finally:
        light.start()
        light.reply_fn = tagged_replies()

    again = unique("model server back")
    assert_answered(user, submit(user, again, model="light")["id"], again)
