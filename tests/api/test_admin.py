"""Administration of accounts: listing, role and status changes, and the create-admin CLI."""

from __future__ import annotations

import uuid

import pytest

from tests.helpers import bearer, error_of, login

USERS = "/api/admin/users"


def user_url(user_id) -> str:
    return f"{USERS}/{user_id}"


def api_key_for(client, account) -> str:
    response = client.post("/api/user/api-keys", json={"name": "k"}, headers=account.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["key"]


def list_users(client, admin, query: str = "") -> dict:
    response = client.get(f"{USERS}?{query}", headers=admin.headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def emails(page: dict) -> list[str]:
    return [item["email"] for item in page["items"]]


def patch_user(client, admin, user_id, body):
    return client.patch(user_url(user_id), json=body, headers=admin.headers)


def run_create_admin(app, *args: str):
    """The command exactly as an operator runs it, through Flask's CLI test runner."""
    return app.test_cli_runner().invoke(args=["create-admin", *args])


# --- who may call ------------------------------------------------------------------------


def test_admin_endpoints_need_authentication(client, alice):
    error_of(client.get(USERS), 401, "unauthorized")
    error_of(client.patch(user_url(alice.id), json={"role": "admin"}), 401, "unauthorized")


def test_a_normal_user_with_a_jwt_is_403(client, alice, bob):
    error_of(client.get(USERS, headers=alice.headers), 403, "forbidden")
    response = client.patch(user_url(bob.id), json={"role": "admin"}, headers=alice.headers)
    error_of(response, 403, "forbidden")


def test_a_normal_user_with_an_api_key_is_403(client, alice, bob):
    headers = {"X-API-Key": api_key_for(client, alice)}

    error_of(client.get(USERS, headers=headers), 403, "forbidden")
    response = client.patch(user_url(bob.id), json={"role": "admin"}, headers=headers)
    error_of(response, 403, "forbidden")


def test_a_normal_user_cannot_promote_themselves(client, alice):
    response = client.patch(user_url(alice.id), json={"role": "admin"}, headers=alice.headers)

    error_of(response, 403, "forbidden")
    assert client.get("/api/user/me", headers=alice.headers).get_json()["role"] == "user"


def test_a_forbidden_user_gets_403_before_body_validation(client, alice):
    response = client.patch(user_url(alice.id), json={"bogus": 1}, headers=alice.headers)

    error_of(response, 403, "forbidden")


def test_an_admin_api_key_reaches_admin_endpoints(client, admin):
    response = client.get(USERS, headers={"X-API-Key": api_key_for(client, admin)})

    assert response.status_code == 200


# --- listing -----------------------------------------------------------------------------


def test_admin_lists_every_user_newest_first(client, admin, alice, bob):
    page = list_users(client, admin)

    assert set(page) == {"items", "total", "page", "page_size"}
    assert page["total"] == 3
    assert emails(page) == ["bob@example.com", "alice@example.com", "admin@example.com"]


def test_user_listing_exposes_no_secrets(client, admin, alice):
    response = client.get(USERS, headers=admin.headers)

    item = next(i for i in response.get_json()["items"] if i["email"] == "alice@example.com")
    assert set(item) == {
        "id",
        "email",
        "name",
        "role",
        "is_active",
        "rate_limit_per_minute",
        "created_at",
        "updated_at",
    }
    assert "password" not in response.get_data(as_text=True)
    assert "$2b$" not in response.get_data(as_text=True)


def test_admin_list_paginates(client, admin, alice, bob):
    first = list_users(client, admin, "page=1&page_size=2")
    second = list_users(client, admin, "page=2&page_size=2")

    assert (first["page"], first["page_size"], first["total"]) == (1, 2, 3)
    assert len(first["items"]) == 2
    assert emails(second) == ["admin@example.com"]
    assert not set(emails(first)) & set(emails(second))


def test_admin_list_filters_by_email_substring_case_insensitively(client, admin, alice, bob):
    assert emails(list_users(client, admin, "email=ALIC")) == ["alice@example.com"]
    assert list_users(client, admin, "email=example.com")["total"] == 3
    assert list_users(client, admin, "email=nobody")["total"] == 0


@pytest.mark.parametrize("pattern", ["%", "_", "%25"])
def test_admin_email_filter_treats_like_wildcards_literally(client, admin, alice, pattern):
    assert list_users(client, admin, f"email={pattern}")["total"] == 0


def test_admin_list_filters_by_role(client, admin, alice, bob):
    assert emails(list_users(client, admin, "role=admin")) == ["admin@example.com"]
    assert emails(list_users(client, admin, "role=user")) == [
        "bob@example.com",
        "alice@example.com",
    ]


def test_admin_list_filters_by_active_status(client, admin, alice, bob):
    assert patch_user(client, admin, bob.id, {"is_active": False}).status_code == 200

    assert emails(list_users(client, admin, "is_active=false")) == ["bob@example.com"]
    assert emails(list_users(client, admin, "is_active=true")) == [
        "alice@example.com",
        "admin@example.com",
    ]


def test_admin_list_combines_filters(client, admin, alice, bob):
    page = list_users(client, admin, "role=user&is_active=true&email=bob")

    assert emails(page) == ["bob@example.com"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("role=superuser", "role"),
        ("is_active=maybe", "is_active"),
        ("page=0", "page"),
        ("page_size=101", "page_size"),
        ("page_size=ten", "page_size"),
        ("emial=bob", "emial"),
    ],
)
def test_admin_list_with_invalid_query_is_422(client, admin, query, field):
    response = client.get(f"{USERS}?{query}", headers=admin.headers)

    error = error_of(response, 422, "validation_error")
    assert field in error["details"]["query"]


# --- role changes ------------------------------------------------------------------------


def test_promoting_a_user_returns_the_updated_user(client, admin, alice):
    response = patch_user(client, admin, alice.id, {"role": "admin"})

    assert response.status_code == 200
    body = response.get_json()
    assert body["id"] == alice.id
    assert body["role"] == "admin"
    assert body["is_active"] is True


def test_a_role_change_invalidates_the_users_old_tokens(client, admin, alice):
    assert patch_user(client, admin, alice.id, {"role": "admin"}).status_code == 200

    # The change ended her login sessions.
    error_of(client.get("/api/user/me", headers=alice.headers), 401, "token_revoked")
    refreshed = client.post("/api/auth/refresh", headers=bearer(alice.refresh_token))
    error_of(refreshed, 401, "token_revoked")


def test_a_promoted_user_reaches_admin_endpoints_after_logging_in_again(client, admin, alice):
    assert patch_user(client, admin, alice.id, {"role": "admin"}).status_code == 200

    tokens = login(client, alice.email)
    assert tokens.status_code == 200
    headers = bearer(tokens.get_json()["access_token"])
    assert client.get(USERS, headers=headers).status_code == 200
    assert client.get("/api/user/me", headers=headers).get_json()["role"] == "admin"


def test_a_demoted_admin_loses_admin_access(client, admin, alice):
    other_admin = alice
    assert patch_user(client, admin, other_admin.id, {"role": "admin"}).status_code == 200
    promoted = bearer(login(client, other_admin.email).get_json()["access_token"])
    assert client.get(USERS, headers=promoted).status_code == 200

    assert patch_user(client, admin, other_admin.id, {"role": "user"}).status_code == 200

    error_of(client.get(USERS, headers=promoted), 401, "token_revoked")
    relogged = bearer(login(client, other_admin.email).get_json()["access_token"])
    error_of(client.get(USERS, headers=relogged), 403, "forbidden")


def test_a_demoted_admins_api_key_loses_admin_access(client, admin, alice):
    assert patch_user(client, admin, alice.id, {"role": "admin"}).status_code == 200
    relogged = bearer(login(client, alice.email).get_json()["access_token"])
    key_response = client.post("/api/user/api-keys", json={"name": "k"}, headers=relogged)
    key_headers = {"X-API-Key": key_response.get_json()["key"]}
    assert client.get(USERS, headers=key_headers).status_code == 200

    assert patch_user(client, admin, alice.id, {"role": "user"}).status_code == 200

    error_of(client.get(USERS, headers=key_headers), 403, "forbidden")


# --- active status ---------------------------------------------------------------------------


def test_deactivating_a_user_cuts_off_tokens_api_keys_and_login(client, admin, alice):
    key = api_key_for(client, alice)

    response = patch_user(client, admin, alice.id, {"is_active": False})

    assert response.status_code == 200
    assert response.get_json()["is_active"] is False
    error_of(client.get("/api/user/me", headers=alice.headers), 401, "token_revoked")
    refreshed = client.post("/api/auth/refresh", headers=bearer(alice.refresh_token))
    assert refreshed.status_code == 401
    error_of(client.get("/api/user/me", headers={"X-API-Key": key}), 401, "invalid_api_key")
    error_of(login(client, alice.email), 401, "unauthorized")


def test_a_deactivated_users_login_looks_like_bad_credentials(client, admin, alice):
    assert patch_user(client, admin, alice.id, {"is_active": False}).status_code == 200

    deactivated = login(client, alice.email).get_json()["error"]
    unknown_account = login(client, "nobody@example.com").get_json()["error"]

    assert deactivated["message"] == unknown_account["message"]


def test_reactivating_a_user_lets_them_log_in_again(client, admin, alice):
    key = api_key_for(client, alice)
    assert patch_user(client, admin, alice.id, {"is_active": False}).status_code == 200

    response = patch_user(client, admin, alice.id, {"is_active": True})

    assert response.status_code == 200
    assert response.get_json()["is_active"] is True
    tokens = login(client, alice.email)
    assert tokens.status_code == 200
    me = client.get("/api/user/me", headers=bearer(tokens.get_json()["access_token"]))
    assert me.status_code == 200
    assert client.get("/api/user/me", headers={"X-API-Key": key}).status_code == 200
    # Tokens from before the deactivation stay dead.
    error_of(client.get("/api/user/me", headers=alice.headers), 401, "token_revoked")


def test_an_unchanged_patch_keeps_the_users_tokens(client, admin, alice):
    response = patch_user(client, admin, alice.id, {"role": "user", "is_active": True})

    assert response.status_code == 200
    assert client.get("/api/user/me", headers=alice.headers).status_code == 200


# --- invalid updates -----------------------------------------------------------------------


def test_patch_with_an_empty_body_is_422(client, admin, alice):
    error = error_of(patch_user(client, admin, alice.id, {}), 422, "validation_error")

    assert error["details"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "x@example.com"}, "email"),
        ({"role": "admin", "password": "whatever123"}, "password"),
        ({"token_version": 0}, "token_version"),
        ({"role": "root"}, "role"),
        ({"is_active": "maybe"}, "is_active"),
    ],
)
def test_patch_with_unknown_or_invalid_fields_is_422_and_changes_nothing(
    client, admin, alice, body, field
):
    error = error_of(patch_user(client, admin, alice.id, body), 422, "validation_error")

    assert field in error["details"]["json"]
    assert client.get("/api/user/me", headers=alice.headers).get_json()["role"] == "user"


def test_patch_an_unknown_user_is_404(client, admin):
    response = patch_user(client, admin, uuid.uuid4(), {"role": "admin"})

    error_of(response, 404, "not_found")


def test_patch_a_malformed_user_id_is_404(client, admin):
    error_of(patch_user(client, admin, "not-a-uuid", {"role": "admin"}), 404, "not_found")


@pytest.mark.parametrize("body", [{"role": "user"}, {"is_active": False}])
def test_an_admin_cannot_change_their_own_role_or_status(client, admin, body):
    response = patch_user(client, admin, admin.id, body)

    error_of(response, 409, "conflict")
    me = client.get("/api/user/me", headers=admin.headers)
    assert me.status_code == 200
    assert me.get_json()["role"] == "admin"
    assert me.get_json()["is_active"] is True


# --- the create-admin command ------------------------------------------------------------


def test_create_admin_creates_an_admin_who_can_log_in(app, client):
    result = run_create_admin(app, "new@example.com", "--password", "longenough1")

    assert result.exit_code == 0, result.output
    assert "new@example.com" in result.output
    tokens = login(client, "new@example.com", "longenough1")
    assert tokens.status_code == 200
    response = client.get(USERS, headers=bearer(tokens.get_json()["access_token"]))
    assert response.status_code == 200
    assert emails(response.get_json()) == ["new@example.com"]
    assert response.get_json()["items"][0]["role"] == "admin"


def test_create_admin_promotes_an_existing_user(app, client, alice):
    result = run_create_admin(app, alice.email)

    assert result.exit_code == 0, result.output
    # The old token carried the old role: it is refused, a fresh login has admin access.
    error_of(client.get(USERS, headers=alice.headers), 401, "token_revoked")
    tokens = login(client, alice.email)
    assert client.get(USERS, headers=bearer(tokens.get_json()["access_token"])).status_code == 200


def test_create_admin_on_an_existing_user_keeps_their_password(app, client, alice):
    result = run_create_admin(app, alice.email, "--password", "a-different-password")

    assert result.exit_code == 0, result.output
    assert login(client, alice.email).status_code == 200
    assert login(client, alice.email, "a-different-password").status_code == 401


def test_create_admin_reactivates_a_deactivated_user(app, client, admin, alice):
    assert patch_user(client, admin, alice.id, {"is_active": False}).status_code == 200

    result = run_create_admin(app, alice.email)

    assert result.exit_code == 0, result.output
    assert login(client, alice.email).status_code == 200


def test_create_admin_with_a_too_short_password_fails_clearly(app, client):
    result = run_create_admin(app, "short@example.com", "--password", "short")

    assert result.exit_code != 0
    assert "at least 8 characters" in result.output
    assert "Traceback" not in result.output
    assert login(client, "short@example.com", "short").status_code == 401


def test_create_admin_with_an_invalid_email_fails(app, client):
    result = run_create_admin(app, "not-an-email", "--password", "longenough1")

    assert result.exit_code != 0
    assert login(client, "not-an-email", "longenough1").status_code == 401
