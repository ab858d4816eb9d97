"""Every error is JSON in one shape, carries the request id, and never leaks internals."""

from __future__ import annotations

import json
import re

import pytest

from api import create_app
from config.settings import TestingConfig
from tests.conftest import PASSWORD

ERROR_KEYS = {"code", "message", "request_id", "details"}
GENERATED_ID = re.compile(r"[0-9a-f]{32}")
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"
UNREACHABLE_DATABASE = "postgresql://postgres@127.0.0.1:1/x"


def assert_json_error(response, status: int, code: str) -> dict:
    """The one error shape, as JSON (never HTML), with the response's request id."""
    text = response.get_data(as_text=True)
    assert response.status_code == status, text
    assert response.mimetype == "application/json", response.content_type
    assert "<html" not in text.lower()
    assert "<!doctype" not in text.lower()
    body = response.get_json()
    assert set(body) == {"error"}
    error = body["error"]
    assert {"code", "message", "request_id"} <= set(error) <= ERROR_KEYS
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert error["request_id"]
    assert error["request_id"] == response.headers["X-Request-ID"]
    return error


def app_with_env(monkeypatch, **env: str):
    """A fresh app built from TestingConfig with some environment variables changed."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return create_app(TestingConfig())


def fail_login(client, email: str = "target@example.com"):
    return client.post("/api/auth/login", json={"email": email, "password": "wrong password"})


# --- routing errors ----------------------------------------------------------------------


def test_unknown_url_is_a_json_404(client):
    error = assert_json_error(client.get("/no/such/page"), 404, "not_found")

    assert "details" not in error


def test_unknown_url_under_the_api_prefix_is_a_json_404(client):
    assert_json_error(client.post("/api/nothing-here", json={}), 404, "not_found")


def test_wrong_method_is_a_json_405_with_an_allow_header(client):
    response = client.delete("/health")

    assert_json_error(response, 405, "method_not_allowed")
    allowed = {method.strip() for method in response.headers["Allow"].split(",")}
    assert "GET" in allowed
    assert "DELETE" not in allowed


def test_wrong_method_on_an_api_endpoint_is_a_json_405(client):
    response = client.get("/api/auth/login")

    assert_json_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


# --- request bodies ----------------------------------------------------------------------


def test_a_body_over_max_content_length_is_a_json_413(client, app):
    limit = app.config["MAX_CONTENT_LENGTH"]
    assert limit == 1024 * 1024
    big = {"email": "a" * 2_000_000 + "@example.com", "password": "x"}

    response = client.post("/api/auth/login", json=big)

    error = assert_json_error(response, 413, "payload_too_large")
    assert str(limit) in error["message"]
    assert "aaaaaaaaaa" not in response.get_data(as_text=True)


def test_a_body_over_the_limit_on_a_protected_endpoint_is_413(client, alice):
    response = client.post(
        "/api/conversations/", json={"title": "t" * 2_000_000}, headers=alice.headers
    )

    assert_json_error(response, 413, "payload_too_large")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"data": {"email": "form@example.com", "password": PASSWORD}},
        {"data": "email=form@example.com", "content_type": "text/plain"},
        {"data": "<user><email>x@example.com</email></user>", "content_type": "application/xml"},
    ],
    ids=["form-encoded", "text-plain", "xml"],
)
def test_a_non_json_body_is_a_json_415(client, kwargs):
    response = client.post("/api/auth/register", **kwargs)

    error = assert_json_error(response, 415, "unsupported_media_type")
    assert "application/json" in error["message"]


def test_json_with_a_charset_parameter_is_accepted(client):
    response = client.post(
        "/api/auth/register",
        data=json.dumps({"email": "charset@example.com", "password": PASSWORD}),
        content_type="application/json; charset=utf-8",
    )

    assert response.status_code == 201, response.get_json()


def test_malformed_json_is_a_json_400(client):
    response = client.post("/api/auth/register", data='{"email": ', content_type="application/json")

    error = assert_json_error(response, 400, "bad_request")
    assert "JSON" in error["message"]


def test_malformed_json_on_login_is_a_json_400(client):
    response = client.post("/api/auth/login", data="{not json", content_type="application/json")

    assert_json_error(response, 400, "bad_request")


def test_wrong_types_are_a_422_with_per_field_messages(client):
    response = client.post("/api/auth/register", json={"email": 12345, "password": ["a", "b"]})

    error = assert_json_error(response, 422, "validation_error")
    fields = error["details"]["json"]
    assert set(fields) == {"email", "password"}
    assert all(isinstance(messages, list) and messages for messages in fields.values())
    assert "json.email" in error["message"]
    assert "json.password" in error["message"]


def test_missing_required_fields_are_a_422_naming_each_field(client):
    response = client.post("/api/auth/register", json={})

    error = assert_json_error(response, 422, "validation_error")
    assert set(error["details"]["json"]) == {"email", "password"}


def test_a_json_body_that_is_not_an_object_is_a_422(client):
    response = client.post("/api/auth/register", json=["email", "password"])

    assert_json_error(response, 422, "validation_error")


def test_unknown_fields_are_a_422_and_nothing_is_created(client):
    body = {"email": "sneaky@example.com", "password": PASSWORD, "role": "admin"}

    response = client.post("/api/auth/register", json=body)

    error = assert_json_error(response, 422, "validation_error")
    assert set(error["details"]["json"]) == {"role"}
    login = client.post("/api/auth/login", json={"email": body["email"], "password": PASSWORD})
    assert login.status_code == 401


# --- authentication and rate limits --------------------------------------------------------


def test_missing_credentials_are_a_json_401(client, app):
    response = client.get("/api/user/me")

    assert_json_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_a_garbage_token_is_a_json_401(client, app):
    response = client.get("/api/user/me", headers={"Authorization": "Bearer not.a.jwt"})

    assert_json_error(response, 401, "invalid_token")


def test_a_normal_user_on_an_admin_endpoint_is_a_json_403(client, alice):
    assert_json_error(client.get("/api/admin/users", headers=alice.headers), 403, "forbidden")


def test_too_many_failed_logins_are_a_json_429_with_retry_after(client, app):
    responses = [fail_login(client) for _ in range(10)]
    statuses = [response.status_code for response in responses]

    assert 429 in statuses, statuses
    first_limited = statuses.index(429)
    assert first_limited > 0
    assert set(statuses[:first_limited]) == {401}
    limited = responses[first_limited]
    assert_json_error(limited, 429, "rate_limited")
    assert int(limited.headers["Retry-After"]) > 0


# --- server errors ----------------------------------------------------------------------


def test_an_unhandled_exception_is_a_json_500_without_internals(app):
    app.add_url_rule("/boom", "boom", lambda: 1 / 0)
    client = app.test_client()

    response = client.get("/boom", headers={"X-Request-ID": "boom-1"})

    error = assert_json_error(response, 500, "internal_error")
    assert error["request_id"] == "boom-1"
    text = response.get_data(as_text=True)
    for leak in ("Traceback", "ZeroDivisionError", "division by zero", "lambda", ".py"):
        assert leak not in text


def test_health_is_ok_when_everything_answers(client):
    response = client.get("/health")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


def test_health_is_503_when_redis_is_unreachable(monkeypatch, app):
    broken = app_with_env(monkeypatch, TEST_REDIS_URL=UNREACHABLE_REDIS)

    response = broken.test_client().get("/health")

    assert response.status_code == 503
    assert response.mimetype == "application/json"
    assert response.get_json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "redis": "unavailable"},
    }


def test_health_is_503_when_the_database_is_unreachable(monkeypatch, app):
    broken = app_with_env(monkeypatch, TEST_DATABASE_URL=UNREACHABLE_DATABASE)

    response = broken.test_client().get("/health")

    assert response.status_code == 503
    assert response.mimetype == "application/json"
    assert response.get_json() == {
        "status": "unavailable",
        "checks": {"database": "unavailable", "redis": "ok"},
    }


def test_a_protected_endpoint_with_redis_down_is_a_json_503(monkeypatch, alice):
    broken = app_with_env(monkeypatch, TEST_REDIS_URL=UNREACHABLE_REDIS)

    response = broken.test_client().get("/api/user/me", headers=alice.headers)

    error = assert_json_error(response, 503, "service_unavailable")
    assert "Redis" in error["message"]
    assert "Retry-After" in response.headers
    assert "127.0.0.1" not in response.get_data(as_text=True)


def test_login_with_redis_down_is_a_json_503_not_a_500(monkeypatch, alice):
    broken = app_with_env(monkeypatch, TEST_REDIS_URL=UNREACHABLE_REDIS)

    response = broken.test_client().post(
        "/api/auth/login", json={"email": alice.email, "password": alice.password}
    )

    assert_json_error(response, 503, "service_unavailable")


def test_a_protected_endpoint_with_the_database_down_is_a_json_503(monkeypatch, client, alice):
    key = client.post("/api/user/api-keys", json={"name": "k"}, headers=alice.headers)
    broken = app_with_env(monkeypatch, TEST_DATABASE_URL=UNREACHABLE_DATABASE)

    response = broken.test_client().get(
        "/api/user/me", headers={"X-API-Key": key.get_json()["key"]}
    )

    error = assert_json_error(response, 503, "service_unavailable")
    assert "database" in error["message"]
    assert "postgres" not in response.get_data(as_text=True).lower()


# --- request ids --------------------------------------------------------------------------


@pytest.mark.parametrize("request_id", ["abc-123", "req.1:2_3", "x" * 128])
def test_a_valid_client_request_id_is_echoed(client, request_id):
    ok = client.get("/health", headers={"X-Request-ID": request_id})
    failed = client.get("/missing", headers={"X-Request-ID": request_id})

    assert ok.headers["X-Request-ID"] == request_id
    assert failed.headers["X-Request-ID"] == request_id
    assert failed.get_json()["error"]["request_id"] == request_id


@pytest.mark.parametrize(
    "request_id",
    [
        "abc 123",
        "x" * 129,
        "",
        'x"}, "level": "CRITICAL',
        "abc%0d%0aX-Injected:%201",
        "abc\tdef",
        "<script>alert(1)</script>",
    ],
    ids=["space", "too-long", "empty", "json-injection", "encoded-crlf", "tab", "markup"],
)
def test_an_invalid_client_request_id_is_replaced(client, request_id):
    response = client.get("/missing", headers={"X-Request-ID": request_id})

    generated = response.headers["X-Request-ID"]
    assert GENERATED_ID.fullmatch(generated)
    assert response.get_json()["error"]["request_id"] == generated
    if request_id:
        assert request_id not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "request_id",
    ["abc\r\nX-Injected: 1", 'abc\n{"level": "ERROR"}', "abc-123\n"],
    ids=["crlf-header-injection", "lf-log-injection", "trailing-lf"],
)
def test_a_request_id_with_a_raw_line_break_is_replaced(client, request_id):
    # Set in the WSGI environ directly: the test client refuses such header values.
    response = client.get("/missing", environ_overrides={"HTTP_X_REQUEST_ID": request_id})

    assert response.status_code == 404, response.get_data(as_text=True)
    generated = response.headers["X-Request-ID"]
    assert GENERATED_ID.fullmatch(generated)
    assert "X-Injected" not in response.headers
    assert response.get_json()["error"]["request_id"] == generated


def test_without_a_request_id_one_is_generated_per_request(client):
    first = client.get("/health").headers["X-Request-ID"]
    second = client.get("/health").headers["X-Request-ID"]

    assert GENERATED_ID.fullmatch(first)
    assert GENERATED_ID.fullmatch(second)
    assert first != second


# --- the API description ------------------------------------------------------------------

EXPECTED_PATHS = {
    "/api/auth/register",
    "/api/auth/login",
    "/api/auth/refresh",
    "/api/auth/logout",
    "/api/user/me",
    "/api/user/me/password",
    "/api/user/api-keys",
    "/api/user/api-keys/{key_id}",
    "/api/conversations/",
    "/api/conversations/{conversation_id}",
    "/api/admin/users",
    "/api/admin/users/{user_id}",
    "/health",
}


def test_openapi_lists_every_endpoint(client):
    response = client.get("/openapi.json")

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    missing = EXPECTED_PATHS - set(response.get_json()["paths"])
    assert not missing


def test_openapi_declares_both_security_schemes(client):
    schemes = client.get("/openapi.json").get_json()["components"]["securitySchemes"]

    assert schemes["bearerAuth"]["type"] == "http"
    assert schemes["bearerAuth"]["scheme"] == "bearer"
    assert schemes["apiKeyHeader"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}


def test_openapi_marks_protected_operations_with_security(client):
    paths = client.get("/openapi.json").get_json()["paths"]

    assert {"bearerAuth": []} in paths["/api/conversations/"]["get"]["security"]
    assert {"apiKeyHeader": []} in paths["/api/admin/users"]["get"]["security"]
    assert "security" not in paths["/api/auth/login"]["post"]


def test_docs_serve_the_swagger_ui_page(client):
    response = client.get("/docs")

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    text = response.get_data(as_text=True)
    assert "swagger-ui" in text.lower()
    assert "openapi.json" in text


def test_docs_assets_are_served_by_the_gateway(client):
    text = client.get("/docs").get_data(as_text=True)
    assets = set(re.findall(r'(?:src|href)="(/docs/assets/[^"]+)"', text))

    assert assets, "the page should load Swagger UI from the gateway itself"
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
