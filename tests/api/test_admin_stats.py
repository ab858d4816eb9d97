"""Admin usage statistics: GET /api/admin/stats over the usage log.

Usage rows are written straight into the database (as tests/api/test_quotas.py does), at
chosen instants, so every figure of the report can be checked exactly.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from core.db import db
from core.models import UsageRecord, User
from tests.conftest import register_and_login
from tests.helpers import error_of

STATS = "/api/admin/stats"
USERS = "/api/admin/users"

LIGHT = ("llama3.2:3b", "light")
HEAVY = ("qwen2.5:14b", "heavy")

# A fixed day, far from "now", so the defaults never reach it.
FROM = datetime(2024, 3, 10, tzinfo=UTC)
TO = datetime(2024, 3, 11, tzinfo=UTC)
RANGE = {"from": FROM.isoformat(), "to": TO.isoformat()}
TICK = timedelta(microseconds=1)  # the resolution of PostgreSQL's timestamps

FIGURES = {
    "requests",
    "jobs",
    "errors",
    "cache_hits",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
}
ZERO = dict.fromkeys(FIGURES, 0)


# --- helpers -----------------------------------------------------------------------------


def add_usage(
    app,
    user_id: str,
    created_at: datetime,
    *,
    model: tuple[str, str] = LIGHT,
    status: str = "succeeded",
    prompt: int = 0,
    completion: int = 0,
    cached: bool = False,
) -> None:
    with app.app_context():
        db.session.add(
            UsageRecord(
                user_id=uuid.UUID(user_id),
                model=model[0],
                tier=model[1],
                status=status,
                prompt_tokens=prompt,
                completion_tokens=completion,
                cached=cached,
                created_at=created_at,
            )
        )
        db.session.commit()


def add_user(app, email: str) -> str:
    with app.app_context():
        user = User(email=email, name=email.split("@")[0], password_hash="!" * 60)
        db.session.add(user)
        db.session.commit()
        return str(user.id)


def get_stats(client, admin, **query) -> dict:
    response = client.get(STATS, query_string=query, headers=admin.headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def figures(
    requests=0, jobs=0, errors=0, cache_hits=0, prompt_tokens=0, completion_tokens=0
) -> dict:
    return {
        "requests": requests,
        "jobs": jobs,
        "errors": errors,
        "cache_hits": cache_hits,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def user_row(account, **counts) -> dict:
    return {"user_id": account.id, "email": account.email, **figures(**counts)}


def model_row(model: tuple[str, str], **counts) -> dict:
    return {"model": model[0], "tier": model[1], **figures(**counts)}


def top_emails(body: dict) -> list[str]:
    return [row["email"] for row in body["top_users"]]


def parsed(value: str) -> datetime:
    return datetime.fromisoformat(value)


def seed_day(app, alice, bob) -> None:
    """Usage of alice and bob on two models/tiers, around and inside [FROM, TO)."""
    # alice
    add_usage(app, alice.id, FROM, prompt=100, completion=50)  # `from` is inclusive
    add_usage(app, alice.id, FROM + timedelta(hours=1), model=HEAVY, prompt=1000, completion=500)
    add_usage(app, alice.id, FROM + timedelta(hours=2), status="failed", prompt=10)
    add_usage(app, alice.id, FROM + timedelta(hours=3), prompt=7, completion=9, cached=True)
    add_usage(app, alice.id, FROM - TICK, model=HEAVY, prompt=5000, completion=5000)  # before
    add_usage(app, alice.id, TO, prompt=9000, completion=9000)  # `to` is exclusive
    # bob
    add_usage(app, bob.id, FROM + timedelta(hours=4), model=HEAVY, prompt=200, completion=300)
    add_usage(app, bob.id, FROM + timedelta(hours=5), model=HEAVY, status="cancelled", prompt=20)
    add_usage(app, bob.id, FROM + timedelta(hours=6), prompt=40, completion=40, cached=True)
    add_usage(app, bob.id, TO - TICK, status="failed", prompt=1, completion=2)  # last instant
    add_usage(app, bob.id, TO + timedelta(hours=1), model=HEAVY, prompt=70_000)  # after


ALICE_DAY = {
    "requests": 4,
    "jobs": 3,
    "errors": 1,
    "cache_hits": 1,
    "prompt_tokens": 1110,
    "completion_tokens": 550,
}
BOB_DAY = {
    "requests": 4,
    "jobs": 3,
    "errors": 1,
    "cache_hits": 1,
    "prompt_tokens": 221,
    "completion_tokens": 302,
}


# --- who may call ------------------------------------------------------------------------


def test_admin_endpoints_need_authentication(client, alice):
    error_of(client.get(STATS), 401, "unauthorized")
    error_of(client.get(USERS), 401, "unauthorized")
    error_of(client.patch(f"{USERS}/{alice.id}", json={"role": "admin"}), 401, "unauthorized")


def test_a_normal_user_with_a_jwt_is_403_on_every_admin_endpoint(client, alice, bob):
    error_of(client.get(STATS, headers=alice.headers), 403, "forbidden")
    error_of(client.get(USERS, headers=alice.headers), 403, "forbidden")
    response = client.patch(f"{USERS}/{bob.id}", json={"role": "admin"}, headers=alice.headers)
    error_of(response, 403, "forbidden")


def test_a_normal_user_with_an_api_key_is_403_on_stats(client, alice):
    created = client.post("/api/user/api-keys", json={"name": "k"}, headers=alice.headers)
    assert created.status_code == 201, created.get_json()

    response = client.get(STATS, headers={"X-API-Key": created.get_json()["key"]})

    error_of(response, 403, "forbidden")


def test_a_normal_user_gets_403_before_query_validation(client, alice):
    error_of(client.get(f"{STATS}?top=0&bogus=1", headers=alice.headers), 403, "forbidden")
    error_of(client.get(f"{STATS}?top=0"), 401, "unauthorized")


def test_an_admin_api_key_reaches_stats(client, admin):
    created = client.post("/api/user/api-keys", json={"name": "k"}, headers=admin.headers)
    assert created.status_code == 201, created.get_json()

    response = client.get(STATS, headers={"X-API-Key": created.get_json()["key"]})

    assert response.status_code == 200, response.get_json()


# --- figures -----------------------------------------------------------------------------


def test_the_report_has_the_documented_shape(app, client, admin, alice, bob):
    seed_day(app, alice, bob)

    body = get_stats(client, admin, **RANGE)

    assert set(body) == {"from", "to", "totals", "by_user", "by_model", "top_users"}
    assert set(body["totals"]) == FIGURES
    assert all(set(row) == FIGURES | {"user_id", "email"} for row in body["by_user"])
    assert all(set(row) == FIGURES | {"model", "tier"} for row in body["by_model"])
    assert all(set(row) == {"user_id", "email", "total_tokens"} for row in body["top_users"])
    assert parsed(body["from"]) == FROM
    assert parsed(body["to"]) == TO


def test_totals_count_the_range_from_inclusive_to_exclusive(app, client, admin, alice, bob):
    seed_day(app, alice, bob)

    body = get_stats(client, admin, **RANGE)

    assert body["totals"] == figures(
        requests=8,
        jobs=6,
        errors=2,
        cache_hits=2,
        prompt_tokens=1331,
        completion_tokens=852,
    )


def test_by_user_has_exact_figures_sorted_by_total_tokens(app, client, admin, alice, bob):
    seed_day(app, alice, bob)

    body = get_stats(client, admin, **RANGE)

    assert body["by_user"] == [user_row(alice, **ALICE_DAY), user_row(bob, **BOB_DAY)]


def test_by_model_has_exact_figures_per_model_and_tier_sorted_by_total_tokens(
    app, client, admin, alice, bob
):
    seed_day(app, alice, bob)

    body = get_stats(client, admin, **RANGE)

    assert body["by_model"] == [
        model_row(
            HEAVY,
            requests=3,
            jobs=3,
            errors=0,
            cache_hits=0,
            prompt_tokens=1220,
            completion_tokens=800,
        ),
        model_row(
            LIGHT,
            requests=5,
            jobs=3,
            errors=2,
            cache_hits=2,
            prompt_tokens=111,
            completion_tokens=52,
        ),
    ]


def test_top_users_lists_users_by_total_tokens(app, client, admin, alice, bob):
    seed_day(app, alice, bob)

    body = get_stats(client, admin, **RANGE)

    assert body["top_users"] == [
        {"user_id": alice.id, "email": alice.email, "total_tokens": 1660},
        {"user_id": bob.id, "email": bob.email, "total_tokens": 523},
    ]


def test_the_same_model_in_two_tiers_makes_two_rows(app, client, admin, alice):
    add_usage(app, alice.id, FROM, model=("llama3.2:3b", "light"), prompt=1, completion=1)
    add_usage(app, alice.id, FROM, model=("llama3.2:3b", "heavy"), prompt=5, completion=5)

    body = get_stats(client, admin, **RANGE)

    assert body["by_model"] == [
        model_row(
            ("llama3.2:3b", "heavy"), requests=1, jobs=1, prompt_tokens=5, completion_tokens=5
        ),
        model_row(
            ("llama3.2:3b", "light"), requests=1, jobs=1, prompt_tokens=1, completion_tokens=1
        ),
    ]


def test_users_are_ranked_by_tokens_not_by_requests(app, client, admin, alice, bob):
    for minute in range(5):
        add_usage(app, alice.id, FROM + timedelta(minutes=minute), prompt=10, completion=10)
    add_usage(app, bob.id, FROM + timedelta(hours=1), model=HEAVY, prompt=300, completion=1)
    # Cached tokens cost nothing: they do not lift alice above bob.
    add_usage(app, alice.id, FROM + timedelta(hours=2), prompt=5000, cached=True)

    body = get_stats(client, admin, **RANGE)

    assert [row["email"] for row in body["by_user"]] == [bob.email, alice.email]
    assert [row["total_tokens"] for row in body["by_user"]] == [301, 100]
    assert top_emails(body) == [bob.email, alice.email]
    assert [row["tier"] for row in body["by_model"]] == ["heavy", "light"]


def test_top_truncates_the_top_users_but_not_by_user(app, client, admin, alice, bob):
    carol = register_and_login(client, "carol@example.com")
    seed_day(app, alice, bob)
    add_usage(app, carol.id, FROM + timedelta(hours=7), prompt=600, completion=0)

    one = get_stats(client, admin, **RANGE, top=1)
    two = get_stats(client, admin, **RANGE, top=2)
    default = get_stats(client, admin, **RANGE)

    assert top_emails(one) == [alice.email]
    assert top_emails(two) == [alice.email, carol.email]
    assert top_emails(default) == [alice.email, carol.email, bob.email]
    assert [row["email"] for row in one["by_user"]] == [alice.email, carol.email, bob.email]
    assert one["totals"] == two["totals"] == default["totals"]


def test_top_defaults_to_ten(app, client, admin):
    # More users than the registration rate limit lets a test sign up: straight into the
    # database, since they never log in.
    user_ids = [add_user(app, f"user{n}@example.com") for n in range(12)]
    for n, user_id in enumerate(user_ids):
        add_usage(app, user_id, FROM, prompt=100 * (n + 1))

    body = get_stats(client, admin, **RANGE)

    assert len(body["by_user"]) == 12
    assert top_emails(body) == [f"user{n}@example.com" for n in range(11, 1, -1)]
    assert [row["total_tokens"] for row in body["top_users"]] == [
        100 * (n + 1) for n in range(11, 1, -1)
    ]
    assert [row["user_id"] for row in body["top_users"]] == user_ids[11:1:-1]


def test_a_user_without_usage_in_the_range_is_left_out(app, client, admin, alice, bob):
    add_usage(app, alice.id, FROM + timedelta(hours=1), prompt=3, completion=4)
    add_usage(app, bob.id, FROM - TICK, prompt=50)
    add_usage(app, bob.id, TO, prompt=50)

    body = get_stats(client, admin, **RANGE)

    assert [row["user_id"] for row in body["by_user"]] == [alice.id]
    assert [row["user_id"] for row in body["top_users"]] == [alice.id]
    assert body["totals"] == figures(requests=1, jobs=1, prompt_tokens=3, completion_tokens=4)


def test_a_user_with_only_cached_answers_appears_with_no_tokens(app, client, admin, alice):
    add_usage(app, alice.id, FROM, prompt=30, completion=40, cached=True)

    body = get_stats(client, admin, **RANGE)

    assert body["by_user"] == [user_row(alice, requests=1, cache_hits=1)]
    assert body["totals"] == figures(requests=1, cache_hits=1)


def test_an_empty_range_gives_zeros(app, client, admin, alice, bob):
    seed_day(app, alice, bob)
    later = {"from": "2024-03-12T00:00:00Z", "to": "2024-03-13T00:00:00Z"}

    body = get_stats(client, admin, **later)

    assert body["totals"] == ZERO
    assert body["by_user"] == []
    assert body["by_model"] == []
    assert body["top_users"] == []


def test_an_empty_usage_log_gives_zeros(client, admin):
    body = get_stats(client, admin)

    assert body["totals"] == ZERO
    assert (body["by_user"], body["by_model"], body["top_users"]) == ([], [], [])


# --- the time range ----------------------------------------------------------------------


def test_the_default_range_is_the_last_24_hours(app, client, admin, alice):
    now = datetime.now(UTC)
    add_usage(app, alice.id, now - timedelta(hours=25), prompt=1000)
    add_usage(app, alice.id, now - timedelta(hours=1), prompt=3, completion=2)
    add_usage(app, alice.id, now + timedelta(hours=1), prompt=100_000)  # not yet

    body = get_stats(client, admin)
    after = datetime.now(UTC)

    assert body["totals"] == figures(requests=1, jobs=1, prompt_tokens=3, completion_tokens=2)
    assert body["by_user"] == [
        user_row(alice, requests=1, jobs=1, prompt_tokens=3, completion_tokens=2)
    ]
    to = parsed(body["to"])
    assert now <= to <= after
    assert to - parsed(body["from"]) == timedelta(hours=24)


def test_with_only_to_the_range_is_the_24_hours_before_it(app, client, admin, alice):
    add_usage(app, alice.id, TO - timedelta(hours=24), prompt=1)
    add_usage(app, alice.id, TO - timedelta(hours=24) - TICK, prompt=10)
    add_usage(app, alice.id, TO - TICK, prompt=100)
    add_usage(app, alice.id, TO, prompt=1000)

    body = get_stats(client, admin, to=TO.isoformat())

    assert parsed(body["from"]) == TO - timedelta(hours=24)
    assert parsed(body["to"]) == TO
    assert body["totals"]["prompt_tokens"] == 101


def test_with_only_from_the_range_ends_now(app, client, admin, alice):
    since = datetime.now(UTC) - timedelta(days=3)
    add_usage(app, alice.id, since - TICK, prompt=1000)
    add_usage(app, alice.id, since, prompt=1)
    add_usage(app, alice.id, datetime.now(UTC) - timedelta(minutes=1), prompt=10)
    add_usage(app, alice.id, datetime.now(UTC) + timedelta(hours=1), prompt=100)

    before = datetime.now(UTC)
    body = get_stats(client, admin, **{"from": since.isoformat()})

    assert parsed(body["from"]) == since
    assert before <= parsed(body["to"]) <= datetime.now(UTC)
    assert body["totals"]["prompt_tokens"] == 11


def test_a_naive_datetime_is_utc(app, client, admin, alice):
    add_usage(app, alice.id, FROM - timedelta(minutes=30), prompt=1000)
    add_usage(app, alice.id, FROM + timedelta(minutes=30), prompt=1)
    add_usage(app, alice.id, TO - timedelta(minutes=30), prompt=10)
    add_usage(app, alice.id, TO + timedelta(minutes=30), prompt=100)

    body = get_stats(client, admin, **{"from": "2024-03-10T00:00:00", "to": "2024-03-11T00:00:00"})

    assert parsed(body["from"]) == FROM
    assert parsed(body["from"]).utcoffset() == timedelta(0)
    assert parsed(body["to"]) == TO
    assert body["totals"]["prompt_tokens"] == 11


def test_a_z_suffix_is_utc(app, client, admin, alice):
    add_usage(app, alice.id, FROM, prompt=1)
    add_usage(app, alice.id, FROM - TICK, prompt=10)

    body = get_stats(
        client, admin, **{"from": "2024-03-10T00:00:00Z", "to": "2024-03-11T00:00:00Z"}
    )

    assert parsed(body["from"]) == FROM
    assert body["totals"]["prompt_tokens"] == 1


def test_an_offset_is_honoured(app, client, admin, alice):
    tokyo = timezone(timedelta(hours=9))
    # 09:00+09:00 is midnight UTC: the range is FROM..TO, not 09:00 UTC to 09:00 UTC.
    since = datetime(2024, 3, 10, 9, tzinfo=tokyo)
    until = datetime(2024, 3, 11, 9, tzinfo=tokyo)
    add_usage(app, alice.id, FROM + timedelta(hours=1), prompt=1)  # inside
    add_usage(app, alice.id, FROM - timedelta(hours=1), prompt=10)  # before
    add_usage(app, alice.id, TO + timedelta(hours=5), prompt=100)  # after (08:00 UTC)

    body = get_stats(client, admin, **{"from": since.isoformat(), "to": until.isoformat()})

    assert parsed(body["from"]) == FROM
    assert parsed(body["to"]) == TO
    assert body["totals"]["prompt_tokens"] == 1


def test_a_range_of_exactly_366_days_is_allowed(app, client, admin, alice):
    until = datetime(2025, 3, 1, tzinfo=UTC)
    since = until - timedelta(days=366)
    add_usage(app, alice.id, since, prompt=1)

    body = get_stats(client, admin, **{"from": since.isoformat(), "to": until.isoformat()})

    assert body["totals"]["prompt_tokens"] == 1


# --- invalid queries ---------------------------------------------------------------------


def stats_error(client, admin, query: dict) -> dict:
    response = client.get(STATS, query_string=query, headers=admin.headers)
    return error_of(response, 422, "validation_error")


@pytest.mark.parametrize(
    "query",
    [
        {"from": "2024-03-10T00:00:00Z", "to": "2024-03-10T00:00:00Z"},
        {"from": "2024-03-11T00:00:00Z", "to": "2024-03-10T00:00:00Z"},
        # The same instant written in two offsets.
        {"from": "2024-03-10T09:00:00+09:00", "to": "2024-03-10T00:00:00Z"},
        {"from": "2024-03-10T00:00:00.000001Z", "to": "2024-03-10T00:00:00Z"},
    ],
)
def test_from_not_before_to_is_422(client, admin, query):
    error = stats_error(client, admin, query)

    assert "from" in error["details"]["query"]


def test_from_in_the_future_without_to_is_422(client, admin):
    since = datetime.now(UTC) + timedelta(hours=1)

    error = stats_error(client, admin, {"from": since.isoformat()})

    assert "from" in error["details"]["query"]


@pytest.mark.parametrize(
    "query",
    [
        {"from": "2024-01-01T00:00:00Z", "to": "2025-01-01T00:00:01Z"},  # 366 days + 1 s
        {"from": "2020-01-01T00:00:00Z", "to": "2024-01-01T00:00:00Z"},
        {"from": "2020-01-01T00:00:00Z"},  # to defaults to now
    ],
)
def test_a_range_over_366_days_is_422(client, admin, query):
    error = stats_error(client, admin, query)

    assert "366" in error["message"]
    assert "from" in error["details"]["query"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"from": "yesterday"}, "from"),
        ({"from": "2024-13-01T00:00:00Z"}, "from"),
        ({"from": "2024-03-10T25:00:00Z"}, "from"),
        ({"from": ""}, "from"),
        ({"to": "2024-03-10 noon"}, "to"),
        ({"to": "1710028800"}, "to"),
        ({"to": "2024-03-10T00:00:00+25:00"}, "to"),
    ],
)
def test_a_malformed_datetime_is_422(client, admin, query, field):
    error = stats_error(client, admin, query)

    assert field in error["details"]["query"]


@pytest.mark.parametrize("param", ["since", "until", "user_id", "fro"])
def test_an_unknown_query_parameter_is_422(client, admin, param):
    error = stats_error(client, admin, {**RANGE, param: "x"})

    assert param in error["details"]["query"]


@pytest.mark.parametrize("top", ["0", "101", "-1", "ten", "1.5", ""])
def test_top_out_of_range_or_not_an_integer_is_422(client, admin, top):
    error = stats_error(client, admin, {**RANGE, "top": top})

    assert "top" in error["details"]["query"]


@pytest.mark.parametrize("top", [1, 100])
def test_top_bounds_are_allowed(app, client, admin, alice, top):
    add_usage(app, alice.id, FROM, prompt=1)

    body = get_stats(client, admin, **RANGE, top=top)

    assert top_emails(body) == [alice.email]


def test_a_to_at_the_start_of_time_is_422_not_a_server_error(client, admin):
    # from defaults to 24 h before `to`, which does not exist for year 1.
    error = stats_error(client, admin, {"to": "0001-01-01T00:00:00Z"})

    assert error["details"]["query"]
