"""The gateway over real HTTP: a gunicorn server with two worker processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import requests

from tests.conftest import PASSWORD, ROOT, start_gunicorn, stop_gunicorn
from tests.helpers import bearer, register_over_http


def _flask_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "api", *args],
        cwd=ROOT,
        env={**os.environ, "APP_ENV": "testing"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_user_journey_over_http(live):
    base = live.url
    alice = register_over_http(base, "alice@example.com")
    bob = register_over_http(base, "bob@example.com")

    me = requests.get(f"{base}/api/user/me", headers=bearer(alice["access_token"]), timeout=10)
    assert me.status_code == 200
    assert me.json()["email"] == "alice@example.com"
    assert "password_hash" not in me.text

    key = requests.post(
        f"{base}/api/user/api-keys", json={"name": "ci"}, headers=bearer(alice["access_token"])
    ).json()["key"]
    for headers in ({"X-API-Key": key}, bearer(key)):
        assert requests.get(f"{base}/api/user/me", headers=headers).json()["id"] == alice["id"]

    conversation = requests.post(
        f"{base}/api/conversations/", json={"title": "Plans"}, headers={"X-API-Key": key}
    )
    assert conversation.status_code == 201
    conversation_url = f"{base}/api/conversations/{conversation.json()['id']}"
    as_bob = requests.get(conversation_url, headers=bearer(bob["access_token"]))
    assert as_bob.status_code == 404
    assert "Plans" not in as_bob.text
    renamed = requests.patch(
        conversation_url, json={"title": "Trip"}, headers=bearer(alice["access_token"])
    )
    assert renamed.json()["title"] == "Trip"
    listing = requests.get(f"{base}/api/conversations/", headers={"X-API-Key": key}).json()
    assert [item["title"] for item in listing["items"]] == ["Trip"]

    rotated = requests.post(f"{base}/api/auth/refresh", headers=bearer(alice["refresh_token"]))
    assert rotated.status_code == 200
    replay = requests.post(f"{base}/api/auth/refresh", headers=bearer(alice["refresh_token"]))
    assert replay.status_code == 401

    fresh = register_over_http(base, "alice2@example.com")
    assert (
        requests.post(f"{base}/api/auth/logout", headers=bearer(fresh["access_token"])).status_code
        == 204
    )
    assert (
        requests.get(f"{base}/api/user/me", headers=bearer(fresh["access_token"])).status_code
        == 401
    )

    assert requests.delete(conversation_url, headers={"X-API-Key": key}).status_code == 204
    assert requests.get(conversation_url, headers={"X-API-Key": key}).status_code == 404


def test_password_change_and_key_deletion_take_effect_at_once_over_http(live):
    base = live.url
    account = register_over_http(base, "carol@example.com")
    old = bearer(account["access_token"])
    created = requests.post(f"{base}/api/user/api-keys", json={"name": "ci"}, headers=old).json()

    changed = requests.put(
        f"{base}/api/user/me/password",
        json={"current_password": PASSWORD, "new_password": "another long passphrase"},
        headers=old,
    )
    assert changed.status_code == 200
    # Both gunicorn workers must refuse the old token: the check is in PostgreSQL, not memory.
    assert {requests.get(f"{base}/api/user/me", headers=old).status_code for _ in range(6)} == {401}
    new = bearer(changed.json()["access_token"])
    assert requests.get(f"{base}/api/user/me", headers=new).status_code == 200

    key_headers = {"X-API-Key": created["key"]}
    assert requests.get(f"{base}/api/user/me", headers=key_headers).status_code == 200
    deleted = requests.delete(f"{base}/api/user/api-keys/{created['id']}", headers=new)
    assert deleted.status_code == 204
    statuses = {
        requests.get(f"{base}/api/user/me", headers=key_headers).status_code for _ in range(6)
    }
    assert statuses == {401}


def test_admin_bootstrapped_by_cli_manages_users_over_http(live):
    base = live.url
    user = register_over_http(base, "user@example.com")
    created = _flask_cli("create-admin", "root@example.com", "--password", PASSWORD)
    assert created.returncode == 0, created.stderr
    assert "Created admin root@example.com" in created.stdout
    admin = requests.post(
        f"{base}/api/auth/login", json={"email": "root@example.com", "password": PASSWORD}
    ).json()

    forbidden = requests.get(f"{base}/api/admin/users", headers=bearer(user["access_token"]))
    assert forbidden.status_code == 403
    users = requests.get(f"{base}/api/admin/users", headers=bearer(admin["access_token"]))
    assert {u["email"] for u in users.json()["items"]} == {"user@example.com", "root@example.com"}

    deactivated = requests.patch(
        f"{base}/api/admin/users/{user['id']}",
        json={"is_active": False},
        headers=bearer(admin["access_token"]),
    )
    assert deactivated.json()["is_active"] is False
    assert (
        requests.get(f"{base}/api/user/me", headers=bearer(user["access_token"])).status_code == 401
    )


def test_login_limit_is_exact_across_worker_processes(live):
    base = live.url
    register_over_http(base, "target@example.com")
    statuses = [
        requests.post(
            f"{base}/api/auth/login",
            json={"email": "target@example.com", "password": "wrong password"},
            timeout=10,
        ).status_code
        for _ in range(8)
    ]
    # Default LOGIN_RATE_LIMIT_PER_EMAIL is 5/minute of failures, counted in Redis.
    assert statuses == [401] * 5 + [429] * 3


def test_errors_are_json_with_the_request_id(live):
    base = live.url
    request_id = f"it-{uuid.uuid4().hex[:8]}"
    cases = [
        requests.get(f"{base}/nowhere", headers={"X-Request-ID": request_id}),
        requests.delete(f"{base}/health", headers={"X-Request-ID": request_id}),
        requests.post(
            f"{base}/api/auth/login",
            data="{broken",
            headers={"Content-Type": "application/json", "X-Request-ID": request_id},
        ),
        requests.post(
            f"{base}/api/auth/login",
            data="a=b",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Request-ID": request_id,
            },
        ),
        requests.post(
            f"{base}/api/auth/register",
            json={"email": "x@example.com", "password": "x" * 2_000_000},
            headers={"X-Request-ID": request_id},
        ),
    ]
    assert [r.status_code for r in cases] == [404, 405, 400, 415, 413]
    for response in cases:
        assert response.headers["Content-Type"] == "application/json"
        assert response.headers["X-Request-ID"] == request_id
        assert response.json()["error"]["request_id"] == request_id


def test_health_openapi_and_docs(live):
    health = requests.get(f"{live.url}/health")
    assert health.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}
    spec = requests.get(f"{live.url}/openapi.json").json()
    assert "/api/conversations/{conversation_id}" in spec["paths"]
    assert "swagger-ui" in requests.get(f"{live.url}/docs").text


def test_server_log_is_json_with_request_ids_and_no_secrets(live):
    base = live.url
    account = register_over_http(base, "logged@example.com")
    key = requests.post(
        f"{base}/api/user/api-keys", json={"name": "k"}, headers=bearer(account["access_token"])
    ).json()["key"]
    request_id = f"trace-{uuid.uuid4().hex[:10]}"
    requests.get(f"{base}/api/user/me", headers={"X-API-Key": key, "X-Request-ID": request_id})
    requests.post(
        f"{base}/api/auth/login", json={"email": "logged@example.com", "password": "bad-guess-1"}
    )

    lines = [line for line in live.log_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is JSON
    access = [r for r in records if r.get("logger") == "api.access"]
    traced = [r for r in access if r.get("request_id") == request_id]
    assert len(traced) == 1
    assert traced[0]["path"] == "/api/user/me"
    assert traced[0]["status"] == 200
    assert traced[0]["user_id"] == account["id"]
    assert isinstance(traced[0]["duration_ms"], float | int)
    text = live.log_text()
    for secret in (PASSWORD, "bad-guess-1", key, account["access_token"], account["refresh_token"]):
        assert secret not in text


def test_production_refuses_to_start_without_a_secret(tmp_path):
    env = {"APP_ENV": "production", "JWT_SECRET": ""}
    try:
        server = start_gunicorn(tmp_path / "prod.log", env_overrides=env, workers=1)
    except RuntimeError as exc:
        assert "JWT_SECRET is missing" in str(exc)
    else:
        stop_gunicorn(server)
        raise AssertionError("gunicorn started in production with an empty JWT_SECRET")
