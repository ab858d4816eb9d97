"""Conversations: create, list, read, rename, delete, always scoped to their owner."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from api.services import conversations as conversations_service
from core.db import db
from core.models import Message
from tests.helpers import error_of

BASE = "/api/conversations/"


def url(conversation_id) -> str:
    return f"{BASE}{conversation_id}"


def create(client, account, title: str | None = None) -> dict:
    body = {} if title is None else {"title": title}
    response = client.post(BASE, json=body, headers=account.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def add_message(app, account, conversation_id: str, role: str, content: str, **extra):
    with app.app_context():
        conversations_service.append_message(
            uuid.UUID(account.id), uuid.UUID(conversation_id), role=role, content=content, **extra
        )


def message_count(app, conversation_id: str) -> int:
    with app.app_context():
        query = select(func.count()).where(Message.conversation_id == uuid.UUID(conversation_id))
        return db.session.scalar(query)


def api_key_for(client, account) -> str:
    response = client.post("/api/user/api-keys", json={"name": "k"}, headers=account.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["key"]


# --- create ----------------------------------------------------------------------------


def test_create_with_title_returns_201_and_the_conversation(client, alice):
    response = client.post(BASE, json={"title": "Trip plans"}, headers=alice.headers)

    assert response.status_code == 201
    body = response.get_json()
    assert body["title"] == "Trip plans"
    assert uuid.UUID(body["id"])
    assert body["created_at"] and body["updated_at"]


def test_create_without_title_uses_the_default_title(client, alice):
    assert create(client, alice)["title"] == "New conversation"


def test_create_accepts_and_trims_a_title_with_surrounding_spaces(client, alice):
    assert create(client, alice, "  Spaced out  ")["title"] == "Spaced out"


def test_create_accepts_a_title_of_exactly_200_characters(client, alice):
    assert create(client, alice, "t" * 200)["title"] == "t" * 200


@pytest.mark.parametrize("title", ["", "   ", "t" * 201], ids=["empty", "blank", "too-long"])
def test_create_with_invalid_title_is_422_naming_the_field(client, alice, title):
    response = client.post(BASE, json={"title": title}, headers=alice.headers)

    error = error_of(response, 422, "validation_error")
    assert "title" in error["details"]["json"]


def test_create_with_unknown_field_is_422(client, alice):
    body = {"title": "x", "user_id": str(uuid.uuid4())}
    response = client.post(BASE, json=body, headers=alice.headers)

    error = error_of(response, 422, "validation_error")
    assert "user_id" in error["details"]["json"]


def test_create_without_credentials_is_401(client, app):
    response = client.post(BASE, json={"title": "x"})

    error_of(response, 401, "unauthorized")


# --- list ------------------------------------------------------------------------------


def test_list_returns_the_paginated_envelope(client, alice):
    create(client, alice, "only")

    body = client.get(BASE, headers=alice.headers).get_json()

    assert set(body) == {"items", "total", "page", "page_size"}
    assert body["total"] == 1
    assert body["page"] == 1
    assert body["page_size"] == 20
    assert [item["title"] for item in body["items"]] == ["only"]


def test_list_is_most_recently_updated_first(client, alice):
    oldest = create(client, alice, "first")
    create(client, alice, "second")
    create(client, alice, "third")

    titles = [item["title"] for item in client.get(BASE, headers=alice.headers).get_json()["items"]]
    assert titles == ["third", "second", "first"]

    renamed = client.patch(
        url(oldest["id"]), json={"title": "first, renamed"}, headers=alice.headers
    )
    assert renamed.status_code == 200

    titles = [item["title"] for item in client.get(BASE, headers=alice.headers).get_json()["items"]]
    assert titles == ["first, renamed", "third", "second"]


def test_a_new_message_moves_its_conversation_to_the_top(app, client, alice):
    oldest = create(client, alice, "first")
    second = create(client, alice, "second")

    add_message(app, alice, oldest["id"], "user", "hello")

    items = client.get(BASE, headers=alice.headers).get_json()["items"]
    assert [item["id"] for item in items] == [oldest["id"], second["id"]]


def test_list_pages_through_the_conversations(client, alice):
    for title in ["a", "b", "c", "d", "e"]:
        create(client, alice, title)

    pages = [
        client.get(f"{BASE}?page={page}&page_size=2", headers=alice.headers).get_json()
        for page in (1, 2, 3)
    ]

    assert [[item["title"] for item in page["items"]] for page in pages] == [
        ["e", "d"],
        ["c", "b"],
        ["a"],
    ]
    assert all(page["total"] == 5 and page["page_size"] == 2 for page in pages)
    assert [page["page"] for page in pages] == [1, 2, 3]


def test_list_page_beyond_the_end_is_empty_not_an_error(client, alice):
    create(client, alice, "a")

    body = client.get(f"{BASE}?page=9", headers=alice.headers).get_json()

    assert body["items"] == []
    assert body["total"] == 1


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("page_size=101", "page_size"),
        ("page_size=0", "page_size"),
        ("page=0", "page"),
        ("page=-1", "page"),
        ("page=abc", "page"),
        ("page_size=1.5", "page_size"),
        ("sort=title", "sort"),
    ],
)
def test_list_with_invalid_query_is_422_naming_the_parameter(client, alice, query, field):
    response = client.get(f"{BASE}?{query}", headers=alice.headers)

    error = error_of(response, 422, "validation_error")
    assert field in error["details"]["query"]


def test_list_accepts_the_maximum_page_size(client, alice):
    response = client.get(f"{BASE}?page_size=100", headers=alice.headers)

    assert response.status_code == 200
    assert response.get_json()["page_size"] == 100


def test_list_never_shows_other_users_conversations(client, alice, bob):
    create(client, alice, "alice's secret")
    create(client, bob, "bob's own")

    body = client.get(BASE, headers=bob.headers).get_json()

    assert body["total"] == 1
    assert [item["title"] for item in body["items"]] == ["bob's own"]
    assert "alice's secret" not in client.get(BASE, headers=bob.headers).get_data(as_text=True)


# --- read ------------------------------------------------------------------------------


def test_get_returns_the_conversation_with_messages_oldest_first(app, client, alice):
    conversation = create(client, alice, "chat")
    add_message(app, alice, conversation["id"], "user", "What is 2+2?")
    add_message(
        app,
        alice,
        conversation["id"],
        "assistant",
        "4",
        model="llama3",
        tier="light",
        prompt_tokens=7,
        completion_tokens=1,
    )
    add_message(app, alice, conversation["id"], "user", "Thanks")

    response = client.get(url(conversation["id"]), headers=alice.headers)

    assert response.status_code == 200
    body = response.get_json()
    assert body["id"] == conversation["id"]
    assert body["title"] == "chat"
    assert [m["content"] for m in body["messages"]] == ["What is 2+2?", "4", "Thanks"]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    answer = body["messages"][1]
    assert answer["model"] == "llama3"
    assert answer["tier"] == "light"
    assert answer["prompt_tokens"] == 7
    assert answer["completion_tokens"] == 1


def test_get_a_conversation_without_messages_has_an_empty_list(client, alice):
    conversation = create(client, alice, "empty")

    body = client.get(url(conversation["id"]), headers=alice.headers).get_json()

    assert body["messages"] == []


def test_get_an_unknown_id_is_404(client, alice):
    response = client.get(url(uuid.uuid4()), headers=alice.headers)

    error_of(response, 404, "not_found")


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "123", "00000000-0000-0000-0000-00000000000g"])
def test_a_malformed_id_is_404(client, alice, bad_id):
    for method in ("get", "patch", "delete"):
        kwargs = {"json": {"title": "x"}} if method == "patch" else {}
        response = getattr(client, method)(url(bad_id), headers=alice.headers, **kwargs)

        error_of(response, 404, "not_found")


# --- rename ----------------------------------------------------------------------------


def test_patch_renames_the_conversation(client, alice):
    conversation = create(client, alice, "old name")

    response = client.patch(
        url(conversation["id"]), json={"title": "new name"}, headers=alice.headers
    )

    assert response.status_code == 200
    assert response.get_json()["title"] == "new name"
    fetched = client.get(url(conversation["id"]), headers=alice.headers).get_json()
    assert fetched["title"] == "new name"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"title": ""},
        {"title": "  "},
        {"title": "t" * 201},
        {"title": 5},
        {"title": "x", "a": 1},
    ],
    ids=["missing", "empty", "blank", "too-long", "not-a-string", "unknown-field"],
)
def test_patch_with_invalid_body_is_422_and_changes_nothing(client, alice, body):
    conversation = create(client, alice, "keep me")

    response = client.patch(url(conversation["id"]), json=body, headers=alice.headers)

    error_of(response, 422, "validation_error")
    fetched = client.get(url(conversation["id"]), headers=alice.headers).get_json()
    assert fetched["title"] == "keep me"


# --- delete ----------------------------------------------------------------------------


def test_delete_is_204_then_the_conversation_is_gone(client, alice):
    conversation = create(client, alice, "bye")

    response = client.delete(url(conversation["id"]), headers=alice.headers)

    assert response.status_code == 204
    assert response.get_data() == b""
    error_of(client.get(url(conversation["id"]), headers=alice.headers), 404, "not_found")
    assert client.get(BASE, headers=alice.headers).get_json()["total"] == 0


def test_delete_removes_the_messages_from_the_database(app, client, alice):
    conversation = create(client, alice, "bye")
    add_message(app, alice, conversation["id"], "user", "one")
    add_message(app, alice, conversation["id"], "assistant", "two")
    assert message_count(app, conversation["id"]) == 2

    assert client.delete(url(conversation["id"]), headers=alice.headers).status_code == 204

    assert message_count(app, conversation["id"]) == 0


def test_delete_twice_is_404_the_second_time(client, alice):
    conversation = create(client, alice, "bye")
    assert client.delete(url(conversation["id"]), headers=alice.headers).status_code == 204

    error_of(client.delete(url(conversation["id"]), headers=alice.headers), 404, "not_found")


# --- other users' conversations (BOLA) ------------------------------------------------------


@pytest.fixture
def alices_conversation(app, client, alice) -> dict:
    """Alice's conversation with one message, as she sees it (GET /<id>)."""
    conversation = create(client, alice, "Alice's private plans")
    add_message(app, alice, conversation["id"], "user", "my secret message")
    return client.get(url(conversation["id"]), headers=alice.headers).get_json()


def assert_hidden_404(response, conversation: dict) -> None:
    error = error_of(response, 404, "not_found")
    text = response.get_data(as_text=True)
    assert conversation["id"] not in text
    assert conversation["title"] not in text
    assert "my secret message" not in text
    assert "details" not in error


def assert_unchanged(client, alice, conversation: dict) -> None:
    response = client.get(url(conversation["id"]), headers=alice.headers)
    assert response.status_code == 200
    assert response.get_json() == conversation


def test_another_user_cannot_read_a_conversation(client, alice, bob, alices_conversation):
    response = client.get(url(alices_conversation["id"]), headers=bob.headers)

    assert_hidden_404(response, alices_conversation)
    assert_unchanged(client, alice, alices_conversation)


def test_another_user_cannot_rename_a_conversation(client, alice, bob, alices_conversation):
    response = client.patch(
        url(alices_conversation["id"]), json={"title": "pwned"}, headers=bob.headers
    )

    assert_hidden_404(response, alices_conversation)
    assert_unchanged(client, alice, alices_conversation)


def test_another_user_cannot_delete_a_conversation(app, client, alice, bob, alices_conversation):
    response = client.delete(url(alices_conversation["id"]), headers=bob.headers)

    assert_hidden_404(response, alices_conversation)
    assert_unchanged(client, alice, alices_conversation)
    assert message_count(app, alices_conversation["id"]) == 1


def test_someone_elses_conversation_looks_exactly_like_a_missing_one(
    client, bob, alices_conversation
):
    theirs = client.get(url(alices_conversation["id"]), headers=bob.headers).get_json()["error"]
    missing = client.get(url(uuid.uuid4()), headers=bob.headers).get_json()["error"]

    assert {k: v for k, v in theirs.items() if k != "request_id"} == {
        k: v for k, v in missing.items() if k != "request_id"
    }


def test_another_users_api_key_cannot_reach_a_conversation(client, bob, alices_conversation):
    key = api_key_for(client, bob)

    response = client.get(url(alices_conversation["id"]), headers={"X-API-Key": key})

    assert_hidden_404(response, alices_conversation)


# --- API keys ----------------------------------------------------------------------------


def test_conversations_work_with_an_api_key(client, alice):
    key = api_key_for(client, alice)
    headers = {"X-API-Key": key}

    created = client.post(BASE, json={"title": "via key"}, headers=headers)
    assert created.status_code == 201
    conversation_id = created.get_json()["id"]

    listed = client.get(BASE, headers=headers).get_json()
    assert [item["id"] for item in listed["items"]] == [conversation_id]
    renamed = client.patch(url(conversation_id), json={"title": "renamed"}, headers=headers)
    assert renamed.get_json()["title"] == "renamed"
    # The key acts as its owner: the JWT sees the same conversation.
    assert client.get(url(conversation_id), headers=alice.headers).status_code == 200
    assert client.delete(url(conversation_id), headers=headers).status_code == 204


def test_an_api_key_also_works_as_a_bearer_token(client, alice):
    key = api_key_for(client, alice)

    response = client.post(
        BASE, json={"title": "bearer key"}, headers={"Authorization": f"Bearer {key}"}
    )

    assert response.status_code == 201


def test_an_unknown_api_key_is_401(client, alice):
    response = client.get(BASE, headers={"X-API-Key": "gw_" + "x" * 43})

    error_of(response, 401, "invalid_api_key")
