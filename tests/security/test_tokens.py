"""Abuse of credentials: forged, expired, misused and revoked JWTs, revoked API keys,
malformed headers, and plain users on admin routes.

Every refusal is a 401 in the gateway's error shape with `WWW-Authenticate: Bearer`
(OpenAI's error shape under /v1), and a plain user's valid credentials on an admin route
are a 403. Routes are enumerated from the app's URL map, so a route added later is covered
(or fails here until it is classified).
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
import warnings
from collections.abc import Callable

import jwt
import pytest

from tests.conftest import Account, make_admin, register_and_login
from tests.helpers import app_with, assert_unauthorized, bearer, error_of

ME = "/api/user/me"
REFRESH = "/api/auth/refresh"
LOGOUT = "/api/auth/logout"

# (method, rule) as in app.url_map.
PUBLIC_ROUTES = {
    ("POST", "/api/auth/register"),
    ("POST", "/api/auth/login"),
    ("GET", "/health"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/assets/<path:filename>"),
}
# The Prometheus scrape has its own credential (METRICS_TOKEN) or none from this host's
# loopback: tested on its own below.
PROMETHEUS = ("GET", "/metrics")
ADMIN_ROUTES = {
    ("GET", "/api/admin/users"),
    ("PATCH", "/api/admin/users/<uuid:user_id>"),
    ("DELETE", "/api/admin/users/<uuid:user_id>/sessions"),
    ("GET", "/api/admin/stats"),
    ("GET", "/api/metrics/"),
}
# Routes that end the login session of the token they are called with.
ENDS_THE_SESSION = {("POST", "/api/auth/logout"), ("DELETE", "/api/user/sessions")}
AUTH_CODES = {"unauthorized", "invalid_token", "invalid_api_key", "token_expired", "token_revoked"}


# --- helpers --------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def unsigned(claims: dict, alg: str = "none", signature: str = "") -> str:
    """A token made by hand: header, claims and the given (by default empty) signature."""
    header = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims).encode())
    return f"{header}.{payload}.{signature}"


def signed(claims: dict, key: str, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def real_secret(app) -> str:
    return app.config["JWT_SECRET_KEY"]


def path_for(rule: str) -> str:
    """A concrete path for a URL rule: a random (unknown) uuid for every argument."""
    return re.sub(r"<[^>]+>", str(uuid.uuid4()), rule)


def routes(app) -> set[tuple[str, str]]:
    return {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }


def assert_refused(response, path: str = ME, code: str | None = None) -> None:
    """A 401 with WWW-Authenticate: Bearer, in the shape of the route's API."""
    if path.startswith("/v1/"):
        assert response.status_code == 401, response.get_data(as_text=True)
        assert response.headers.get("WWW-Authenticate") == "Bearer"
        error = response.get_json()["error"]
        assert error["type"] == "authentication_error"
        assert code is None or error["code"] == code
        return
    error = assert_unauthorized(response, code)
    assert error["code"] in AUTH_CODES


def api_key_of(client, account: Account) -> dict:
    response = client.post("/api/user/api-keys", json={"name": "a key"}, headers=account.headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def set_active(client, admin: Account, account: Account, active: bool) -> None:
    response = client.patch(
        f"/api/admin/users/{account.id}", json={"is_active": active}, headers=admin.headers
    )
    assert response.status_code == 200, response.get_data(as_text=True)


def me(client, headers: dict[str, str]):
    return client.get(ME, headers=headers)


# --- forged and expired JWTs ----------------------------------------------------------------


def test_a_token_re_signed_by_hand_with_the_real_secret_is_accepted(app, client, alice):
    """The control for the forgeries below: the crafting itself makes a good token."""
    token = signed(claims_of(alice.access_token), real_secret(app))

    response = me(client, bearer(token))

    assert response.status_code == 200
    assert response.get_json()["id"] == alice.id


def _forge_alg_none(app, account):
    return unsigned(claims_of(account.access_token))


def _forge_alg_none_capitalized(app, account):
    return unsigned(claims_of(account.access_token), alg="None")


def _forge_alg_none_with_the_real_signature(app, account):
    return unsigned(claims_of(account.access_token), signature=account.access_token.split(".")[2])


def _forge_wrong_key(app, account):
    return signed(claims_of(account.access_token), "not-the-gateway-secret-" + "x" * 32)


def _forge_disallowed_algorithm(app, account):
    with warnings.catch_warnings():  # PyJWT warns that the secret is short for HS512
        warnings.simplefilter("ignore")
        return signed(claims_of(account.access_token), real_secret(app), algorithm="HS512")


def _forge_tampered_payload(app, account):
    """Alice's signature over claims that now say sub = someone else."""
    header, _payload, signature = account.access_token.split(".")
    claims = {**claims_of(account.access_token), "sub": str(uuid.uuid4())}
    return f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"


def _forge_expired(app, account):
    now = int(time.time())
    claims = {**claims_of(account.access_token), "iat": now - 3600, "nbf": now - 3600}
    return signed({**claims, "exp": now - 60}, real_secret(app))


def _forge_unknown_user(app, account):
    return signed({**claims_of(account.access_token), "sub": str(uuid.uuid4())}, real_secret(app))


def _forge_stale_version(app, account):
    """A well-signed token from before a password or role change."""
    claims = claims_of(account.access_token)
    return signed({**claims, "ver": claims["ver"] - 1}, real_secret(app))


FORGERIES: dict[str, tuple[Callable, str]] = {
    "alg-none": (_forge_alg_none, "invalid_token"),
    "alg-None": (_forge_alg_none_capitalized, "invalid_token"),
    "alg-none-keeping-the-signature": (_forge_alg_none_with_the_real_signature, "invalid_token"),
    "wrong-key": (_forge_wrong_key, "invalid_token"),
    "hs512-not-allowed": (_forge_disallowed_algorithm, "invalid_token"),
    "tampered-payload": (_forge_tampered_payload, "invalid_token"),
    "expired": (_forge_expired, "token_expired"),
    "unknown-user": (_forge_unknown_user, "invalid_token"),
    "stale-token-version": (_forge_stale_version, "invalid_token"),
}


@pytest.mark.parametrize("forgery", list(FORGERIES))
def test_a_forged_or_expired_token_is_401(app, client, alice, forgery):
    forge, code = FORGERIES[forgery]

    response = me(client, bearer(forge(app, alice)))

    assert_refused(response, code=code)
    assert alice.email not in response.get_data(as_text=True)


def test_every_protected_route_refuses_no_token_and_an_alg_none_token(app, client, alice):
    forged = _forge_alg_none(app, alice)
    protected = sorted(routes(app) - PUBLIC_ROUTES - {PROMETHEUS})
    assert len(protected) > 20  # the URL map was read

    failures = []
    for method, rule in protected:
        path = path_for(rule)
        for label, headers in (("no credentials", {}), ("alg none", bearer(forged))):
            response = client.open(path, method=method, json={}, headers=headers)
            try:
                assert_refused(response, path)
            except AssertionError as exc:
                failures.append(f"{method} {rule} with {label}: {response.status_code} {exc}")
    assert failures == []


REFRESH_FORGERIES: dict[str, tuple[Callable, str]] = {
    "alg-none": (lambda app, a: unsigned(claims_of(a.refresh_token)), "invalid_token"),
    "wrong-key": (
        lambda app, a: signed(claims_of(a.refresh_token), "not-the-gateway-secret-" + "x" * 32),
        "invalid_token",
    ),
    "expired": (
        lambda app, a: signed(
            {**claims_of(a.refresh_token), "exp": int(time.time()) - 60}, real_secret(app)
        ),
        "token_expired",
    ),
}


@pytest.mark.parametrize("forgery", list(REFRESH_FORGERIES))
def test_a_forged_or_expired_refresh_token_gets_no_new_pair(app, client, alice, forgery):
    forge, code = REFRESH_FORGERIES[forgery]

    response = client.post(REFRESH, headers=bearer(forge(app, alice)))

    assert_refused(response, REFRESH, code=code)
    assert "access_token" not in response.get_json()
    # The genuine refresh token was not used up by the forgery.
    assert client.post(REFRESH, headers=bearer(alice.refresh_token)).status_code == 200


# --- the wrong kind of token ----------------------------------------------------------------


def test_a_refresh_token_is_refused_as_an_access_token(client, alice):
    assert_refused(me(client, bearer(alice.refresh_token)), code="invalid_token")


def test_a_refresh_token_is_refused_on_an_admin_route_too(client, admin):
    response = client.get("/api/admin/users", headers=bearer(admin.refresh_token))

    assert_refused(response, "/api/admin/users", code="invalid_token")


def test_an_access_token_is_refused_on_the_refresh_endpoint(client, alice):
    response = client.post(REFRESH, headers=bearer(alice.access_token))

    assert_refused(response, REFRESH, code="invalid_token")
    assert "access_token" not in response.get_json()


def test_an_api_key_is_refused_on_the_refresh_endpoint(client, alice):
    key = api_key_of(client, alice)["key"]

    for headers in (bearer(key), {"X-API-Key": key}):
        response = client.post(REFRESH, headers=headers)
        assert_refused(response, REFRESH)
        assert "access_token" not in response.get_json()


# --- revoked tokens -------------------------------------------------------------------------


def test_tokens_of_a_logged_out_session_are_revoked(client, alice):
    assert client.post(LOGOUT, headers=alice.headers).status_code == 204

    assert_refused(me(client, alice.headers), code="token_revoked")
    assert_refused(client.post(REFRESH, headers=bearer(alice.refresh_token)), REFRESH)


def test_a_replayed_refresh_token_revokes_its_whole_session(client, alice):
    rotated = client.post(REFRESH, headers=bearer(alice.refresh_token))
    assert rotated.status_code == 200
    newer = rotated.get_json()

    replay = client.post(REFRESH, headers=bearer(alice.refresh_token))

    assert_refused(replay, REFRESH, code="token_revoked")
    assert_refused(me(client, bearer(newer["access_token"])), code="token_revoked")
    assert_refused(client.post(REFRESH, headers=bearer(newer["refresh_token"])), REFRESH)


# --- deactivated users ----------------------------------------------------------------------


def test_a_deactivated_users_tokens_and_keys_are_refused(client, alice, admin):
    key = api_key_of(client, alice)["key"]
    set_active(client, admin, alice, False)

    # The deactivation ended her login sessions.
    assert_refused(me(client, alice.headers), code="token_revoked")
    assert_refused(client.post(REFRESH, headers=bearer(alice.refresh_token)), REFRESH)
    assert_refused(me(client, {"X-API-Key": key}), code="invalid_api_key")
    assert_refused(me(client, bearer(key)), code="invalid_api_key")
    assert_refused(client.get("/v1/models", headers=bearer(key)), "/v1/models")


def test_reactivation_does_not_revive_tokens_issued_before_the_deactivation(client, alice, admin):
    set_active(client, admin, alice, False)
    set_active(client, admin, alice, True)

    assert_refused(me(client, alice.headers), code="token_revoked")
    assert_refused(client.post(REFRESH, headers=bearer(alice.refresh_token)), REFRESH)


def test_a_demoted_admins_earlier_token_cannot_reach_admin_routes(app, client, admin):
    other = make_admin(app, client, "second-admin@example.com")
    response = client.patch(
        f"/api/admin/users/{admin.id}", json={"role": "user"}, headers=other.headers
    )
    assert response.status_code == 200, response.get_data(as_text=True)

    assert_refused(client.get("/api/admin/users", headers=admin.headers), "/api/admin/users")


# --- revoked API keys -----------------------------------------------------------------------


@pytest.mark.parametrize("style", ["x-api-key", "bearer"])
def test_a_deleted_api_key_is_refused(client, alice, style):
    key = api_key_of(client, alice)
    headers = {"X-API-Key": key["key"]} if style == "x-api-key" else bearer(key["key"])
    assert me(client, headers).status_code == 200
    deleted = client.delete(f"/api/user/api-keys/{key['id']}", headers=alice.headers)
    assert deleted.status_code == 204

    assert_refused(me(client, headers), code="invalid_api_key")
    assert_refused(client.get("/v1/models", headers=headers), "/v1/models")


# --- malformed credentials ------------------------------------------------------------------


MALFORMED: dict[str, Callable[[Account], dict[str, str]]] = {
    "bearer-alone": lambda a: {"Authorization": "Bearer"},
    "bearer-and-space": lambda a: {"Authorization": "Bearer "},
    "basic": lambda a: {"Authorization": "Basic YWxpY2VAZXhhbXBsZS5jb206Y29ycmVjdA=="},
    "two-segments": lambda a: {"Authorization": "Bearer a.b"},
    "three-junk-segments": lambda a: {"Authorization": "Bearer a.b.c"},
    "garbage-bytes": lambda a: {"Authorization": "Bearer \xff\xfe\xfd\x80\x7f"},
    "garbage-scheme": lambda a: {"Authorization": "\xff\xfe \x80"},
    "no-scheme": lambda a: {"Authorization": a.access_token},
    "other-scheme": lambda a: {"Authorization": f"Token {a.access_token}"},
    "trailing-junk": lambda a: {"Authorization": f"Bearer {a.access_token} junk"},
    "token-with-junk-appended": lambda a: {"Authorization": f"Bearer {a.access_token}x"},
    "empty-x-api-key": lambda a: {"X-API-Key": ""},
    "jwt-in-x-api-key": lambda a: {"X-API-Key": a.access_token},
    "garbage-x-api-key": lambda a: {"X-API-Key": "gw_" + "\xff" * 43},
    "short-key-as-bearer": lambda a: {"Authorization": "Bearer gw_short"},
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_credential_is_401(client, alice, case):
    response = me(client, MALFORMED[case](alice))

    assert_refused(response)
    assert alice.email not in response.get_data(as_text=True)


# --- admin routes ---------------------------------------------------------------------------

PLAIN_USER_CREDENTIALS: dict[str, Callable[[Account], dict[str, str]]] = {
    "jwt": lambda a: bearer(a.access_token),
    "x-api-key": lambda a: {"X-API-Key": a.extra["api_key"]},
    "api-key-as-bearer": lambda a: bearer(a.extra["api_key"]),
}
ADMIN_REQUESTS = {
    ("GET", "/api/admin/users"): None,
    ("PATCH", "/api/admin/users/<uuid:user_id>"): {"is_active": False},
    ("DELETE", "/api/admin/users/<uuid:user_id>/sessions"): None,
    ("GET", "/api/admin/stats"): None,
    ("GET", "/api/metrics/"): None,
}


@pytest.fixture
def plain_user(client) -> Account:
    account = register_and_login(client, "plain@example.com")
    account.extra["api_key"] = api_key_of(client, account)["key"]
    return account


def test_the_admin_routes_are_the_ones_under_api_admin_and_the_metrics(app):
    found = routes(app)
    under_admin = {(m, r) for m, r in found if r.startswith("/api/admin")}

    assert under_admin <= ADMIN_ROUTES, "a route under /api/admin missing from ADMIN_ROUTES"
    assert found >= ADMIN_ROUTES, "ADMIN_ROUTES lists a route the app no longer has"
    assert set(ADMIN_REQUESTS) == ADMIN_ROUTES


def test_exactly_the_admin_routes_refuse_a_plain_user_with_403(app, client, plain_user):
    """Every authenticated route, asked by a plain user with harmless inputs (unknown ids,
    empty bodies): the ones answering 403 are the admin routes, wherever they live."""
    forbidden = set()
    for method, rule in sorted(routes(app) - PUBLIC_ROUTES - {PROMETHEUS} - ENDS_THE_SESSION):
        response = client.open(path_for(rule), method=method, json={}, headers=plain_user.headers)
        assert response.status_code != 500, f"{method} {rule}: {response.get_data(as_text=True)}"
        if response.status_code == 403:
            forbidden.add((method, rule))

    assert forbidden == ADMIN_ROUTES


@pytest.mark.parametrize("credential", list(PLAIN_USER_CREDENTIALS))
@pytest.mark.parametrize("route", sorted(ADMIN_ROUTES), ids=lambda r: f"{r[0]} {r[1]}")
def test_a_plain_users_valid_credential_is_403_on_admin_routes(
    client, admin, alice, plain_user, route, credential
):
    method, rule = route
    path = rule.replace("<uuid:user_id>", alice.id)

    response = client.open(
        path,
        method=method,
        json=ADMIN_REQUESTS[route],
        headers=PLAIN_USER_CREDENTIALS[credential](plain_user),
    )

    error_of(response, 403, "forbidden")
    text = response.get_data(as_text=True)
    assert alice.email not in text and admin.email not in text
    # The admin's own request goes through: the 403 is about the role, and Alice (the
    # target of the PATCH) is still active.
    assert me(client, alice.headers).get_json()["is_active"] is True
    allowed = client.open(path, method=method, json=ADMIN_REQUESTS[route], headers=admin.headers)
    assert allowed.status_code == 200, allowed.get_data(as_text=True)


def test_a_token_claiming_the_admin_role_is_not_trusted(app, client, plain_user):
    claims = {**claims_of(plain_user.access_token), "role": "admin"}
    token = signed(claims, real_secret(app))
    assert me(client, bearer(token)).status_code == 200  # a well-signed, valid token

    for method, rule in sorted(ADMIN_ROUTES):
        response = client.open(path_for(rule), method=method, json={}, headers=bearer(token))
        error_of(response, 403, "forbidden")


# --- the Prometheus scrape ------------------------------------------------------------------

OUTSIDE = {"REMOTE_ADDR": "93.184.216.34"}  # a public address


def test_a_users_token_does_not_unlock_the_prometheus_scrape_from_outside(client, plain_user):
    response = client.get("/metrics", headers=plain_user.headers, environ_base=OUTSIDE)

    error_of(response, 403, "forbidden")


def test_a_forwarded_loopback_address_does_not_unlock_the_prometheus_scrape(client):
    response = client.get(
        "/metrics", headers={"X-Forwarded-For": "127.0.0.1"}, environ_base=OUTSIDE
    )

    error_of(response, 403, "forbidden")


@pytest.mark.parametrize("who", ["plain-user", "admin"])
def test_with_a_metrics_token_only_that_token_opens_the_prometheus_scrape(monkeypatch, app, who):
    secured = app_with(monkeypatch, METRICS_TOKEN="scrape-" + "s" * 32)
    client = secured.test_client()
    if who == "admin":
        account = make_admin(secured, client, "scrape-admin@example.com")
    else:
        account = register_and_login(client, "scrape-user@example.com")

    for environ in (OUTSIDE, {"REMOTE_ADDR": "127.0.0.1"}):
        response = client.get("/metrics", headers=account.headers, environ_base=environ)
        error = error_of(response, 401)
        assert error["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")

    scrape = client.get("/metrics", headers=bearer("scrape-" + "s" * 32), environ_base=OUTSIDE)
    assert scrape.status_code == 200
