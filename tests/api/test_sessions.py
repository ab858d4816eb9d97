"""Login sessions in PostgreSQL: listing and ending them, refresh rotation and reuse
detection, and the Redis cache in front of them — which may lose its data without a
logged-out or revoked token working again."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from sqlalchemy import event, select, update

from api.services import session_cache
from api.services.sessions import KEEP_ENDED
from core.db import db
from core.models import LoginSession
from core.repositories import login_sessions as sessions_repo
from tests.conftest import delete_keys, register_and_login
from tests.helpers import assert_unauthorized, bearer, error_of, login, logout, refresh

SESSIONS = "/api/user/sessions"
FIELDS = {
    "id",
    "created_at",
    "last_used_at",
    "expires_at",
    "active",
    "revoked_at",
    "revoked_reason",
    "ip",
    "user_agent",
    "current",
}


# --- helpers --------------------------------------------------------------------------


def session_of(token: str) -> str:
    """The id of the login session a token belongs to (its `fam` claim)."""
    return jwt.decode(token, options={"verify_signature": False})["fam"]


def jti_of(token: str) -> str:
    return jwt.decode(token, options={"verify_signature": False})["jti"]


def me(client, token: str):
    return client.get("/api/user/me", headers=bearer(token))


def listing(client, token: str) -> list[dict]:
    response = client.get(SESSIONS, headers=bearer(token))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def by_id(sessions: list[dict]) -> dict[str, dict]:
    return {session["id"]: session for session in sessions}


def new_pair(client, account, **kwargs) -> dict:
    """Another login of `account`: a session of its own."""
    response = login(client, account.email, account.password, **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def rotated(client, refresh_token: str) -> dict:
    response = refresh(client, refresh_token)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def row(app, session_id: str) -> LoginSession | None:
    with app.app_context():
        found = db.session.get(LoginSession, uuid.UUID(session_id))
        if found is not None:
            db.session.expunge(found)
        return found


def set_columns(app, session_id: str, **values) -> None:
    """Change a session's row behind the API's back (and its cache's)."""
    with app.app_context():
        db.session.execute(
            update(LoginSession).where(LoginSession.id == uuid.UUID(session_id)).values(**values)
        )
        db.session.commit()


def cache_key(app, session_id: str) -> str:
    return f"{app.config['REDIS_KEY_PREFIX']}jwt:session:{session_id}"


def lose_redis_data(app, redis_client) -> None:
    """What a Redis restart without persistence does to this app: every key under its
    prefix is gone. (The shared test Redis keeps the Celery queue bindings that other
    tests' workers declared, as conftest's clean_state does; they hold no session state.)"""
    prefix = app.config["REDIS_KEY_PREFIX"]
    delete_keys(redis_client, prefix, keep=f"{prefix}celery:_kombu.binding.")
    assert list(redis_client.scan_iter(match=f"{prefix}jwt:*")) == []


def assert_near(moment: str, expected: datetime, slack: float = 10) -> None:
    assert abs((datetime.fromisoformat(moment) - expected).total_seconds()) < slack, moment


def forged(app, account, fam: str) -> str:
    """A well-signed access token of `account` whose session is `fam`."""
    claims = jwt.decode(account.access_token, options={"verify_signature": False})
    return jwt.encode({**claims, "fam": fam}, app.config["JWT_SECRET_KEY"], algorithm="HS256")


# --- the listing ----------------------------------------------------------------------


def test_a_login_opens_a_session_listed_as_current(app, client, alice):
    sessions = listing(client, alice.access_token)

    assert len(sessions) == 1
    session = sessions[0]
    assert set(session) == FIELDS
    assert session["id"] == session_of(alice.access_token) == session_of(alice.refresh_token)
    assert session["current"] is True
    assert session["active"] is True
    assert session["revoked_at"] is None and session["revoked_reason"] is None
    assert session["ip"] == "127.0.0.1"
    assert session["user_agent"].startswith("Werkzeug/")
    now = datetime.now(UTC)
    assert_near(session["created_at"], now)
    assert session["last_used_at"] == session["created_at"]
    assert_near(session["expires_at"], now + timedelta(days=app.config["REFRESH_TOKEN_DAYS"]))
    # The row holds the refresh token's jti, which the app chose.
    assert row(app, session["id"]).current_refresh_jti == jti_of(alice.refresh_token)


def test_the_listing_shows_active_sessions_first_and_marks_the_callers(client, alice):
    phone = new_pair(client, alice, headers={"User-Agent": "Phone/1.0"})
    laptop = new_pair(client, alice, environ_base={"REMOTE_ADDR": "203.0.113.7"})
    assert logout(client, alice.access_token).status_code == 204

    sessions = listing(client, phone["access_token"])

    assert [s["active"] for s in sessions] == [True, True, False]
    assert sessions[2]["id"] == session_of(alice.access_token)
    assert sessions[2]["revoked_reason"] == "logout"
    assert_near(sessions[2]["revoked_at"], datetime.now(UTC))
    found = by_id(sessions)
    assert found[session_of(phone["access_token"])]["current"] is True
    assert found[session_of(phone["access_token"])]["user_agent"] == "Phone/1.0"
    assert found[session_of(laptop["access_token"])]["current"] is False
    assert found[session_of(laptop["access_token"])]["ip"] == "203.0.113.7"
    # Asked with the other session's token, that one is the current one.
    again = by_id(listing(client, laptop["access_token"]))
    assert again[session_of(laptop["access_token"])]["current"] is True
    assert again[session_of(phone["access_token"])]["current"] is False


def test_the_listing_shows_only_the_callers_sessions(client, alice, bob):
    sessions = listing(client, bob.access_token)

    assert [s["id"] for s in sessions] == [session_of(bob.access_token)]


def test_with_an_api_key_the_listing_has_no_current_session(client, alice):
    created = client.post("/api/user/api-keys", json={"name": "cli"}, headers=alice.headers)
    key = created.get_json()["key"]

    sessions = client.get(SESSIONS, headers={"X-API-Key": key}).get_json()

    assert [(s["id"], s["current"]) for s in sessions] == [(session_of(alice.access_token), False)]


def test_a_long_user_agent_is_kept_truncated(client, alice):
    pair = new_pair(client, alice, headers={"User-Agent": "A" * 5000})

    session = by_id(listing(client, alice.access_token))[session_of(pair["access_token"])]

    assert session["user_agent"] == "A" * 200


# --- ending sessions ------------------------------------------------------------------


def test_ending_one_session_revokes_its_tokens_and_leaves_the_others(client, alice):
    other = new_pair(client, alice)

    response = client.delete(
        f"{SESSIONS}/{session_of(other['access_token'])}", headers=alice.headers
    )

    assert response.status_code == 204
    assert_unauthorized(me(client, other["access_token"]), "token_revoked")
    assert_unauthorized(refresh(client, other["refresh_token"]), "token_revoked")
    assert me(client, alice.access_token).status_code == 200
    ended = by_id(listing(client, alice.access_token))[session_of(other["access_token"])]
    assert (ended["active"], ended["revoked_reason"]) == (False, "user")
    # Ending it again changes nothing (its reason stays).
    again = client.delete(f"{SESSIONS}/{session_of(other['access_token'])}", headers=alice.headers)
    assert again.status_code == 204
    assert by_id(listing(client, alice.access_token))[ended["id"]] == ended


def test_another_users_session_is_a_404_like_an_unknown_one(client, alice, bob):
    bobs = client.delete(f"{SESSIONS}/{session_of(bob.access_token)}", headers=alice.headers)
    unknown = client.delete(f"{SESSIONS}/{uuid.uuid4()}", headers=alice.headers)

    assert error_of(bobs, 404, "not_found")["message"] == error_of(unknown, 404)["message"]
    assert me(client, bob.access_token).status_code == 200
    assert listing(client, bob.access_token)[0]["active"] is True


def test_ending_all_sessions_revokes_every_token_of_the_caller_only(client, alice, bob):
    other = new_pair(client, alice)

    response = client.delete(SESSIONS, headers=alice.headers)

    assert response.status_code == 200
    assert response.get_json() == {"revoked": 2}
    for pair in (other, {"access_token": alice.access_token, "refresh_token": alice.refresh_token}):
        assert_unauthorized(me(client, pair["access_token"]), "token_revoked")
        assert_unauthorized(refresh(client, pair["refresh_token"]), "token_revoked")
    assert me(client, bob.access_token).status_code == 200
    # Logging in again opens a new session; the ended ones are listed with their reason.
    fresh = new_pair(client, alice)
    sessions = listing(client, fresh["access_token"])
    assert [(s["active"], s["revoked_reason"]) for s in sessions] == [
        (True, None),
        (False, "user"),
        (False, "user"),
    ]


def test_logout_ends_the_session_in_postgresql(app, client, alice):
    assert logout(client, alice.access_token).status_code == 204

    ended = row(app, session_of(alice.access_token))
    assert ended.revoked_reason == "logout"
    assert ended.revoked_at is not None
    assert_unauthorized(me(client, alice.access_token), "token_revoked")
    assert_unauthorized(refresh(client, alice.refresh_token), "token_revoked")


def test_a_password_change_ends_every_session_and_opens_a_new_one(client, alice):
    other = new_pair(client, alice)

    changed = client.put(
        "/api/user/me/password",
        json={"current_password": alice.password, "new_password": "another long passphrase"},
        headers=alice.headers,
    )

    assert changed.status_code == 200, changed.get_data(as_text=True)
    pair = changed.get_json()
    for old in (other["access_token"], alice.access_token):
        assert_unauthorized(me(client, old), "token_revoked")
    assert_unauthorized(refresh(client, other["refresh_token"]), "token_revoked")
    sessions = listing(client, pair["access_token"])
    assert sessions[0]["id"] == session_of(pair["access_token"])
    assert (sessions[0]["current"], sessions[0]["active"]) == (True, True)
    assert [s["revoked_reason"] for s in sessions[1:]] == ["password_changed"] * 2
    assert refresh(client, pair["refresh_token"]).status_code == 200


def test_an_admin_ends_every_session_of_a_user(client, admin, alice, bob):
    other = new_pair(client, alice)

    response = client.delete(f"/api/admin/users/{alice.id}/sessions", headers=admin.headers)

    assert response.status_code == 200
    assert response.get_json() == {"revoked": 2}
    for token in (alice.access_token, other["access_token"]):
        assert_unauthorized(me(client, token), "token_revoked")
    assert_unauthorized(refresh(client, other["refresh_token"]), "token_revoked")
    assert me(client, bob.access_token).status_code == 200
    assert me(client, admin.access_token).status_code == 200
    # Not locked out: a new login works, and the listing says who ended the old ones.
    fresh = new_pair(client, alice)
    assert [s["revoked_reason"] for s in listing(client, fresh["access_token"])] == [
        None,
        "admin",
        "admin",
    ]


def test_an_admin_ending_sessions_of_an_unknown_user_gets_404(client, admin):
    response = client.delete(f"/api/admin/users/{uuid.uuid4()}/sessions", headers=admin.headers)

    error_of(response, 404, "not_found")


@pytest.mark.parametrize(
    ("change", "reason"),
    [({"is_active": False}, "deactivated"), ({"role": "admin"}, "role_changed")],
)
def test_an_admins_change_of_a_user_ends_their_sessions(app, client, admin, alice, change, reason):
    response = client.patch(f"/api/admin/users/{alice.id}", json=change, headers=admin.headers)
    assert response.status_code == 200, response.get_data(as_text=True)

    ended = row(app, session_of(alice.access_token))
    assert ended.revoked_reason == reason
    assert_unauthorized(me(client, alice.access_token), "token_revoked")


def test_a_rate_limit_change_leaves_the_sessions_alone(client, admin, alice):
    response = client.patch(
        f"/api/admin/users/{alice.id}", json={"rate_limit_per_minute": 30}, headers=admin.headers
    )
    assert response.status_code == 200, response.get_data(as_text=True)

    assert me(client, alice.access_token).status_code == 200


# --- refresh: rotation and reuse --------------------------------------------------------


def test_a_refresh_rotates_the_sessions_refresh_token_and_slides_its_expiry(app, client, alice):
    session_id = session_of(alice.access_token)
    soon = datetime.now(UTC) + timedelta(days=1)
    set_columns(app, session_id, expires_at=soon)

    pair = rotated(client, alice.refresh_token)

    assert session_of(pair["access_token"]) == session_of(pair["refresh_token"]) == session_id
    stored = row(app, session_id)
    assert stored.current_refresh_jti == jti_of(pair["refresh_token"])
    days = app.config["REFRESH_TOKEN_DAYS"]
    assert (
        abs((stored.expires_at - (datetime.now(UTC) + timedelta(days=days))).total_seconds()) < 10
    )
    assert stored.last_used_at > stored.created_at
    # Still one session: a refresh does not open another.
    assert [s["id"] for s in listing(client, pair["access_token"])] == [session_id]


def test_reusing_a_rotated_refresh_token_ends_the_whole_session(app, client, alice):
    newer = rotated(client, alice.refresh_token)
    newest = rotated(client, newer["refresh_token"])
    other = new_pair(client, alice)

    assert_unauthorized(refresh(client, alice.refresh_token), "token_revoked")

    for token in (newer["access_token"], newest["access_token"]):
        assert_unauthorized(me(client, token), "token_revoked")
    assert_unauthorized(refresh(client, newest["refresh_token"]), "token_revoked")
    assert row(app, session_of(alice.access_token)).revoked_reason == "refresh_reuse"
    # The user's other login is not the one the stolen token belonged to.
    assert me(client, other["access_token"]).status_code == 200
    assert rotated(client, other["refresh_token"])


def test_a_session_past_its_expiry_gets_no_new_pair(app, client, alice):
    set_columns(app, session_of(alice.access_token), expires_at=datetime.now(UTC) - timedelta(1))

    assert_unauthorized(refresh(client, alice.refresh_token), "token_revoked")
    assert_unauthorized(me(client, alice.access_token), "token_revoked")
    sessions = listing(client, new_pair(client, alice)["access_token"])
    assert [s["active"] for s in sessions] == [True, False]
    assert sessions[1]["revoked_reason"] is None  # expired, not revoked


def test_concurrent_refreshes_of_one_token_let_exactly_one_win(app, alice):
    attempts = 8
    barrier = threading.Barrier(attempts)

    def attempt(_):
        client = app.test_client()
        barrier.wait()
        return refresh(client, alice.refresh_token)

    with ThreadPoolExecutor(attempts) as pool:
        responses = list(pool.map(attempt, range(attempts)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [401] * (attempts - 1)
    for response in responses:
        if response.status_code == 401:
            assert response.get_json()["error"]["code"] == "token_revoked"
    # The losers presented a token that was no longer the current one: the session ended,
    # the winner's pair with it (the holder and a thief cannot be told apart).
    winner = next(r.get_json() for r in responses if r.status_code == 200)
    assert row(app, session_of(alice.access_token)).revoked_reason == "refresh_reuse"
    assert_unauthorized(me(app.test_client(), winner["access_token"]), "token_revoked")


def test_a_rotation_waiting_for_another_one_finds_the_token_used(app, alice):
    """The conditional UPDATE is what makes a rotation atomic: the second of two
    transactions on the same token waits for the first's row lock, then matches nothing."""
    session_id = uuid.UUID(session_of(alice.access_token))
    user_id = uuid.UUID(alice.id)
    old = jti_of(alice.refresh_token)
    now = datetime.now(UTC)
    kwargs = {"now": now, "expires_at": now + timedelta(days=1), "ip": None, "user_agent": None}
    second: list[bool] = []

    def rotate_concurrently():
        with app.app_context():
            second.append(sessions_repo.rotate(session_id, user_id, old, "second", **kwargs))
            db.session.commit()

    with app.app_context():
        assert sessions_repo.rotate(session_id, user_id, old, "first", **kwargs)
        racer = threading.Thread(target=rotate_concurrently)
        racer.start()
        racer.join(0.5)
        assert racer.is_alive(), "the second UPDATE did not wait for the first's row lock"
        db.session.commit()
    racer.join(10)

    assert second == [False]
    assert row(app, str(session_id)).current_refresh_jti == "first"


# --- tokens without a session -------------------------------------------------------------


@pytest.mark.parametrize("fam", ["uuid", "hex"], ids=["unknown-session", "pre-session-token"])
def test_a_well_signed_token_without_a_session_row_is_refused(app, client, alice, fam):
    """Tokens issued before sessions were stored carry a family id with no row."""
    token = forged(app, alice, str(uuid.uuid4()) if fam == "uuid" else uuid.uuid4().hex)

    assert_unauthorized(me(client, token), "token_revoked")
    # The control: the same claims with her real session pass.
    assert me(client, forged(app, alice, session_of(alice.access_token))).status_code == 200


def test_a_token_whose_session_was_pruned_is_refused(app, client, alice):
    with app.app_context():
        db.session.execute(
            LoginSession.__table__.delete().where(
                LoginSession.id == uuid.UUID(session_of(alice.access_token))
            )
        )
        db.session.commit()

    assert_unauthorized(me(client, alice.access_token), "token_revoked")
    assert_unauthorized(refresh(client, alice.refresh_token), "token_revoked")


# --- pruning ------------------------------------------------------------------------------


def test_a_login_deletes_the_users_sessions_ended_more_than_a_week_ago(app, client, alice, bob):
    long_ago = datetime.now(UTC) - KEEP_ENDED - timedelta(hours=1)
    recently = datetime.now(UTC) - KEEP_ENDED + timedelta(hours=1)
    expired = session_of(alice.access_token)
    set_columns(app, expired, expires_at=long_ago)
    revoked = session_of(new_pair(client, alice)["access_token"])
    set_columns(app, revoked, revoked_at=long_ago, revoked_reason="logout")
    recent = session_of(new_pair(client, alice)["access_token"])
    set_columns(app, recent, revoked_at=recently, revoked_reason="logout")
    bobs = session_of(bob.access_token)
    set_columns(app, bobs, expires_at=long_ago)

    fresh = new_pair(client, alice)

    assert row(app, expired) is None and row(app, revoked) is None
    ids = {s["id"] for s in listing(client, fresh["access_token"])}
    assert ids == {recent, session_of(fresh["access_token"])}
    assert row(app, bobs) is not None  # pruned at Bob's own next login


# --- the Redis cache ----------------------------------------------------------------------


def test_a_cached_session_is_checked_without_postgresql(app, client, alice, redis_client):
    session_id = session_of(alice.access_token)
    assert me(client, alice.access_token).status_code == 200  # the miss fills the cache
    key = cache_key(app, session_id)
    assert redis_client.get(key) == session_cache.ACTIVE
    assert 0 < redis_client.ttl(key) <= app.config["SESSION_CACHE_SECONDS"]

    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if "login_sessions" in statement:
            seen.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        assert me(client, alice.access_token).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", record)

    assert seen == []


def test_a_cache_miss_reads_postgresql_and_never_allows(app, client, alice, redis_client):
    session_id = session_of(alice.access_token)
    assert me(client, alice.access_token).status_code == 200
    # Ended behind the cache's back: the cached "active" still answers, for its short TTL...
    set_columns(app, session_id, revoked_at=datetime.now(UTC), revoked_reason="admin")
    assert me(client, alice.access_token).status_code == 200

    # ...and once it is gone, PostgreSQL does.
    redis_client.delete(cache_key(app, session_id))
    assert_unauthorized(me(client, alice.access_token), "token_revoked")
    assert redis_client.get(cache_key(app, session_id)) == session_cache.REVOKED


def test_a_revocation_overwrites_a_cached_active_session(app, client, alice, redis_client):
    assert me(client, alice.access_token).status_code == 200
    key = cache_key(app, session_of(alice.access_token))
    assert redis_client.get(key) == session_cache.ACTIVE

    assert logout(client, alice.access_token).status_code == 204

    assert redis_client.get(key) == session_cache.REVOKED
    assert 0 < redis_client.ttl(key) <= app.config["JWT_ACCESS_TOKEN_EXPIRES"]


def test_a_reader_that_saw_the_session_active_cannot_overwrite_a_revocation(app, alice):
    """The reader's write comes after the revocation's: SET NX leaves the revocation."""
    session_id = session_of(alice.access_token)
    with app.test_request_context():
        session_cache.remember_ended([session_id])
        session_cache.remember_active(session_id, datetime.now(UTC) + timedelta(days=1))

        assert session_cache.lookup(session_id) is False


def test_the_cached_active_state_never_outlives_the_session(app, alice, redis_client):
    session_id = session_of(alice.access_token)
    with app.test_request_context():
        session_cache.remember_active(session_id, datetime.now(UTC) + timedelta(seconds=5))

    assert 0 < redis_client.ttl(cache_key(app, session_id)) <= 5


# --- Redis loses its data ---------------------------------------------------------------------


def test_after_redis_loses_its_data_ended_sessions_stay_ended(app, client, alice, redis_client):
    # Session A: refreshed once, then logged out.
    a1 = rotated(client, alice.refresh_token)
    assert logout(client, a1["access_token"]).status_code == 204
    # Session B: refreshed once, still active; its first refresh token is spent.
    b0 = new_pair(client, alice)
    b1 = rotated(client, b0["refresh_token"])
    # Session C: the one the user looks at the listing with.
    c = new_pair(client, alice)
    for token in (alice.access_token, a1["access_token"], b1["access_token"]):
        me(client, token)  # fill the cache with both states
    assert any(redis_client.scan_iter(match=f"{app.config['REDIS_KEY_PREFIX']}jwt:*"))

    lose_redis_data(app, redis_client)

    # The logged-out session's tokens, old and new, access and refresh, are refused.
    for token in (alice.access_token, a1["access_token"]):
        assert_unauthorized(me(client, token), "token_revoked")
    for token in (alice.refresh_token, a1["refresh_token"]):
        assert_unauthorized(refresh(client, token), "token_revoked")
    # Session B still works...
    assert me(client, b1["access_token"]).status_code == 200

    lose_redis_data(app, redis_client)

    # ...and reuse detection still ends it: its spent refresh token comes back.
    assert_unauthorized(refresh(client, b0["refresh_token"]), "token_revoked")
    lose_redis_data(app, redis_client)
    assert_unauthorized(me(client, b1["access_token"]), "token_revoked")
    assert_unauthorized(refresh(client, b1["refresh_token"]), "token_revoked")

    sessions = listing(client, c["access_token"])
    assert [(s["id"], s["active"], s["revoked_reason"], s["current"]) for s in sessions] == [
        (session_of(c["access_token"]), True, None, True),
        (session_of(b1["access_token"]), False, "refresh_reuse", False),
        (session_of(a1["access_token"]), False, "logout", False),
    ]


def test_after_redis_loses_its_data_a_revoked_refresh_token_cannot_be_exchanged(
    app, client, alice, redis_client
):
    other = new_pair(client, alice)
    assert client.delete(SESSIONS, headers=bearer(other["access_token"])).json == {"revoked": 2}

    lose_redis_data(app, redis_client)

    for pair in (other, {"refresh_token": alice.refresh_token}):
        response = refresh(client, pair["refresh_token"])
        assert_unauthorized(response, "token_revoked")
        assert "access_token" not in response.get_json()


def test_a_brand_new_login_works_after_redis_lost_its_data(app, client, redis_client):
    lose_redis_data(app, redis_client)

    account = register_and_login(client, "carol@example.com")

    assert me(client, account.access_token).status_code == 200
    assert rotated(client, account.refresh_token)
    with app.app_context():
        assert db.session.scalar(select(LoginSession.user_id)) == uuid.UUID(account.id)
