"""Quotas: per-identity request rates, per-user overrides, jobs in flight, daily tokens.

Each test sets the limits it is about in the environment and builds its own app from them
(the suite's defaults are generous so that other tests never meet a limit). The `app`
fixture is still used, so the database and Redis (where the counters live) start clean.
No worker runs here: submitted jobs just stay queued.
"""

from __future__ import annotations

import time as clock
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, time, timedelta

import pytest
import requests
from sqlalchemy import func, select

from core.db import db
from core.models import Conversation, Job, UsageRecord
from tests.conftest import PASSWORD, start_gunicorn, stop_gunicorn
from tests.helpers import add_usage, app_with, bearer, bearer_over_http, error_of

ME = "/api/user/me"
CONVERSATIONS = "/api/conversations/"
JOBS = "/api/jobs"
USERS = "/api/admin/users"


# --- helpers -----------------------------------------------------------------------------


def limit_headers(response) -> tuple[int, int, int]:
    """(X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset) as integers."""
    headers = response.headers
    for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
        assert name in headers, dict(headers)
    return (
        int(headers["X-RateLimit-Limit"]),
        int(headers["X-RateLimit-Remaining"]),
        int(float(headers["X-RateLimit-Reset"])),
    )


def assert_rate_limited(response, limit: int) -> dict:
    error = error_of(response, 429, "rate_limited")
    retry_after = int(response.headers["Retry-After"])
    assert 0 < retry_after <= 61, retry_after
    assert response.headers["X-RateLimit-Limit"] == str(limit)
    assert response.headers["X-RateLimit-Remaining"] == "0"
    return error


def use_up(client, headers: dict, limit: int, already_used: int = 0) -> None:
    """Spend the rest of a budget on alternating endpoints, checking the countdown."""
    for used in range(already_used + 1, limit + 1):
        path = ME if used % 2 else CONVERSATIONS
        response = client.get(path, headers=headers)
        assert response.status_code == 200, (used, response.get_json())
        assert limit_headers(response)[:2] == (limit, limit - used)


def x_api_key(client, account, name: str = "laptop") -> dict:
    response = client.post("/api/user/api-keys", json={"name": name}, headers=account.headers)
    assert response.status_code == 201, response.get_json()
    return {"X-API-Key": response.get_json()["key"]}


def submit(client, account, message: str = "hello"):
    return client.post(JOBS, json={"message": message}, headers=account.headers)


def count_rows(app, model, user_id: str) -> int:
    with app.app_context():
        query = select(func.count()).select_from(model).where(model.user_id == uuid.UUID(user_id))
        return db.session.scalar(query)


def usage_created_ats(app) -> list[datetime]:
    with app.app_context():
        rows = db.session.scalars(select(UsageRecord.created_at).order_by(UsageRecord.created_at))
        return list(rows)


def midnight_utc() -> datetime:
    return datetime.combine(datetime.now(UTC).date(), time.min, tzinfo=UTC)


def away_from_midnight() -> None:
    """Wait out the last seconds of a UTC day, so "today" is the same day for the test."""
    left = (midnight_utc() + timedelta(days=1) - datetime.now(UTC)).total_seconds()
    if left < 10:
        clock.sleep(left + 1)


# --- 1. one budget per identity ----------------------------------------------------------


def test_the_request_after_the_limit_is_429_with_rate_limit_headers(monkeypatch, app, alice):
    client = app_with(monkeypatch, RATE_LIMIT_USER_PER_MINUTE=5).test_client()
    before = int(clock.time())

    resets = set()
    for used in range(1, 6):  # any mix of authenticated endpoints draws on one budget
        response = client.get(ME if used % 2 else CONVERSATIONS, headers=alice.headers)
        assert response.status_code == 200, response.get_json()
        limit, remaining, reset = limit_headers(response)
        assert (limit, remaining) == (5, 5 - used)
        assert before <= reset <= int(clock.time()) + 61, (before, reset)
        resets.add(reset)
    assert len(resets) == 1, resets  # one window

    sixth = client.get(ME, headers=alice.headers)
    error = assert_rate_limited(sixth, 5)
    assert "5" in error["message"]
    assert limit_headers(sixth)[2] in resets
    # Refused requests do not run: the next one is refused as well.
    assert_rate_limited(client.get(CONVERSATIONS, headers=alice.headers), 5)


def test_another_users_budget_is_untouched(monkeypatch, app, alice, bob):
    client = app_with(monkeypatch, RATE_LIMIT_USER_PER_MINUTE=5).test_client()
    use_up(client, alice.headers, 5)
    assert_rate_limited(client.get(ME, headers=alice.headers), 5)

    response = client.get(ME, headers=bob.headers)

    assert response.status_code == 200
    assert response.get_json()["email"] == bob.email
    assert limit_headers(response)[:2] == (5, 4)


def test_each_api_key_has_its_own_budget(monkeypatch, app, alice):
    client = app_with(monkeypatch, RATE_LIMIT_USER_PER_MINUTE=5).test_client()
    laptop = x_api_key(client, alice, "laptop")  # these two requests use the JWT budget
    server = x_api_key(client, alice, "server")
    use_up(client, alice.headers, 5, already_used=2)
    assert_rate_limited(client.get(ME, headers=alice.headers), 5)

    use_up(client, laptop, 5)  # the key starts with a full budget
    assert_rate_limited(client.get(ME, headers=laptop), 5)

    response = client.get(ME, headers=server)  # and another key with its own
    assert response.status_code == 200
    assert response.get_json()["id"] == alice.id
    assert limit_headers(response)[:2] == (5, 4)
    # A key presented as a bearer token is the same identity as in X-API-Key.
    same_key = bearer(server["X-API-Key"])
    assert limit_headers(client.get(ME, headers=same_key))[:2] == (5, 3)


def test_two_logins_of_one_user_share_one_budget(monkeypatch, app, alice):
    client = app_with(monkeypatch, RATE_LIMIT_USER_PER_MINUTE=5).test_client()
    login = client.post("/api/auth/login", json={"email": alice.email, "password": PASSWORD})
    assert login.status_code == 200
    second = bearer(login.get_json()["access_token"])
    assert second != alice.headers

    for used, headers in enumerate([alice.headers, second, alice.headers, second, second], 1):
        response = client.get(ME, headers=headers)
        assert response.status_code == 200
        assert limit_headers(response)[:2] == (5, 5 - used)

    assert_rate_limited(client.get(ME, headers=alice.headers), 5)
    assert_rate_limited(client.get(ME, headers=second), 5)


def test_admins_have_the_admin_limit(monkeypatch, app, admin, alice):
    client = app_with(
        monkeypatch, RATE_LIMIT_USER_PER_MINUTE=5, RATE_LIMIT_ADMIN_PER_MINUTE=8
    ).test_client()

    for used in range(1, 9):
        response = client.get(USERS if used % 2 else ME, headers=admin.headers)
        assert response.status_code == 200, (used, response.get_json())
        assert limit_headers(response)[:2] == (8, 8 - used)
    assert_rate_limited(client.get(ME, headers=admin.headers), 8)

    assert limit_headers(client.get(ME, headers=alice.headers))[:2] == (5, 4)


# --- 2. a per-user override, set by an admin ---------------------------------------------


def patch_limit(client, admin, user_id: str, value):
    return client.patch(
        f"{USERS}/{user_id}", json={"rate_limit_per_minute": value}, headers=admin.headers
    )


def test_an_override_lowers_the_users_limit_and_null_restores_the_default(
    monkeypatch, app, admin, alice, bob
):
    client = app_with(monkeypatch, RATE_LIMIT_USER_PER_MINUTE=5).test_client()

    updated = patch_limit(client, admin, alice.id, 2)
    assert updated.status_code == 200, updated.get_json()
    assert updated.get_json()["rate_limit_per_minute"] == 2

    for used in (1, 2):
        response = client.get(ME, headers=alice.headers)
        assert response.status_code == 200
        assert limit_headers(response)[:2] == (2, 2 - used)
    assert_rate_limited(client.get(CONVERSATIONS, headers=alice.headers), 2)
    assert limit_headers(client.get(ME, headers=bob.headers))[:2] == (5, 4)  # only alice

    restored = patch_limit(client, admin, alice.id, None)
    assert restored.status_code == 200, restored.get_json()
    assert restored.get_json()["rate_limit_per_minute"] is None

    response = client.get(ME, headers=alice.headers)
    assert response.status_code == 200
    assert response.get_json()["rate_limit_per_minute"] is None
    assert limit_headers(response)[0] == 5


def test_an_override_can_raise_the_limit_above_the_default(monkeypatch, app, admin, alice):
    client = app_with(monkeypatch, RATE_LIMIT_USER_PER_MINUTE=5).test_client()
    assert patch_limit(client, admin, alice.id, 7).status_code == 200

    use_up(client, alice.headers, 7)

    assert_rate_limited(client.get(ME, headers=alice.headers), 7)


def test_an_override_applies_to_the_users_api_keys(monkeypatch, app, admin, alice):
    client = app_with(monkeypatch, RATE_LIMIT_USER_PER_MINUTE=5).test_client()
    key = x_api_key(client, alice)
    assert patch_limit(client, admin, alice.id, 2).status_code == 200

    use_up(client, key, 2)

    assert_rate_limited(client.get(ME, headers=key), 2)


def test_the_override_is_shown_to_the_admin_and_the_user(client, admin, alice, bob):
    assert client.get(ME, headers=alice.headers).get_json()["rate_limit_per_minute"] is None

    assert patch_limit(client, admin, alice.id, 7).status_code == 200

    page = client.get(USERS, headers=admin.headers)
    assert page.status_code == 200
    limits = {item["email"]: item["rate_limit_per_minute"] for item in page.get_json()["items"]}
    assert limits == {alice.email: 7, bob.email: None, admin.email: None}
    assert client.get(ME, headers=alice.headers).get_json()["rate_limit_per_minute"] == 7


@pytest.mark.parametrize("value", [0, -1, 1_000_001, "5", 1.5, True, [5]])
def test_an_invalid_override_is_422_and_changes_nothing(client, admin, alice, value):
    assert patch_limit(client, admin, alice.id, 3).status_code == 200

    error = error_of(patch_limit(client, admin, alice.id, value), 422, "validation_error")

    assert "rate_limit_per_minute" in error["details"]["json"]
    assert client.get(ME, headers=alice.headers).get_json()["rate_limit_per_minute"] == 3


def test_a_user_cannot_set_their_own_limit(client, alice):
    error_of(patch_limit(client, alice, alice.id, 100000), 403, "forbidden")

    for body in ({"rate_limit_per_minute": 100000}, {"name": "A", "rate_limit_per_minute": 9}):
        error = error_of(client.put(ME, json=body, headers=alice.headers), 422, "validation_error")
        assert "rate_limit_per_minute" in error["details"]["json"]

    me = client.get(ME, headers=alice.headers).get_json()
    assert me["rate_limit_per_minute"] is None
    assert me["name"] == "Alice"


def test_an_override_keeps_the_users_tokens_and_keys_working(client, admin, alice):
    key = x_api_key(client, alice)

    assert patch_limit(client, admin, alice.id, 50).status_code == 200

    assert client.get(ME, headers=alice.headers).status_code == 200
    assert client.get(ME, headers=key).status_code == 200
    refreshed = client.post("/api/auth/refresh", headers=bearer(alice.refresh_token))
    assert refreshed.status_code == 200, refreshed.get_json()
    # While a role change in the same way does cut the old tokens off.
    promoted = client.patch(f"{USERS}/{alice.id}", json={"role": "admin"}, headers=admin.headers)
    assert promoted.status_code == 200
    error_of(client.get(ME, headers=alice.headers), 401)


# --- 3. jobs in flight ---------------------------------------------------------------------


def test_the_job_over_the_in_flight_cap_is_429_and_not_created(monkeypatch, app, alice, bob):
    client = app_with(monkeypatch, MAX_JOBS_IN_FLIGHT=3).test_client()
    jobs = []
    for n in range(3):
        response = submit(client, alice, f"job {n}")
        assert response.status_code == 202, response.get_json()
        jobs.append(response.get_json())

    refused = submit(client, alice, "one too many")

    error = error_of(refused, 429, "too_many_jobs_in_flight")
    assert error["details"] == {"in_flight": 3, "limit": 3}
    assert int(refused.headers["Retry-After"]) > 0
    assert count_rows(app, Job, alice.id) == 3
    assert count_rows(app, Conversation, alice.id) == 3  # nothing written for the refusal
    listing = client.get(JOBS, headers=alice.headers).get_json()
    assert {job["id"] for job in listing["items"]} == {job["id"] for job in jobs}

    other = submit(client, bob, "bob's own")
    assert other.status_code == 202, other.get_json()


def test_cancelling_a_job_frees_a_place(monkeypatch, app, alice):
    client = app_with(monkeypatch, MAX_JOBS_IN_FLIGHT=3).test_client()
    ids = []
    for n in range(3):
        response = submit(client, alice, f"job {n}")
        assert response.status_code == 202, response.get_json()
        ids.append(response.get_json()["id"])
    error_of(submit(client, alice), 429, "too_many_jobs_in_flight")

    cancelled = client.delete(f"{JOBS}/{ids[0]}", headers=alice.headers)
    assert cancelled.status_code == 202, cancelled.get_json()
    assert cancelled.get_json()["status"] == "cancelled"

    again = submit(client, alice, "in its place")
    assert again.status_code == 202, again.get_json()
    full = submit(client, alice, "and one more")
    assert error_of(full, 429, "too_many_jobs_in_flight")["details"] == {
        "in_flight": 3,
        "limit": 3,
    }
    assert count_rows(app, Job, alice.id) == 4


def test_the_in_flight_cap_counts_jobs_submitted_with_api_keys(monkeypatch, app, alice):
    client = app_with(monkeypatch, MAX_JOBS_IN_FLIGHT=2).test_client()
    key = x_api_key(client, alice)
    assert submit(client, alice).status_code == 202
    assert client.post(JOBS, json={"message": "hi"}, headers=key).status_code == 202

    refused = client.post(JOBS, json={"message": "hi"}, headers=key)

    assert error_of(refused, 429, "too_many_jobs_in_flight")["details"] == {
        "in_flight": 2,
        "limit": 2,
    }


def test_zero_jobs_in_flight_means_no_cap(monkeypatch, app, alice):
    client = app_with(monkeypatch, MAX_JOBS_IN_FLIGHT=0).test_client()

    for n in range(12):
        response = submit(client, alice, f"job {n}")
        assert response.status_code == 202, (n, response.get_json())

    assert count_rows(app, Job, alice.id) == 12


# --- 4. the daily token quota ------------------------------------------------------------


def test_a_used_up_daily_quota_is_429_until_midnight(monkeypatch, app, alice, bob):
    away_from_midnight()
    client = app_with(monkeypatch, DAILY_TOKEN_QUOTA=1000).test_client()
    now = datetime.now(UTC)
    add_usage(app, alice.id, 300, 300, now - timedelta(seconds=5))
    add_usage(app, alice.id, 150, 250, max(midnight_utc(), now - timedelta(hours=2)))

    refused = submit(client, alice)

    error = error_of(refused, 429, "daily_token_quota_exceeded")
    assert error["details"] == {"used": 1000, "quota": 1000}
    retry_after = int(refused.headers["Retry-After"])
    assert 0 < retry_after <= 86400
    until_midnight = (midnight_utc() + timedelta(days=1) - datetime.now(UTC)).total_seconds()
    assert abs(retry_after - until_midnight) <= 5, (retry_after, until_midnight)
    assert count_rows(app, Job, alice.id) == 0

    other = submit(client, bob)
    assert other.status_code == 202, other.get_json()


def test_a_quota_just_short_of_the_limit_still_admits(monkeypatch, app, alice, bob):
    away_from_midnight()
    client = app_with(monkeypatch, DAILY_TOKEN_QUOTA=1000).test_client()
    today = datetime.now(UTC) - timedelta(seconds=5)
    add_usage(app, alice.id, 500, 499, today)
    add_usage(app, alice.id, 2500, 2500, midnight_utc() - timedelta(minutes=1))  # yesterday
    add_usage(app, bob.id, 4000, 4000, today)  # someone else's tokens

    response = submit(client, alice)

    assert response.status_code == 202, response.get_json()
    # Bob's own usage is over the quota.
    error = error_of(submit(client, bob), 429, "daily_token_quota_exceeded")
    assert error["details"] == {"used": 8000, "quota": 1000}


def test_a_zero_quota_means_no_quota(monkeypatch, app, alice):
    away_from_midnight()
    client = app_with(monkeypatch, DAILY_TOKEN_QUOTA=0).test_client()
    add_usage(app, alice.id, 2500, 2500, datetime.now(UTC) - timedelta(seconds=5))

    response = submit(client, alice)

    assert response.status_code == 202, response.get_json()


# --- 5. usage-cleanup --------------------------------------------------------------------


def test_usage_cleanup_deletes_rows_older_than_the_retention(monkeypatch, app, alice):
    cli_app = app_with(monkeypatch, USAGE_RETENTION_DAYS=30)
    now = datetime.now(UTC)
    for age in (timedelta(days=45), timedelta(days=30, hours=1), timedelta(days=29), timedelta()):
        add_usage(app, alice.id, 1, 1, now - age)

    result = cli_app.test_cli_runner().invoke(args=["usage-cleanup"])

    assert result.exit_code == 0, result.output
    assert "Deleted 2 usage records" in result.output
    kept = usage_created_ats(app)
    assert len(kept) == 2
    assert all(now - created <= timedelta(days=29, minutes=1) for created in kept), kept


def test_usage_cleanup_days_option_overrides_the_retention(monkeypatch, app, alice):
    cli_app = app_with(monkeypatch, USAGE_RETENTION_DAYS=30)
    now = datetime.now(UTC)
    for age in (timedelta(days=6), timedelta(days=4)):
        add_usage(app, alice.id, 1, 1, now - age)

    result = cli_app.test_cli_runner().invoke(args=["usage-cleanup", "--days", "5"])

    assert result.exit_code == 0, result.output
    assert "Deleted 1 usage records" in result.output
    assert len(usage_created_ats(app)) == 1


def test_usage_cleanup_with_zero_days_deletes_everything(monkeypatch, app, alice, bob):
    cli_app = app_with(monkeypatch, USAGE_RETENTION_DAYS=30)
    now = datetime.now(UTC)
    for user, age in (
        (alice, timedelta(days=2)),
        (alice, timedelta(seconds=1)),
        (bob, timedelta()),
    ):
        add_usage(app, user.id, 1, 1, now - age)

    result = cli_app.test_cli_runner().invoke(args=["usage-cleanup", "--days", "0"])

    assert result.exit_code == 0, result.output
    assert "Deleted 3 usage records" in result.output
    assert usage_created_ats(app) == []


def test_usage_cleanup_with_nothing_to_delete_says_so(monkeypatch, app, alice):
    cli_app = app_with(monkeypatch, USAGE_RETENTION_DAYS=30)
    add_usage(app, alice.id, 1, 1, datetime.now(UTC))

    result = cli_app.test_cli_runner().invoke(args=["usage-cleanup"])

    assert result.exit_code == 0, result.output
    assert "Deleted 0 usage records" in result.output
    assert len(usage_created_ats(app)) == 1


def test_usage_cleanup_refuses_negative_days(monkeypatch, app, alice):
    cli_app = app_with(monkeypatch, USAGE_RETENTION_DAYS=30)
    add_usage(app, alice.id, 1, 1, datetime.now(UTC) - timedelta(days=40))

    result = cli_app.test_cli_runner().invoke(args=["usage-cleanup", "--days", "-1"])

    assert result.exit_code != 0
    assert len(usage_created_ats(app)) == 1


# --- the limits are exact across server processes ----------------------------------------


@pytest.mark.live
def test_the_limit_is_exact_across_four_gunicorn_workers(app, tmp_path):
    limit, total = 25, 60
    server = start_gunicorn(
        tmp_path / "g.log", env_overrides={"RATE_LIMIT_USER_PER_MINUTE": str(limit)}, workers=4
    )
    try:
        base = server.url
        headers = bearer_over_http(base, "racer@example.com")

        def get_me() -> requests.Response:
            return requests.get(f"{base}{ME}", headers=headers, timeout=30)

        # A first request opens the window; far from its end, the burst fits inside it.
        while True:
            first = get_me()
            assert first.status_code == 200, first.text
            assert limit_headers(first)[:2] == (limit, limit - 1)
            left = limit_headers(first)[2] - clock.time()
            if left >= 10:
                break
            clock.sleep(max(left, 0) + 1.5)

        with ThreadPoolExecutor(max_workers=20) as pool:
            responses = list(pool.map(lambda _: get_me(), range(total - 1)))
    finally:
        stop_gunicorn(server)

    statuses = [first.status_code] + [response.status_code for response in responses]
    assert statuses.count(200) == limit, statuses
    assert statuses.count(429) == total - limit, statuses
    for response in responses:
        if response.status_code == 429:
            assert response.json()["error"]["code"] == "rate_limited"
            assert int(response.headers["Retry-After"]) > 0


@pytest.mark.live
def test_the_in_flight_cap_is_exact_under_concurrent_submissions(app, tmp_path):
    cap, total = 3, 15
    server = start_gunicorn(
        tmp_path / "g.log", env_overrides={"MAX_JOBS_IN_FLIGHT": str(cap)}, workers=4
    )
    try:
        headers = bearer_over_http(server.url, "burst@example.com")

        def submit_one(n: int) -> requests.Response:
            return requests.post(
                f"{server.url}{JOBS}", json={"message": f"burst {n}"}, headers=headers, timeout=30
            )

        with ThreadPoolExecutor(max_workers=15) as pool:
            responses = list(pool.map(submit_one, range(total)))
    finally:
        stop_gunicorn(server)

    statuses = [response.status_code for response in responses]
    assert statuses.count(202) == cap, [(r.status_code, r.text[:200]) for r in responses]
    assert statuses.count(429) == total - cap, statuses
    for response in responses:
        if response.status_code == 429:
            assert response.json()["error"]["code"] == "too_many_jobs_in_flight"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Job)) == cap
