"""Your profile, your password and your API keys (/api/user/...)."""

from __future__ import annotations

import hashlib
import secrets
import uuid

import pytest
from sqlalchemy import select

from core.db import db
from core.models import ApiKey
from tests.conftest import Account
from tests.helpers import (
    assert_unauthorized,
    bearer,
    error_of,
    field_messages,
    login,
    refresh,
)

NEW_PASSWORD = "a brand new passphrase"
KEY_FIELDS = {"id", "name", "prefix", "created_at", "last_used_at"}


# --- helpers ------------------------------------------------------------------------


def me(client, headers: dict[str, str]):
    return client.get("/api/user/me", headers=headers)


def put_me(client, headers: dict[str, str], body: dict):
    return client.put("/api/user/me", json=body, headers=headers)


def put_password(client, account: Account, current: str, new: str):
    return client.put(
        "/api/user/me/password",
        json={"current_password": current, "new_password": new},
        headers=account.headers,
    )


def x_api_key(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def create_key(client, headers: dict[str, str], name: str = "laptop") -> dict:
    response = client.post("/api/user/api-keys", json={"name": name}, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def list_keys(client, headers: dict[str, str]) -> list[dict]:
    response = client.get("/api/user/api-keys", headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def delete_key(client, headers: dict[str, str], key_id: str):
    return client.delete(f"/api/user/api-keys/{key_id}", headers=headers)


def set_active(client, admin: Account, user_id: str, active: bool) -> None:
    response = client.patch(
        f"/api/admin/users/{user_id}", json={"is_active": active}, headers=admin.headers
    )
    assert response.status_code == 200, response.get_json()


def stored_keys(app) -> list[ApiKey]:
    with app.app_context():
        return list(db.session.scalars(select(ApiKey)))


@pytest.fixture
def alice_key(client, alice) -> str:
    return create_key(client, alice.headers)["key"]


# --- GET/PUT /api/user/me -------------------------------------------------------------


def test_get_me_returns_the_profile_without_secrets(client, alice):
    response = me(client, alice.headers)

    assert response.status_code == 200
    body = response.get_json()
    assert body["id"] == alice.id
    assert body["email"] == alice.email
    assert body["name"] == "Alice"
    assert body["role"] == "user"
    assert body["is_active"] is True
    assert not {"password", "password_hash", "token_version"} & set(body)


def test_put_me_changes_the_name(client, alice):
    response = put_me(client, alice.headers, {"name": "New"})

    assert response.status_code == 200
    assert response.get_json()["name"] == "New"
    assert me(client, alice.headers).get_json()["name"] == "New"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"role": "admin"}, id="role"),
        pytest.param({"email": "mallory@example.com"}, id="email"),
        pytest.param({"is_active": False}, id="is_active"),
        pytest.param({"name": "New", "role": "admin"}, id="name-and-role"),
        pytest.param({"name": "New", "email": "mallory@example.com"}, id="name-and-email"),
    ],
)
def test_put_me_refuses_protected_fields_and_changes_nothing(client, alice, body):
    before = me(client, alice.headers).get_json()

    error = error_of(put_me(client, alice.headers, body), 422, "validation_error")

    for name in set(body) - {"name"}:
        assert field_messages(error, name)
    after = me(client, alice.headers).get_json()
    assert after == before
    assert after["role"] == "user" and after["is_active"] is True


@pytest.mark.parametrize("name", ["", "   ", "\t\n"])
def test_put_me_refuses_a_blank_name(client, alice, name):
    error = error_of(put_me(client, alice.headers, {"name": name}), 422, "validation_error")

    assert field_messages(error, "name")
    assert me(client, alice.headers).get_json()["name"] == "Alice"


@pytest.mark.parametrize("name", ["  New  ", " New", "New "])
def test_put_me_trims_surrounding_whitespace_from_the_name(client, alice, name):
    response = put_me(client, alice.headers, {"name": name})

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["name"] == "New"


def test_put_me_works_with_an_api_key(client, alice, alice_key):
    response = put_me(client, x_api_key(alice_key), {"name": "From a key"})

    assert response.status_code == 200
    assert me(client, alice.headers).get_json()["name"] == "From a key"


def test_put_me_needs_authentication(client, alice):
    assert_unauthorized(put_me(client, {}, {"name": "New"}))


# --- PUT /api/user/me/password --------------------------------------------------------


def test_change_password_refuses_a_wrong_current_password(client, alice):
    response = put_password(client, alice, "not the current one", NEW_PASSWORD)

    error = error_of(response, 422, "validation_error")
    assert field_messages(error, "current_password")
    assert login(client, alice.email, alice.password).status_code == 200
    assert me(client, alice.headers).status_code == 200


@pytest.mark.parametrize(
    "new_password",
    [
        pytest.param("short", id="too-short"),
        pytest.param("é" * 40, id="over-72-bytes"),
        pytest.param(" " * 10, id="blank"),
    ],
)
def test_change_password_refuses_a_bad_new_password(client, alice, new_password):
    error = error_of(put_password(client, alice, alice.password, new_password), 422)

    assert field_messages(error, "new_password")
    assert login(client, alice.email, alice.password).status_code == 200
    assert me(client, alice.headers).status_code == 200


def change_password(client, account: Account) -> dict:
    response = put_password(client, account, account.password, NEW_PASSWORD)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_change_password_returns_a_new_token_pair(client, alice):
    pair = change_password(client, alice)

    assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert pair["token_type"] == "Bearer"
    assert pair["access_token"] != alice.access_token
    assert pair["refresh_token"] != alice.refresh_token


def test_change_password_revokes_the_old_tokens(client, alice):
    change_password(client, alice)

    assert_unauthorized(me(client, alice.headers))
    assert_unauthorized(refresh(client, alice.refresh_token))


def test_change_password_revokes_every_other_session_too(client, alice):
    other_session = login(client, alice.email, alice.password).get_json()

    change_password(client, alice)

    assert_unauthorized(me(client, bearer(other_session["access_token"])))
    assert_unauthorized(refresh(client, other_session["refresh_token"]))


def test_tokens_from_a_password_change_work(client, alice):
    pair = change_password(client, alice)

    assert me(client, bearer(pair["access_token"])).get_json()["id"] == alice.id
    assert refresh(client, pair["refresh_token"]).status_code == 200


def test_change_password_switches_the_login_password(client, alice):
    change_password(client, alice)

    assert_unauthorized(login(client, alice.email, alice.password))
    assert login(client, alice.email, NEW_PASSWORD).status_code == 200


def test_api_keys_keep_working_after_a_password_change(client, alice, alice_key):
    change_password(client, alice)

    assert me(client, x_api_key(alice_key)).get_json()["id"] == alice.id


def test_guessing_the_current_password_is_rate_limited(client, alice):
    for _ in range(5):
        error_of(put_password(client, alice, "a wrong guess", NEW_PASSWORD), 422)

    response = put_password(client, alice, "another wrong guess", NEW_PASSWORD)

    error_of(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) > 0
    assert login(client, alice.email, alice.password).status_code == 200


def test_change_password_needs_authentication(client, alice):
    response = client.put(
        "/api/user/me/password",
        json={"current_password": alice.password, "new_password": NEW_PASSWORD},
    )

    assert_unauthorized(response)
    assert login(client, alice.email, alice.password).status_code == 200


# --- creating and listing API keys ----------------------------------------------------


def test_create_api_key_returns_the_secret_once(client, alice):
    response = client.post("/api/user/api-keys", json={"name": "laptop"}, headers=alice.headers)

    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {*KEY_FIELDS, "key"}
    assert body["name"] == "laptop"
    assert body["key"].startswith("gw_")
    assert len(body["key"]) >= 35
    assert body["prefix"].startswith("gw_")
    assert body["key"].startswith(body["prefix"])
    assert len(body["prefix"]) < len(body["key"])
    assert body["last_used_at"] is None
    uuid.UUID(body["id"])


def test_each_api_key_is_different(client, alice):
    first, second = create_key(client, alice.headers), create_key(client, alice.headers)

    assert first["key"] != second["key"]
    assert first["id"] != second["id"]


def test_list_api_keys_shows_metadata_and_never_the_secret(client, alice):
    created = create_key(client, alice.headers, "laptop")

    response = client.get("/api/user/api-keys", headers=alice.headers)

    assert response.status_code == 200
    [listed] = response.get_json()
    assert set(listed) == KEY_FIELDS
    assert listed["id"] == created["id"]
    assert listed["name"] == "laptop"
    assert listed["prefix"] == created["prefix"]
    assert listed["created_at"] == created["created_at"]
    assert listed["last_used_at"] is None
    text = response.get_data(as_text=True)
    assert created["key"] not in text
    assert hashlib.sha256(created["key"].encode()).hexdigest() not in text


def test_list_api_keys_shows_only_your_own(client, alice, bob):
    create_key(client, alice.headers, "alice's")
    create_key(client, bob.headers, "bob's")

    assert [key["name"] for key in list_keys(client, alice.headers)] == ["alice's"]
    assert [key["name"] for key in list_keys(client, bob.headers)] == ["bob's"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="missing"),
        pytest.param({"name": "   "}, id="blank"),
        pytest.param({"name": "x" * 101}, id="too-long"),
        pytest.param({"name": "ok", "key": "gw_" + "a" * 43}, id="chosen-secret"),
    ],
)
def test_create_api_key_refuses_invalid_input(client, alice, body):
    response = client.post("/api/user/api-keys", json=body, headers=alice.headers)

    error_of(response, 422, "validation_error")
    assert list_keys(client, alice.headers) == []


def test_create_api_key_trims_the_name(client, alice):
    response = client.post("/api/user/api-keys", json={"name": " laptop "}, headers=alice.headers)

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["name"] == "laptop"


def test_create_api_key_needs_authentication(client):
    assert_unauthorized(client.post("/api/user/api-keys", json={"name": "laptop"}))


def test_the_21st_api_key_is_refused(app, client, alice):
    assert app.config["MAX_API_KEYS_PER_USER"] == 20
    keys = [create_key(client, alice.headers, f"key {number}") for number in range(20)]

    response = client.post(
        "/api/user/api-keys", json={"name": "one too many"}, headers=alice.headers
    )

    error_of(response, 409, "conflict")
    assert len(list_keys(client, alice.headers)) == 20
    # Deleting one makes room again.
    assert delete_key(client, alice.headers, keys[0]["id"]).status_code == 204
    create_key(client, alice.headers, "replacement")


# --- authenticating with an API key ---------------------------------------------------


@pytest.mark.parametrize(
    "headers_for",
    [
        pytest.param(lambda key: {"X-API-Key": key}, id="x-api-key"),
        pytest.param(lambda key: {"Authorization": f"Bearer {key}"}, id="authorization-bearer"),
    ],
)
def test_an_api_key_authenticates(client, alice, alice_key, headers_for):
    response = me(client, headers_for(alice_key))

    assert response.status_code == 200
    assert response.get_json()["id"] == alice.id


def test_last_used_at_is_set_when_the_key_is_used(client, alice, alice_key):
    assert list_keys(client, alice.headers)[0]["last_used_at"] is None

    assert me(client, x_api_key(alice_key)).status_code == 200

    [listed] = list_keys(client, alice.headers)
    assert listed["last_used_at"] is not None
    assert listed["last_used_at"] >= listed["created_at"]


def test_unknown_key_of_the_right_shape_is_refused(client, alice, alice_key):
    lookalike = "gw_" + secrets.token_urlsafe(32)

    assert_unauthorized(me(client, x_api_key(lookalike)), "invalid_api_key")
    assert_unauthorized(me(client, bearer(lookalike)), "invalid_api_key")


def test_a_key_differing_in_one_character_is_refused(client, alice_key):
    last = "A" if alice_key[-1] != "A" else "B"

    assert_unauthorized(me(client, x_api_key(alice_key[:-1] + last)), "invalid_api_key")


def test_the_display_prefix_alone_is_refused(client, alice):
    created = create_key(client, alice.headers)

    assert_unauthorized(me(client, x_api_key(created["prefix"])))


def test_a_deactivated_users_api_key_is_refused(client, alice, alice_key, admin):
    set_active(client, admin, alice.id, False)

    assert_unauthorized(me(client, x_api_key(alice_key)), "invalid_api_key")
    assert_unauthorized(me(client, bearer(alice_key)), "invalid_api_key")


def test_a_reactivated_users_api_key_works_again(client, alice, alice_key, admin):
    set_active(client, admin, alice.id, False)
    set_active(client, admin, alice.id, True)

    assert me(client, x_api_key(alice_key)).status_code == 200


def test_a_users_api_key_is_forbidden_on_admin_endpoints(client, alice_key):
    response = client.get("/api/admin/users", headers=x_api_key(alice_key))

    error_of(response, 403, "forbidden")


def test_an_admins_api_key_carries_the_admin_role(client, admin, alice):
    admin_key = create_key(client, admin.headers)["key"]

    response = client.get("/api/admin/users", headers=x_api_key(admin_key))

    assert response.status_code == 200
    emails = {user["email"] for user in response.get_json()["items"]}
    assert {admin.email, alice.email} <= emails


def test_a_key_follows_its_users_current_role(client, alice, alice_key, admin):
    promote = client.patch(
        f"/api/admin/users/{alice.id}", json={"role": "admin"}, headers=admin.headers
    )
    assert promote.status_code == 200

    assert client.get("/api/admin/users", headers=x_api_key(alice_key)).status_code == 200


INJECTION_VALUES = [
    pytest.param("' OR 1=1 --", id="sql-or"),
    pytest.param("gw_' OR '1'='1", id="sql-after-prefix"),
    pytest.param("gw_x'); DROP TABLE api_keys; --", id="sql-drop"),
    pytest.param("gw_" + "%" * 40, id="like-wildcards"),
    pytest.param("gw_" + "a" * 10_240, id="10kb-with-prefix"),
    pytest.param("x" * 10_240, id="10kb"),
    pytest.param("gw_" + "é" * 43, id="unicode-latin"),
    pytest.param("gw_🔑" * 20, id="unicode-emoji"),
    pytest.param("gw_\u202eabcdefghijklmnopqrstuvwxyz0123456789", id="unicode-bidi"),
    pytest.param("gw_\x00" + "a" * 40, id="nul-byte"),
    pytest.param("", id="empty"),
    pytest.param("gw_", id="prefix-only"),
]


@pytest.mark.parametrize("value", INJECTION_VALUES)
def test_injection_shaped_x_api_key_is_a_json_401(client, alice, alice_key, value):
    assert_unauthorized(me(client, x_api_key(value)))


@pytest.mark.parametrize("value", INJECTION_VALUES)
def test_injection_shaped_bearer_credential_is_a_json_401(client, alice, alice_key, value):
    assert_unauthorized(me(client, {"Authorization": f"Bearer {value}"}))


def test_api_keys_survive_injection_attempts(app, client, alice, alice_key):
    for value in ("' OR 1=1 --", "gw_x'); DROP TABLE api_keys; --"):
        me(client, x_api_key(value))

    assert len(stored_keys(app)) == 1
    assert me(client, x_api_key(alice_key)).status_code == 200


# --- deleting API keys ----------------------------------------------------------------


def test_deleted_key_stops_working_at_once_and_leaves_the_list(client, alice):
    created = create_key(client, alice.headers)
    assert me(client, x_api_key(created["key"])).status_code == 200

    response = delete_key(client, alice.headers, created["id"])

    assert response.status_code == 204
    assert response.get_data() == b""
    assert_unauthorized(me(client, x_api_key(created["key"])), "invalid_api_key")
    assert_unauthorized(me(client, bearer(created["key"])), "invalid_api_key")
    assert list_keys(client, alice.headers) == []


def test_deleting_a_key_leaves_the_others_working(client, alice):
    doomed, kept = create_key(client, alice.headers, "doomed"), create_key(client, alice.headers)

    assert delete_key(client, alice.headers, doomed["id"]).status_code == 204

    assert me(client, x_api_key(kept["key"])).status_code == 200
    assert [key["id"] for key in list_keys(client, alice.headers)] == [kept["id"]]


def test_deleting_a_key_twice_is_404(client, alice):
    created = create_key(client, alice.headers)
    assert delete_key(client, alice.headers, created["id"]).status_code == 204

    error_of(delete_key(client, alice.headers, created["id"]), 404, "not_found")


def test_cannot_delete_another_users_key(client, alice, bob):
    bobs = create_key(client, bob.headers)

    error_of(delete_key(client, alice.headers, bobs["id"]), 404, "not_found")

    assert me(client, x_api_key(bobs["key"])).get_json()["id"] == bob.id
    assert [key["id"] for key in list_keys(client, bob.headers)] == [bobs["id"]]


def test_deleting_an_unknown_key_is_404(client, alice):
    error_of(delete_key(client, alice.headers, str(uuid.uuid4())), 404, "not_found")


@pytest.mark.parametrize("key_id", ["not-a-uuid", "123", "' OR 1=1 --", "gw_abc"])
def test_deleting_with_a_malformed_id_is_404(client, alice, key_id):
    error_of(delete_key(client, alice.headers, key_id), 404, "not_found")


def test_deleting_a_key_needs_authentication(client, alice):
    created = create_key(client, alice.headers)

    assert_unauthorized(client.delete(f"/api/user/api-keys/{created['id']}"))
    assert me(client, x_api_key(created["key"])).status_code == 200


def test_a_key_can_delete_itself(client, alice):
    created = create_key(client, alice.headers)

    assert delete_key(client, x_api_key(created["key"]), created["id"]).status_code == 204
    assert_unauthorized(me(client, x_api_key(created["key"])))


# --- storage --------------------------------------------------------------------------


def test_database_stores_only_the_sha256_of_the_key(app, client, alice):
    created = create_key(client, alice.headers)
    secret = created["key"]

    [row] = stored_keys(app)

    assert str(row.id) == created["id"]
    assert row.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert row.prefix == created["prefix"]
    for column in ApiKey.__table__.columns:
        value = getattr(row, column.key)
        assert secret not in str(value), column.key


def test_revoked_keys_stay_stored_as_hashes_only(app, client, alice):
    created = create_key(client, alice.headers)
    delete_key(client, alice.headers, created["id"])

    [row] = stored_keys(app)

    assert row.revoked_at is not None
    assert row.key_hash == hashlib.sha256(created["key"].encode()).hexdigest()
