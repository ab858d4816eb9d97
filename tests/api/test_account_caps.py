"""Caps on what one account stores: conversations (409), batches active (429) and stored (409).

Each test builds an app with small caps (the suite's defaults are generous so that other
tests never meet one). No worker runs: submitted jobs and batches just stay queued.
Stream caps are in test_stream_caps.py.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest
from sqlalchemy import func, select

from core.db import db
from core.models import Batch, Conversation, Job
from tests.conftest import make_admin
from tests.helpers import app_with, error_of

pytestmark = pytest.mark.usefixtures("clean_after")  # the queued jobs go with the test

CONVERSATIONS = "/api/conversations/"
BATCHES = "/api/batches/"


def count(app, model, user_id: str | None = None) -> int:
    with app.app_context():
        query = select(func.count()).select_from(model)
        if user_id is not None:
            query = query.where(model.user_id == uuid.UUID(user_id))
        return db.session.scalar(query)


def new_conversation(client, account, title: str = "chat"):
    return client.post(CONVERSATIONS, json={"title": title}, headers=account.headers)


def assert_conversations_full(response, cap: int) -> dict:
    error = error_of(response, 409, "too_many_conversations")
    assert error["details"] == {"conversations": cap, "limit": cap}
    assert f"the limit is {cap}" in error["message"]
    assert "DELETE /api/conversations/" in error["message"]  # how to make room
    return error


def new_batch(client, account, size: int = 2):
    requests = [{"custom_id": f"q{n}", "message": f"question {n}"} for n in range(size)]
    return client.post(BATCHES, json={"requests": requests}, headers=account.headers)


def accepted_batch(client, account) -> str:
    response = new_batch(client, account)
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def cancelled(client, account, batch_id: str) -> None:
    response = client.post(f"{BATCHES}{batch_id}/cancel", headers=account.headers)
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["status"] == "cancelled"  # nothing ran: it ends at once


def assert_too_many_active(response, cap: int) -> dict:
    error = error_of(response, 429, "too_many_active_batches")
    assert error["details"] == {"active": cap, "limit": cap}
    assert f"the limit is {cap}" in error["message"]
    assert "/cancel" in error["message"]
    assert int(response.headers["Retry-After"]) > 0
    return error


def assert_too_many_stored(response, cap: int) -> dict:
    error = error_of(response, 409, "too_many_batches")
    assert error["details"] == {"stored": cap, "limit": cap}
    assert f"the limit is {cap}" in error["message"]
    assert "DELETE /api/batches/" in error["message"]
    return error


# --- conversations -------------------------------------------------------------------------


def test_the_conversation_past_the_cap_is_409_until_one_is_deleted(monkeypatch, app, alice):
    client = app_with(monkeypatch, MAX_CONVERSATIONS_PER_USER=3).test_client()
    ids = [new_conversation(client, alice, f"chat {n}").get_json()["id"] for n in range(3)]

    assert_conversations_full(new_conversation(client, alice), 3)
    assert count(app, Conversation, alice.id) == 3

    deleted = client.delete(f"{CONVERSATIONS}{ids[0]}", headers=alice.headers)
    assert deleted.status_code == 204
    assert new_conversation(client, alice).status_code == 201


def test_a_message_that_would_start_a_conversation_past_the_cap_stores_nothing(
    monkeypatch, app, alice, bob
):
    client = app_with(monkeypatch, MAX_CONVERSATIONS_PER_USER=1).test_client()
    # A message without conversation_id starts one: this is the one alice may have.
    first = client.post("/api/jobs", json={"message": "hello"}, headers=alice.headers)
    assert first.status_code == 202, first.get_json()
    jobs_before = count(app, Job)

    for path in ("/api/jobs", "/api/chat/", "/api/chat/stream"):
        response = client.post(path, json={"message": "again"}, headers=alice.headers)
        assert response.mimetype == "application/json", path  # not a stream
        assert_conversations_full(response, 1)
    assert (count(app, Job), count(app, Conversation, alice.id)) == (jobs_before, 1)

    # Continuing the conversation she has stores no new one; bob has a cap of his own.
    conversation_id = first.get_json()["conversation_id"]
    more = {"message": "and then?", "conversation_id": conversation_id}
    assert client.post("/api/jobs", json=more, headers=alice.headers).status_code == 202
    assert new_conversation(client, bob).status_code == 201


def test_an_admin_may_store_more_conversations(monkeypatch, app, client):
    admin = make_admin(app, client, "root@example.com")
    capped = app_with(
        monkeypatch, MAX_CONVERSATIONS_PER_USER=1, MAX_CONVERSATIONS_PER_ADMIN=3
    ).test_client()

    for n in range(3):
        assert new_conversation(capped, admin, f"chat {n}").status_code == 201
    assert_conversations_full(new_conversation(capped, admin), 3)


def test_concurrent_creations_at_the_cap_store_exactly_the_cap(monkeypatch, app, alice):
    capped = app_with(monkeypatch, MAX_CONVERSATIONS_PER_USER=3)
    attempts = 12
    start = Barrier(attempts)

    def create(number: int) -> int:
        client = capped.test_client()
        start.wait(timeout=10)  # all at once: each counts while the others insert
        return new_conversation(client, alice, f"chat {number}").status_code

    with ThreadPoolExecutor(attempts) as pool:
        statuses = list(pool.map(create, range(attempts)))

    assert sorted(statuses) == [201] * 3 + [409] * (attempts - 3)
    assert count(app, Conversation, alice.id) == 3


def test_no_cap_stores_on(monkeypatch, app, alice):
    client = app_with(monkeypatch, MAX_CONVERSATIONS_PER_USER=0).test_client()

    for n in range(5):
        assert new_conversation(client, alice, f"chat {n}").status_code == 201


# --- batches -------------------------------------------------------------------------------


def test_batch_caps_active_then_stored_and_how_to_make_room(monkeypatch, app, alice, bob):
    client = app_with(
        monkeypatch, MAX_ACTIVE_BATCHES_PER_USER=2, MAX_STORED_BATCHES_PER_USER=3
    ).test_client()
    first, second = accepted_batch(client, alice), accepted_batch(client, alice)
    jobs_before = count(app, Job)

    # Two are queued: a third must wait for one to end (or be cancelled).
    assert_too_many_active(new_batch(client, alice), 2)
    assert (count(app, Batch, alice.id), count(app, Job)) == (2, jobs_before)
    assert new_batch(client, bob).status_code == 202  # bob has caps of his own
    cancelled(client, alice, first)
    third = accepted_batch(client, alice)

    # Three are stored: waiting does not help, deleting an ended one does.
    assert_too_many_stored(new_batch(client, alice), 3)
    still_running = client.delete(f"{BATCHES}{second}", headers=alice.headers)
    assert "cancel" in error_of(still_running, 409, "conflict")["message"]
    assert client.delete(f"{BATCHES}{first}", headers=alice.headers).status_code == 204
    assert count(app, Batch, alice.id) == 2

    assert_too_many_active(new_batch(client, alice), 2)  # second and third still run
    cancelled(client, alice, third)
    assert new_batch(client, alice).status_code == 202


def test_an_admin_may_run_more_batches(monkeypatch, app, client):
    admin = make_admin(app, client, "root@example.com")
    capped = app_with(
        monkeypatch, MAX_ACTIVE_BATCHES_PER_USER=1, MAX_ACTIVE_BATCHES_PER_ADMIN=3
    ).test_client()

    for _ in range(3):
        accepted_batch(capped, admin)
    assert_too_many_active(new_batch(capped, admin), 3)


def test_concurrent_batches_at_the_cap_store_exactly_the_cap(monkeypatch, app, alice):
    capped = app_with(monkeypatch, MAX_ACTIVE_BATCHES_PER_USER=2)
    attempts = 8
    start = Barrier(attempts)

    def submit(_number: int) -> int:
        client = capped.test_client()
        start.wait(timeout=10)
        return new_batch(client, alice).status_code

    with ThreadPoolExecutor(attempts) as pool:
        statuses = list(pool.map(submit, range(attempts)))

    assert sorted(statuses) == [202] * 2 + [429] * (attempts - 2)
    assert count(app, Batch, alice.id) == 2
