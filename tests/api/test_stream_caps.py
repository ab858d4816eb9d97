"""The cap on open event streams per account, on every streaming endpoint (test client).

No worker runs: jobs stay queued and their streams stay open, sending heartbeats, until
the test closes them, as a client of a hanging job would. The cap across server processes
and on dropped connections is in tests/integration/test_stream_caps.py.

The test client runs every request in this thread: streams open at once are closed
newest first (close_all).
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from api.stream_leases import lease_key
from core.db import db
from core.models import Conversation, Job
from tests.conftest import make_admin, register_and_login
from tests.helpers import app_with, error_of

pytestmark = pytest.mark.usefixtures("clean_after")  # the queued jobs go with the test

USER_CAP, ADMIN_CAP = 2, 3
CHAT = {"model": "light", "messages": [{"role": "user", "content": "hello"}], "stream": True}


@pytest.fixture
def capped(monkeypatch, app):
    """An app with small stream caps; heartbeats often, so a stream opens without delay."""
    return app_with(
        monkeypatch,
        MAX_OPEN_STREAMS_PER_USER=USER_CAP,
        MAX_OPEN_STREAMS_PER_ADMIN=ADMIN_CAP,
        SSE_HEARTBEAT_SECONDS=0.05,
    )


def queued_job(client, headers) -> str:
    response = client.post("/api/jobs", json={"message": "hello"}, headers=headers)
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def close_all(streams: list) -> None:
    # Newest first: the test client keeps each open stream's request context pushed, and
    # Flask pops them in the order they were pushed. Closing twice does nothing.
    for stream in reversed(streams):
        stream.close()


@pytest.fixture
def opened():
    """The streams a test opens: any it leaves open (an assertion failed) are closed
    after it, before the database is cleaned (their requests would block it)."""
    streams: list = []
    yield streams
    close_all(streams)


def stream(response, opened: list):
    """`response`, checked to be an open event stream (not read: it would never end)."""
    opened.append(response)
    assert response.status_code == 200, response.status_code
    assert response.mimetype == "text/event-stream"
    return response


def follow(client, headers, job_id: str, opened: list):
    """An open event stream of the job."""
    return stream(client.get(f"/api/jobs/{job_id}/events", headers=headers), opened)


def open_leases(app, redis_client, user_id: str) -> int:
    return redis_client.zcard(lease_key(app.config["REDIS_KEY_PREFIX"], user_id))


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def not_a_stream(response) -> None:
    """Fail at once on a stream answered instead of a refusal: reading its body for the
    failure message would wait for a job that never ends."""
    if response.mimetype == "text/event-stream":
        response.close()
        pytest.fail(f"expected a refusal, got a {response.status_code} event stream")


def assert_stream_refused(response, cap: int) -> dict:
    not_a_stream(response)
    error = error_of(response, 429, "too_many_streams")
    assert error["details"] == {"open": cap, "limit": cap}
    assert f"the limit is {cap}" in error["message"]
    return error


def assert_openai_stream_refused(response, cap: int) -> dict:
    not_a_stream(response)
    assert response.status_code == 429, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert (error["type"], error["code"]) == ("rate_limit_error", "too_many_streams")
    assert f"the limit is {cap}" in error["message"]
    return error


def test_every_streaming_endpoint_counts_and_refuses_past_the_cap(
    capped, app, alice, redis_client, opened
):
    client = capped.test_client()
    key = client.post("/api/user/api-keys", json={"name": "sdk"}, headers=alice.headers)
    api_key = {"Authorization": f"Bearer {key.get_json()['key']}"}
    job_id = queued_job(client, alice.headers)
    background = client.post(
        "/v1/responses", json={"model": "light", "input": "hi", "background": True}, headers=api_key
    ).get_json()["id"]

    # One stream with the login, one with an API key: both are alice's.
    events = follow(client, alice.headers, job_id, opened)
    completion = stream(client.post("/v1/chat/completions", json=CHAT, headers=api_key), opened)
    assert open_leases(app, redis_client, alice.id) == USER_CAP
    jobs_before, conversations_before = count(app, Job), count(app, Conversation)

    assert_stream_refused(client.get(f"/api/jobs/{job_id}/events", headers=alice.headers), USER_CAP)
    assert_stream_refused(
        client.post("/api/chat/stream", json={"message": "hi"}, headers=alice.headers), USER_CAP
    )
    assert_openai_stream_refused(
        client.post("/v1/chat/completions", json=CHAT, headers=api_key), USER_CAP
    )
    legacy = {"model": "light", "prompt": "hello", "stream": True}
    assert_openai_stream_refused(
        client.post("/v1/completions", json=legacy, headers=api_key), USER_CAP
    )
    response = {"model": "light", "input": "hi", "stream": True}
    assert_openai_stream_refused(
        client.post("/v1/responses", json=response, headers=api_key), USER_CAP
    )
    assert_openai_stream_refused(
        client.get(f"/v1/responses/{background}?stream=true", headers=api_key), USER_CAP
    )
    # Refused before anything was submitted; the refusals hold no slot.
    assert (count(app, Job), count(app, Conversation)) == (jobs_before, conversations_before)
    assert open_leases(app, redis_client, alice.id) == USER_CAP

    # Other requests go on, and the cap is alice's alone.
    assert client.get(f"/api/jobs/{job_id}", headers=alice.headers).status_code == 200
    bob = register_and_login(client, "bob@example.com")
    follow(client, bob.headers, queued_job(client, bob.headers), opened).close()

    # Closing a stream gives its slot back at once.
    completion.close()
    assert open_leases(app, redis_client, alice.id) == USER_CAP - 1
    resumed = client.get(f"/v1/responses/{background}?stream=true", headers=api_key)
    stream(resumed, opened).close()
    events.close()
    assert open_leases(app, redis_client, alice.id) == 0


def test_an_admin_has_the_higher_cap(capped, app, client, redis_client, opened):
    admin = make_admin(app, client, "root@example.com")
    capped_client = capped.test_client()
    job_id = queued_job(capped_client, admin.headers)

    for _ in range(ADMIN_CAP):
        follow(capped_client, admin.headers, job_id, opened)
    refused = capped_client.get(f"/api/jobs/{job_id}/events", headers=admin.headers)

    assert_stream_refused(refused, ADMIN_CAP)
    close_all(opened)
    assert open_leases(app, redis_client, admin.id) == 0


def test_a_request_that_fails_after_taking_a_slot_gives_it_back(
    capped, app, alice, redis_client, opened
):
    client = capped.test_client()
    unknown = {"message": "hi", "conversation_id": str(uuid.uuid4())}

    for _ in range(USER_CAP + 1):  # each took a slot, then failed: none is kept
        failed = client.post("/api/chat/stream", json=unknown, headers=alice.headers)
        not_a_stream(failed)
        error_of(failed, 404, "not_found")

    assert open_leases(app, redis_client, alice.id) == 0
    job_id = queued_job(client, alice.headers)
    for _ in range(USER_CAP):
        follow(client, alice.headers, job_id, opened)


def test_a_stream_dropped_without_being_closed_gives_its_slot_back(
    capped, app, alice, redis_client
):
    client = capped.test_client()
    job_id = queued_job(client, alice.headers)

    client.get(f"/api/jobs/{job_id}/events", headers=alice.headers)  # dropped at once

    assert open_leases(app, redis_client, alice.id) == 0


def test_no_cap_counts_nothing(monkeypatch, app, alice, redis_client, opened):
    client = app_with(monkeypatch, MAX_OPEN_STREAMS_PER_USER=0, SSE_HEARTBEAT_SECONDS=0.05)
    client = client.test_client()
    job_id = queued_job(client, alice.headers)

    for _ in range(5):
        follow(client, alice.headers, job_id, opened)

    assert open_leases(app, redis_client, alice.id) == 0
