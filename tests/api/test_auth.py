"""Accounts and tokens: register, login (and its rate limits), refresh, logout, token attacks."""

from __future__ import annotations

import base64
import json
import time
import uuid

import jwt
import pytest
from sqlalchemy import select

from api import create_app
from config.settings import TestingConfig
from core.db import db
from core.models import User
from tests.conftest import PASSWORD
from tests.helpers import (
    assert_unauthorized,
    bearer,
    error_of,
    field_messages,
    login,
    logout,
    refresh,
)

WRONG_PASSWORD = "not the password at all"
# A key of realistic length that is not the app's: PyJWT warns about short HMAC keys.
WRONG_KEY = "an-attacker-guessed-this-signing-key-0123456789"


# --- helpers ------------------------------------------------------------------------


def register(client, email: str, password: str = PASSWORD, **extra):
    return client.post("/api/auth/register", json={"email": email, "password": password, **extra})


def me(client, token: str):
    return client.get("/api/user/me", headers=bearer(token))


def set_active(client, admin, user_id: str, active: bool) -> None:
    response = client.patch(
        f"/api/admin/users/{user_id}", json={"is_active": active}, headers=admin.headers
    )
    assert response.status_code == 200, response.get_json()


def change_password(client, account, new_password: str) -> dict:
    response = client.put(
        "/api/user/me/password",
        json={"current_password": account.password, "new_password": new_password},
        headers=account.headers,
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def token_claims(user_id: str, session_of: str, *, lifetime: int = 600, **overrides) -> dict:
    """Claims shaped like the ones the app puts in an access token, in the login session
    of the app-issued token `session_of` (a token counts only while its session does)."""
    now = int(time.time())
    claims = {
        "sub": user_id,
        "jti": str(uuid.uuid4()),
        "type": "access",
        "fresh": False,
        "role": "user",
        "ver": 0,
        "fam": jwt.decode(session_of, options={"verify_signature": False})["fam"],
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
    }
    claims.update(overrides)
    return claims


def sign(app, claims: dict, key: str | None = None) -> str:
    return jwt.encode(claims, key or app.config["JWT_SECRET_KEY"], algorithm="HS256")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def db_user(app, email: str) -> User | None:
    with app.app_context():
        return db.session.scalar(select(User).where(User.email == email))


@pytest.fixture
def app_with_env(app, monkeypatch):
    """Build another app whose config reads the given environment variables.

    Depends on `app`, which has already cleaned the database and Redis for this test.
    """
    built = []

    def build(**env: str):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        new_app = create_app(TestingConfig())
        built.append(new_app)
        return new_app

    yield build
    for new_app in built:
        with new_app.app_context():
            db.session.remove()
            db.engine.dispose()


# --- register -------------------------------------------------------------------------


def test_register_returns_the_user_and_never_a_password_or_hash(client):
    response = register(client, "carol@example.com", name="Carol")

    assert response.status_code == 201
    body = response.get_json()
    assert body["email"] == "carol@example.com"
    assert body["name"] == "Carol"
    assert body["role"] == "user"
    assert body["is_active"] is True
    uuid.UUID(body["id"])
    assert not {"password", "password_hash", "hash"} & set(body)
    text = response.get_data(as_text=True)
    assert PASSWORD not in text
    assert "$2b$" not in text


def test_register_stores_a_bcrypt_hash_and_not_the_password(app, client):
    assert register(client, "carol@example.com").status_code == 201

    user = db_user(app, "carol@example.com")
    assert user.password_hash.startswith("$2")
    assert PASSWORD not in user.password_hash


def test_register_trims_the_name(client):
    response = register(client, "carol@example.com", name="  Carol Smith ")

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["name"] == "Carol Smith"


def test_register_without_a_name_uses_the_start_of_the_email(client):
    assert register(client, "carol@example.com").get_json()["name"] == "carol"


def test_register_lowercases_the_email(client):
    response = register(client, "Carol.Smith@Example.COM")

    assert response.status_code == 201
    assert response.get_json()["email"] == "carol.smith@example.com"
    assert login(client, "carol.smith@example.com").status_code == 200


@pytest.mark.parametrize("duplicate", ["alice@example.com", "ALICE@Example.com"])
def test_register_refuses_an_email_that_is_taken(client, alice, duplicate):
    error_of(register(client, duplicate, "another password"), 409, "conflict")

    # The original account is untouched.
    assert login(client, alice.email, alice.password).status_code == 200


def test_register_refuses_a_password_shorter_than_8_characters(client):
    error = error_of(register(client, "carol@example.com", "seven77"), 422, "validation_error")

    assert field_messages(error, "password")
    assert login(client, "carol@example.com", "seven77").status_code == 401


def test_register_accepts_a_password_of_exactly_8_characters(client):
    assert register(client, "carol@example.com", "eight888").status_code == 201
    assert login(client, "carol@example.com", "eight888").status_code == 200


@pytest.mark.parametrize(
    "password",
    [
        pytest.param("é" * 40, id="40-chars-80-bytes"),
        pytest.param("é" * 36 + "a", id="37-chars-73-bytes"),
        pytest.param("a" * 73, id="73-ascii"),
    ],
)
def test_register_refuses_a_password_over_72_utf8_bytes(client, password):
    error = error_of(register(client, "carol@example.com", password), 422, "validation_error")

    assert any("72 bytes" in message for message in field_messages(error, "password"))
    # Nothing was created: the same email registers fine with a valid password.
    assert register(client, "carol@example.com").status_code == 201


def test_a_72_byte_password_registers_and_logs_in(client):
    password = "é" * 36
    assert len(password.encode("utf-8")) == 72

    assert register(client, "carol@example.com", password).status_code == 201
    assert login(client, "carol@example.com", password).status_code == 200


def test_a_72_byte_password_is_checked_in_full_not_truncated(client):
    password = "é" * 35 + "ab"
    assert len(password.encode("utf-8")) == 72
    assert register(client, "carol@example.com", password).status_code == 201

    last_char_changed = password[:-1] + "c"
    one_byte_longer = password + "x"
    assert_unauthorized(login(client, "carol@example.com", last_char_changed))
    assert_unauthorized(login(client, "carol@example.com", one_byte_longer))
    assert login(client, "carol@example.com", password).status_code == 200


@pytest.mark.parametrize(
    "email", ["not-an-email", "carol@", "@example.com", "carol example@example.com", ""]
)
def test_register_refuses_an_invalid_email(client, email):
    error = error_of(register(client, email), 422, "validation_error")

    assert field_messages(error, "email")


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({"role": "admin"}, id="role"),
        pytest.param({"is_active": True, "role": "admin"}, id="role-and-is_active"),
        pytest.param({"token_version": 5}, id="token_version"),
    ],
)
def test_register_refuses_unknown_fields_and_creates_nothing(app, client, extra):
    error = error_of(register(client, "mallory@example.com", **extra), 422, "validation_error")

    for name in extra:
        assert field_messages(error, name)
    assert db_user(app, "mallory@example.com") is None
    assert_unauthorized(login(client, "mallory@example.com"))


def test_register_with_role_field_never_yields_an_admin(client):
    register(client, "mallory@example.com", role="admin")
    created = register(client, "mallory@example.com")

    assert created.status_code == 201
    assert created.get_json()["role"] == "user"
    token = login(client, "mallory@example.com").get_json()["access_token"]
    error_of(client.get("/api/admin/users", headers=bearer(token)), 403, "forbidden")


# --- login ----------------------------------------------------------------------------


def test_login_returns_a_bearer_token_pair(app, client, alice):
    response = login(client, alice.email)

    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == app.config["JWT_ACCESS_TOKEN_EXPIRES"] == 15 * 60
    assert body["access_token"] != body["refresh_token"]
    assert me(client, body["access_token"]).get_json()["email"] == alice.email


def test_login_email_is_case_insensitive(client, alice):
    assert login(client, "  ALICE@Example.com ").status_code == 200


def test_login_failures_are_indistinguishable(client, alice, bob, admin):
    set_active(client, admin, bob.id, False)

    unknown = assert_unauthorized(login(client, "nobody@example.com"))
    wrong_password = assert_unauthorized(login(client, alice.email, WRONG_PASSWORD))
    deactivated = assert_unauthorized(login(client, bob.email, bob.password))

    assert unknown["message"] == wrong_password["message"] == deactivated["message"]
    assert unknown["code"] == wrong_password["code"] == deactivated["code"]
    assert "details" not in unknown and "details" not in deactivated


def test_reactivated_user_can_log_in_again(client, bob, admin):
    set_active(client, admin, bob.id, False)
    assert_unauthorized(login(client, bob.email))

    set_active(client, admin, bob.id, True)
    assert login(client, bob.email).status_code == 200


# --- login rate limits ----------------------------------------------------------------


def fail_logins(client, email: str, times: int, **kwargs) -> None:
    for _ in range(times):
        assert_unauthorized(login(client, email, WRONG_PASSWORD, **kwargs))


def assert_rate_limited(response) -> dict:
    error = error_of(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) > 0
    for header in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
        assert header in response.headers
    assert response.headers["X-RateLimit-Remaining"] == "0"
    return error


def test_sixth_failed_login_for_one_email_is_rate_limited(client, alice):
    fail_logins(client, alice.email, 5)

    response = login(client, alice.email, WRONG_PASSWORD)

    assert_rate_limited(response)
    assert response.headers["X-RateLimit-Limit"] == "5"


def test_login_responses_carry_rate_limit_headers(client, alice):
    response = login(client, alice.email, WRONG_PASSWORD)

    assert response.status_code == 401
    assert response.headers["X-RateLimit-Limit"] == "5"
    assert response.headers["X-RateLimit-Remaining"] == "4"


def test_email_limit_blocks_the_email_in_any_spelling_even_with_the_right_password(client, alice):
    fail_logins(client, alice.email, 5)

    assert_rate_limited(login(client, alice.email, alice.password))
    assert_rate_limited(login(client, " Alice@EXAMPLE.com ", WRONG_PASSWORD))


def test_email_limit_leaves_other_emails_from_the_same_ip_alone(client, alice, bob):
    fail_logins(client, alice.email, 5)
    assert_rate_limited(login(client, alice.email, WRONG_PASSWORD))

    assert login(client, bob.email, bob.password).status_code == 200
    assert_unauthorized(login(client, bob.email, WRONG_PASSWORD))


def test_successful_logins_do_not_count_toward_the_email_limit(client, alice):
    for _ in range(6):
        assert login(client, alice.email).status_code == 200

    fail_logins(client, alice.email, 5)
    assert_rate_limited(login(client, alice.email, WRONG_PASSWORD))


def test_email_limit_follows_login_rate_limit_per_email(app_with_env, client, alice):
    limited_client = app_with_env(LOGIN_RATE_LIMIT_PER_EMAIL="2/minute").test_client()

    fail_logins(limited_client, alice.email, 2)

    response = login(limited_client, alice.email, WRONG_PASSWORD)
    assert_rate_limited(response)
    assert response.headers["X-RateLimit-Limit"] == "2"


def test_ip_limit_defaults_to_20_logins_a_minute_across_emails(app, client):
    assert app.config["LOGIN_RATE_LIMIT_PER_IP"] == "20/minute"
    for number in range(20):
        assert_unauthorized(login(client, f"user{number}@example.com", WRONG_PASSWORD))

    assert_rate_limited(login(client, "user20@example.com", WRONG_PASSWORD))


def test_ip_limit_follows_login_rate_limit_per_ip(app_with_env, client, alice):
    limited_client = app_with_env(LOGIN_RATE_LIMIT_PER_IP="3/minute").test_client()

    for number in range(3):
        assert_unauthorized(login(limited_client, f"user{number}@example.com", WRONG_PASSWORD))

    # Every attempt counts toward the IP limit, even one with the right password.
    response = login(limited_client, alice.email, alice.password)
    assert_rate_limited(response)
    assert response.headers["X-RateLimit-Limit"] == "3"


def test_ip_limit_does_not_affect_another_ip(app_with_env, client, alice):
    limited_client = app_with_env(LOGIN_RATE_LIMIT_PER_IP="3/minute").test_client()
    fail_logins(limited_client, "someone@example.com", 3)
    assert_rate_limited(login(limited_client, alice.email))

    other_ip = {"environ_base": {"REMOTE_ADDR": "203.0.113.9"}}
    assert login(limited_client, alice.email, **other_ip).status_code == 200


def test_ip_limit_is_not_bypassed_with_x_forwarded_for(app_with_env, client, alice):
    limited_client = app_with_env(LOGIN_RATE_LIMIT_PER_IP="3/minute").test_client()
    fail_logins(limited_client, "someone@example.com", 3)

    spoofed = {"headers": {"X-Forwarded-For": "198.51.100.7"}}
    assert_rate_limited(login(limited_client, alice.email, **spoofed))


# --- refresh --------------------------------------------------------------------------


def test_refresh_returns_a_new_working_pair(client, alice):
    response = refresh(client, alice.refresh_token)

    assert response.status_code == 200
    pair = response.get_json()
    assert pair["token_type"] == "Bearer"
    assert pair["access_token"] != alice.access_token
    assert pair["refresh_token"] != alice.refresh_token
    assert me(client, pair["access_token"]).status_code == 200
    assert refresh(client, pair["refresh_token"]).status_code == 200


def test_a_used_refresh_token_is_revoked(client, alice):
    assert refresh(client, alice.refresh_token).status_code == 200

    assert_unauthorized(refresh(client, alice.refresh_token), "token_revoked")


def test_replaying_a_rotated_refresh_token_revokes_the_newer_pair(client, alice):
    rotated = refresh(client, alice.refresh_token).get_json()
    assert me(client, rotated["access_token"]).status_code == 200

    assert_unauthorized(refresh(client, alice.refresh_token), "token_revoked")

    assert_unauthorized(me(client, rotated["access_token"]), "token_revoked")
    assert_unauthorized(refresh(client, rotated["refresh_token"]), "token_revoked")


def test_refresh_token_replay_leaves_other_sessions_alone(client, alice):
    other_session = login(client, alice.email).get_json()
    refresh(client, alice.refresh_token)

    assert_unauthorized(refresh(client, alice.refresh_token))

    assert me(client, other_session["access_token"]).status_code == 200
    assert refresh(client, other_session["refresh_token"]).status_code == 200


def test_an_access_token_is_refused_at_refresh(client, alice):
    assert_unauthorized(refresh(client, alice.access_token))

    # ...and that attempt did not spend the real refresh token.
    assert refresh(client, alice.refresh_token).status_code == 200


def test_a_refresh_token_is_refused_as_an_access_token(client, alice):
    assert_unauthorized(me(client, alice.refresh_token))


def test_refresh_token_of_a_deactivated_user_is_refused(client, alice, admin):
    set_active(client, admin, alice.id, False)

    assert_unauthorized(refresh(client, alice.refresh_token))


def test_refresh_without_a_token_is_refused(client):
    assert_unauthorized(client.post("/api/auth/refresh"))


# --- logout ---------------------------------------------------------------------------


def test_logout_answers_204_and_revokes_the_session(client, alice):
    response = logout(client, alice.access_token)

    assert response.status_code == 204
    assert response.get_data() == b""
    assert_unauthorized(me(client, alice.access_token), "token_revoked")
    assert_unauthorized(refresh(client, alice.refresh_token), "token_revoked")


def test_logout_leaves_the_users_other_sessions_working(client, alice):
    other_session = login(client, alice.email).get_json()

    assert logout(client, alice.access_token).status_code == 204

    assert me(client, other_session["access_token"]).status_code == 200
    assert refresh(client, other_session["refresh_token"]).status_code == 200


def test_logout_twice_is_refused(client, alice):
    assert logout(client, alice.access_token).status_code == 204

    assert_unauthorized(logout(client, alice.access_token))


def create_api_key(client, account) -> str:
    response = client.post("/api/user/api-keys", json={"name": "cli"}, headers=account.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["key"]


@pytest.mark.parametrize("header", ["X-API-Key", "Authorization"])
def test_logout_with_an_api_key_is_refused(client, alice, header):
    key = create_api_key(client, alice)
    value = key if header == "X-API-Key" else f"Bearer {key}"

    assert_unauthorized(client.post("/api/auth/logout", headers={header: value}))

    # Neither the key nor the session was affected.
    assert client.get("/api/user/me", headers={"X-API-Key": key}).status_code == 200
    assert me(client, alice.access_token).status_code == 200


def test_logout_with_a_refresh_token_is_refused(client, alice):
    assert_unauthorized(logout(client, alice.refresh_token))

    assert me(client, alice.access_token).status_code == 200


# --- token attacks --------------------------------------------------------------------


def test_a_token_built_like_the_apps_is_accepted(app, client, alice):
    """The control for the forged tokens below: their shape alone is not what fails them."""
    assert me(client, sign(app, token_claims(alice.id, alice.access_token))).status_code == 200


def test_missing_authorization_header_is_refused(client):
    error = assert_unauthorized(client.get("/api/user/me"))

    assert "Authorization" in error["message"]


@pytest.mark.parametrize(
    "value",
    [
        "Bearer garbage",
        "Bearer a.b.c",
        "Bearer ",
        "Bearer",
        "Basic YWxpY2U6cGFzc3dvcmQ=",
        "garbage",
        "Bearer eyJhbGciOiJIUzI1NiJ9.e30.",
    ],
)
def test_malformed_authorization_is_refused(client, value):
    assert_unauthorized(client.get("/api/user/me", headers={"Authorization": value}))


def test_alg_none_token_is_refused(client, alice):
    claims = token_claims(alice.id, alice.access_token)
    with_library = jwt.encode(claims, None, algorithm="none")
    by_hand = (
        b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        + "."
        + b64url(json.dumps(claims).encode())
        + "."
    )

    assert_unauthorized(me(client, with_library), "invalid_token")
    assert_unauthorized(me(client, by_hand), "invalid_token")


def test_token_signed_with_a_wrong_key_is_refused(app, client, alice):
    claims = token_claims(alice.id, alice.access_token)

    assert_unauthorized(me(client, sign(app, claims, WRONG_KEY)), "invalid_token")


def test_token_with_a_tampered_payload_is_refused(client, admin, alice):
    header, payload, signature = alice.access_token.split(".")
    padded = payload + "=" * (-len(payload) % 4)
    claims = json.loads(base64.urlsafe_b64decode(padded))
    claims.update(sub=admin.id, role="admin")
    tampered = f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"

    assert_unauthorized(me(client, tampered), "invalid_token")
    assert_unauthorized(client.get("/api/admin/users", headers=bearer(tampered)))


def test_expired_token_is_refused(app, client, alice):
    past = int(time.time()) - 3600
    claims = token_claims(alice.id, alice.access_token, iat=past, nbf=past, exp=past + 60)

    assert_unauthorized(me(client, sign(app, claims)), "token_expired")


def test_token_for_an_unknown_user_is_refused(app, client, alice):
    claims = token_claims(str(uuid.uuid4()), alice.access_token)

    assert_unauthorized(me(client, sign(app, claims)), "invalid_token")


def test_token_of_a_deactivated_user_is_refused(app, client, alice, admin):
    set_active(client, admin, alice.id, False)

    assert_unauthorized(me(client, alice.access_token))
    # Even a correctly signed token with the account's current version is refused.
    version = db_user(app, alice.email).token_version
    claims = token_claims(alice.id, alice.access_token, ver=version)
    assert_unauthorized(me(client, sign(app, claims)))


def test_token_issued_before_a_password_change_is_refused(app, client, alice):
    new_session = change_password(client, alice, "a brand new passphrase")["access_token"]

    # Its login session ended with the change.
    assert_unauthorized(me(client, alice.access_token), "token_revoked")
    # In the session opened by the change, the version is what refuses the old claims:
    # the same claims with the new version pass.
    stale = token_claims(alice.id, new_session, ver=0)
    assert_unauthorized(me(client, sign(app, stale)), "invalid_token")
    current = token_claims(alice.id, new_session, ver=1)
    assert me(client, sign(app, current)).status_code == 200


def test_role_claim_in_a_token_is_not_trusted_over_the_database(app, client, alice):
    token = sign(app, token_claims(alice.id, alice.access_token, role="admin"))

    assert me(client, token).get_json()["role"] == "user"
    error_of(client.get("/api/admin/users", headers=bearer(token)), 403, "forbidden")
