"""JSON log lines on stdout: one access line per request, and no credentials, ever."""

from __future__ import annotations

import json
import logging

import pytest

from api import create_app
from config.logging_setup import REDACTED, redact
from tests.conftest import PASSWORD

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
API_KEY = "gw_Q2hhbmdlTWVQbGVhc2VUaGlzSXNBVGVzdEtleTEyMzQ"


def detach_gateway_handlers() -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_gateway_handler", False):
            root.removeHandler(handler)


@pytest.fixture
def make_logged_app(app, test_config):
    """Call it in the test body: the app's stdout log handler then writes into capsys.

    configure_logging binds sys.stdout when create_app runs, and capsys only replaces
    sys.stdout during the test call. Depends on `app` for a clean database and Redis.
    Afterwards the handler, bound to capsys's soon-closed stream, is detached.
    """
    yield lambda: create_app(test_config)
    detach_gateway_handlers()


def read_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().out.splitlines() if line.strip()]


def parse(lines: list[str]) -> list[dict]:
    return [json.loads(line) for line in lines]


def access_lines(records: list[dict]) -> list[dict]:
    return [record for record in records if record.get("logger") == "api.access"]


def register_and_login(client, email: str) -> dict:
    body = {"email": email, "password": PASSWORD}
    created = client.post("/api/auth/register", json=body)
    assert created.status_code == 201, created.get_json()
    tokens = client.post("/api/auth/login", json=body)
    assert tokens.status_code == 200, tokens.get_json()
    return {"id": created.get_json()["id"], **tokens.get_json()}


# --- the access log -------------------------------------------------------------------


def test_every_line_is_valid_json(make_logged_app, capsys):
    client = make_logged_app().test_client()
    client.get("/health")
    client.get("/missing")
    client.post("/api/auth/login", json={"email": "x@example.com", "password": "nope"})

    lines = read_lines(capsys)

    assert len(lines) >= 3
    for line in lines:
        assert isinstance(json.loads(line), dict), line


def test_one_access_line_per_request_with_its_fields(make_logged_app, capsys):
    client = make_logged_app().test_client()
    response = client.get("/health", headers={"X-Request-ID": "log-check-1"})

    records = access_lines(parse(read_lines(capsys)))

    assert len(records) == 1
    record = records[0]
    assert record["logger"] == "api.access"
    assert record["level"] == "INFO"
    assert record["method"] == "GET"
    assert record["path"] == "/health"
    assert record["status"] == 200
    assert isinstance(record["duration_ms"], int | float)
    assert record["duration_ms"] >= 0
    assert record["user_id"] is None
    assert record["request_id"] == response.headers["X-Request-ID"] == "log-check-1"


def test_access_lines_match_each_requests_generated_id(make_logged_app, capsys):
    client = make_logged_app().test_client()
    responses = [client.get("/health"), client.get("/nope"), client.delete("/health")]

    records = access_lines(parse(read_lines(capsys)))

    assert [r["request_id"] for r in records] == [r.headers["X-Request-ID"] for r in responses]
    assert [r["status"] for r in records] == [200, 404, 405]
    assert [r["method"] for r in records] == ["GET", "GET", "DELETE"]


def test_access_line_carries_the_user_id_of_an_authenticated_request(make_logged_app, capsys):
    client = make_logged_app().test_client()
    account = register_and_login(client, "logged@example.com")
    capsys.readouterr()

    headers = {"Authorization": f"Bearer {account['access_token']}"}
    response = client.get("/api/user/me", headers=headers)

    (record,) = access_lines(parse(read_lines(capsys)))
    assert response.status_code == 200
    assert record["user_id"] == account["id"]
    assert record["path"] == "/api/user/me"
    assert record["request_id"] == response.headers["X-Request-ID"]


def test_access_line_carries_the_user_id_of_an_api_key_request(make_logged_app, capsys):
    client = make_logged_app().test_client()
    account = register_and_login(client, "keyed@example.com")
    headers = {"Authorization": f"Bearer {account['access_token']}"}
    key = client.post("/api/user/api-keys", json={"name": "k"}, headers=headers).get_json()["key"]
    capsys.readouterr()

    client.get("/api/conversations/", headers={"X-API-Key": key})

    (record,) = access_lines(parse(read_lines(capsys)))
    assert record["user_id"] == account["id"]


def test_the_user_id_does_not_leak_into_the_next_anonymous_request(make_logged_app, capsys):
    client = make_logged_app().test_client()
    account = register_and_login(client, "leak@example.com")
    client.get("/api/user/me", headers={"Authorization": f"Bearer {account['access_token']}"})
    capsys.readouterr()

    client.get("/health")
    logging.getLogger("after").info("outside any request")

    records = parse(read_lines(capsys))
    assert all(record.get("user_id") is None for record in records), records


def test_a_line_logged_after_a_request_carries_no_request_or_user_id(make_logged_app, capsys):
    client = make_logged_app().test_client()
    account = register_and_login(client, "after@example.com")
    client.get("/api/user/me", headers={"Authorization": f"Bearer {account['access_token']}"})
    capsys.readouterr()

    logging.getLogger("worker").info("between requests")

    (record,) = parse(read_lines(capsys))
    assert (record["request_id"], record["user_id"]) == (None, None), json.dumps(record)


def test_an_unhandled_error_is_logged_with_its_request_id(make_logged_app, capsys):
    fresh = make_logged_app()
    fresh.add_url_rule("/boom", "boom", lambda: 1 / 0)

    response = fresh.test_client().get("/boom", headers={"X-Request-ID": "boom-log"})

    assert response.status_code == 500
    records = parse(read_lines(capsys))
    errors = [r for r in records if r["level"] == "ERROR"]
    assert errors, records
    assert all(r["request_id"] == "boom-log" for r in errors)
    assert "ZeroDivisionError" in json.dumps(errors)
    (access,) = access_lines(records)
    assert (access["status"], access["request_id"]) == (500, "boom-log")


# --- no credentials in the logs -----------------------------------------------------------


def test_no_credential_appears_anywhere_in_the_logs(make_logged_app, capsys):
    client = make_logged_app().test_client()
    account = register_and_login(client, "secretive@example.com")
    access, refresh = account["access_token"], account["refresh_token"]
    bearer = {"Authorization": f"Bearer {access}"}
    key = client.post("/api/user/api-keys", json={"name": "k"}, headers=bearer).get_json()["key"]

    client.get("/api/user/me", headers=bearer)
    client.get("/api/user/me", headers={"X-API-Key": key})
    client.get("/api/user/me", headers={"Authorization": f"Bearer {key}"})
    client.post("/api/auth/login", json={"email": "secretive@example.com", "password": "hunter2"})
    client.get(f"/api/user/me?password=hunter2&api_key={key}", headers=bearer)
    client.get("/health", headers={"User-Agent": f"probe/1.0 (Bearer {access})"})
    new_pair = client.post(
        "/api/auth/refresh", headers={"Authorization": f"Bearer {refresh}"}
    ).get_json()

    log = logging.getLogger("anything")
    log.info("user logged in with password=%s", "hunter2")
    log.info("created a key", extra={"api_key": key})
    log.info("forwarding Authorization: Bearer %s", access)
    log.info("refresh requested with token=%s", refresh)

    out = capsys.readouterr().out
    secrets = {
        "account password": PASSWORD,
        "typed password": "hunter2",
        "access token": access,
        "refresh token": refresh,
        "rotated access token": new_pair["access_token"],
        "rotated refresh token": new_pair["refresh_token"],
        "api key": key,
        "api key body": key[len("gw_") :],
    }
    leaked = [name for name, secret in secrets.items() if secret in out]
    assert leaked == [], leaked
    assert REDACTED in out
    for line in out.splitlines():
        if line.strip():
            json.loads(line)


def test_a_quoted_password_in_a_message_is_redacted(make_logged_app, capsys):
    make_logged_app()
    logging.getLogger("anything").info('login attempt password="hunter2"')

    (line,) = read_lines(capsys)
    assert "hunter2" not in line


def test_redacting_a_quoted_password_keeps_the_line_valid_json(make_logged_app, capsys):
    make_logged_app()
    logging.getLogger("anything").info('login attempt password="hunter2"')

    (line,) = read_lines(capsys)
    assert json.loads(line)["logger"] == "anything"


def test_a_json_payload_inside_a_message_is_redacted(make_logged_app, capsys):
    make_logged_app()
    body = {"email": "a@b.c", "password": "hunter2", "api_key": "opaque-key-1"}
    logging.getLogger("anything").warning("request body %s", json.dumps(body))

    (line,) = read_lines(capsys)
    assert "hunter2" not in line
    assert "opaque-key-1" not in line


def test_a_python_dict_with_a_password_is_redacted(make_logged_app, capsys):
    make_logged_app()
    logging.getLogger("anything").info("payload %s", {"email": "a@b.c", "password": "hunter2"})

    (line,) = read_lines(capsys)
    assert "hunter2" not in line


# --- redact() on examples ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ('{"password": "x-secret-1"}', "x-secret-1"),
        ('{"new_password": "x-secret-1"}', "x-secret-1"),
        ('{"refresh_token": "opaque-refresh-1"}', "opaque-refresh-1"),
        ('{"api_key": "anything-at-all"}', "anything-at-all"),
        ('{"password": "with \\"escaped\\" quotes"}', "escaped"),
        ("password=x-secret-1&y=1", "x-secret-1"),
        ("/login?user=a&password=x-secret-1", "x-secret-1"),
        ("api_key: opaque-key-1", "opaque-key-1"),
        ("Bearer opaque-token-1", "opaque-token-1"),
        ("sent bearer opaque-token-1 upstream", "opaque-token-1"),
        (f"key {API_KEY} used", API_KEY[3:]),
        (f"token was {JWT}", JWT),
        (f"no keyword at all: {JWT}", JWT.split(".")[2]),
    ],
)
def test_redact_removes_the_secret(text, secret):
    result = redact(text)

    assert secret not in result
    assert REDACTED in result


def test_redact_keeps_the_rest_of_a_query_string():
    assert redact("password=x&y=1") == f"password={REDACTED}&y=1"


def test_redact_keeps_the_json_key_and_structure():
    result = redact('{"user": "bob", "password": "x", "n": 1}')

    assert json.loads(result) == {"user": "bob", "password": REDACTED, "n": 1}


def test_redact_leaves_the_gw_prefix_visible():
    assert redact(f"key {API_KEY}") == f"key gw_{REDACTED}"


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer opaque-token-1",
        '{"headers": "Authorization: Bearer opaque-token-1"}',
    ],
)
def test_redact_removes_the_token_of_an_authorization_header(text):
    assert "opaque-token-1" not in redact(text)


def test_redact_removes_basic_credentials_of_an_authorization_header():
    assert "dXNlcjpwYXNz" not in redact("Authorization: Basic dXNlcjpwYXNz")


@pytest.mark.parametrize(
    "text",
    [
        '{"prompt_tokens": 3, "completion_tokens": 12}',
        '{"token_type": "Bearer", "expires_in": 900}',
        '{"max_tokens": 256}',
        "prompt_tokens=3 completion_tokens=12",
        '{"email": "alice@example.com", "name": "Alice"}',
        "GET /api/conversations/ 200",
        '{"request_id": "abc-123", "user_id": "6d1f0c5e-8a2b-4c1d-9e3f-1a2b3c4d5e6f"}',
        "gw_ alone",
    ],
)
def test_redact_leaves_harmless_text_untouched(text):
    assert redact(text) == text
