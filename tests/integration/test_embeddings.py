"""POST /v1/embeddings end to end, with the official `openai` client library.

A real gunicorn server whose API processes call the fake Ollama's /api/embed themselves
(embeddings take no queue), with an OpenAI-style alias configured; the official SDK as a
user's program would call it, and raw HTTP where the SDK hides the wire format. The
expected vectors come from the fake's own function (`embedding_for`).
"""

from __future__ import annotations

import base64
import uuid
from array import array
from collections.abc import Iterator

import openai
import pytest
import requests
from sqlalchemy import select

from config.settings import TestingConfig
from core.db import db
from core.models import UsageRecord
from tests.conftest import (
    PASSWORD,
    fresh_app,
    make_admin,
    register_and_login,
    start_gunicorn,
    stop_gunicorn,
)
from tests.fakes.ollama import embedding_for
from tests.helpers import add_usage, bearer, register_over_http

pytestmark = pytest.mark.live

MODEL = "nomic-embed-text"
ALIAS = "text-embedding-3-small"  # an OpenAI name, answered by MODEL
NATIVE_DIMENSIONS = 768
OPENAI_ERROR_FIELDS = {"message", "type", "param", "code"}


# --- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def embeddings_server(migrated_database, fake_ollama, tmp_path_factory):
    """gunicorn with the API's model server pointed at the fake (tests/conftest.py's own
    server has no OLLAMA_URL: before embeddings the API never spoke to a model server)."""
    server = start_gunicorn(
        tmp_path_factory.mktemp("embeddings") / "gunicorn.log",
        {"OLLAMA_URL": fake_ollama.url, "EMBEDDING_MODELS": f"{MODEL},{ALIAS}={MODEL}"},
    )
    yield server
    stop_gunicorn(server)


@pytest.fixture
def server(embeddings_server, app, fake_ollama):
    """The server, with the database and Redis cleaned (via `app`) and the fake reset."""
    yield embeddings_server
    if fake_ollama.mode == "down":  # a failed test must not leave the fake down
        fake_ollama.start()


class Alice:
    def __init__(self, base: str):
        account = register_over_http(base, "alice@example.com", PASSWORD)
        self.base = base
        self.user_id = account["id"]
        self.access_token = account["access_token"]
        created = requests.post(
            f"{base}/api/user/api-keys",
            json={"name": "embeddings"},
            headers=bearer(self.access_token),
            timeout=10,
        )
        assert created.status_code == 201, created.text
        self.key_id, self.key = created.json()["id"], created.json()["key"]

    def post(self, body, *, key: str | None = None, path: str = "/v1/embeddings"):
        headers = {"Authorization": f"Bearer {key or self.key}"}
        return requests.post(self.base + path, json=body, headers=headers, timeout=30)


@pytest.fixture
def alice(server) -> Alice:
    return Alice(server.url)


@pytest.fixture
def sdk(server, alice) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(
        base_url=server.url + "/v1", api_key=alice.key, max_retries=0, timeout=30
    )
    yield client
    client.close()


def openai_error(response: requests.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == OPENAI_ERROR_FIELDS, body
    return body["error"]


def usage_rows(app) -> list[UsageRecord]:
    with app.app_context():
        rows = list(db.session.scalars(select(UsageRecord).order_by(UsageRecord.created_at)))
        db.session.expunge_all()
    return rows


def float32(vector: list[float]) -> list[float]:
    """The vector as float32 values: what base64 carries."""
    return array("f", vector).tolist()


def close_to(vector: list[float], expected: list[float]) -> bool:
    return len(vector) == len(expected) and all(
        abs(a - b) < 1e-9 for a, b in zip(vector, expected, strict=True)
    )


# --- answers ---------------------------------------------------------------------------------


def test_a_single_string_is_one_embedding_with_usage_and_one_usage_row(
    app, alice, sdk, fake_ollama
):
    text = "The food was delicious and the waiter was friendly"

    result = sdk.embeddings.create(model=MODEL, input=text, encoding_format="float")

    assert result.object == "list"
    assert result.model == MODEL
    assert len(result.data) == 1
    item = result.data[0]
    assert (item.object, item.index) == ("embedding", 0)
    assert close_to(item.embedding, embedding_for(text))
    assert len(item.embedding) == NATIVE_DIMENSIONS
    # The fake counts words, as Ollama's prompt_eval_count counts tokens.
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (9, 9)

    # One request to the model server, in Ollama's shape.
    assert fake_ollama.embed_requests == [{"model": MODEL, "input": [text], "truncate": True}]
    assert fake_ollama.requests == []  # no chat, no job

    (row,) = usage_rows(app)
    assert row.job_id is None
    assert str(row.user_id) == alice.user_id
    assert str(row.api_key_id) == alice.key_id
    assert (row.model, row.tier, row.status) == (MODEL, "embeddings", "succeeded")
    assert (row.prompt_tokens, row.completion_tokens, row.cached) == (9, 0, False)
    assert row.duration_ms is not None and row.duration_ms > 0
    assert row.queue_wait_ms is None and row.ttft_ms is None


def test_a_list_is_embedded_in_one_round_trip_in_order(alice, sdk, fake_ollama):
    texts = [f"text number {i} {uuid.uuid4().hex}" for i in range(5)]

    result = sdk.embeddings.create(model=MODEL, input=texts, encoding_format="float")

    assert [item.index for item in result.data] == [0, 1, 2, 3, 4]
    for item, text in zip(result.data, texts, strict=True):
        assert close_to(item.embedding, embedding_for(text))
    assert result.usage.prompt_tokens == 4 * 5
    assert len(fake_ollama.embed_requests) == 1
    assert fake_ollama.embed_requests[0]["input"] == texts


def test_an_alias_answers_with_its_name_and_runs_the_backend_model(app, alice, sdk, fake_ollama):
    result = sdk.embeddings.create(model=ALIAS, input="aliased", encoding_format="float")

    assert result.model == ALIAS
    assert close_to(result.data[0].embedding, embedding_for("aliased"))
    assert fake_ollama.embed_requests[0]["model"] == MODEL
    (row,) = usage_rows(app)
    assert row.model == MODEL


def test_dimensions_reach_the_model_server(alice, sdk, fake_ollama):
    text = "shorter please"

    result = sdk.embeddings.create(
        model=MODEL, input=[text, "two"], dimensions=256, encoding_format="float"
    )

    assert [len(item.embedding) for item in result.data] == [256, 256]
    assert close_to(result.data[0].embedding, embedding_for(text, 256))
    assert fake_ollama.embed_requests[0]["dimensions"] == 256


def test_more_dimensions_than_the_model_has_is_a_400_on_dimensions(app, alice, sdk, fake_ollama):
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.embeddings.create(model=MODEL, input="too wide", dimensions=NATIVE_DIMENSIONS + 1)

    error = caught.value
    assert (error.status_code, error.type, error.param) == (
        400,
        "invalid_request_error",
        "dimensions",
    )
    assert f"dimensions {NATIVE_DIMENSIONS + 1} exceeds" in error.message  # the server's words
    assert len(fake_ollama.embed_requests) == 1
    assert usage_rows(app) == []  # refused as sent: nothing served


def test_base64_the_sdks_default_decodes_to_the_float_vectors(alice, sdk, fake_ollama):
    texts = ["first text", "second text"]

    as_floats = sdk.embeddings.create(model=MODEL, input=texts, encoding_format="float")
    decoded = sdk.embeddings.create(model=MODEL, input=texts)  # the SDK asks for base64

    # The SDK asked for base64 and decoded it itself; it carries float32 values.
    for plain, packed in zip(as_floats.data, decoded.data, strict=True):
        assert packed.embedding == float32(plain.embedding)
    raw = alice.post({"model": MODEL, "input": texts, "encoding_format": "base64"})
    assert raw.status_code == 200, raw.text
    for item, plain in zip(raw.json()["data"], as_floats.data, strict=True):
        assert isinstance(item["embedding"], str)
        assert array("f", base64.b64decode(item["embedding"])).tolist() == float32(plain.embedding)
    # The model server is asked the same either way.
    bodies = fake_ollama.embed_requests
    assert len(bodies) == 3 and bodies[0] == bodies[1] == bodies[2]


def test_the_wire_format_is_openais(alice):
    response = alice.post({"model": MODEL, "input": "wire", "user": "end-user-7"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"object", "data", "model", "usage"}
    assert set(body["data"][0]) == {"object", "index", "embedding"}
    assert isinstance(body["data"][0]["embedding"], list)  # float is the API's default
    assert body["usage"] == {"prompt_tokens": 1, "total_tokens": 1}
    assert response.headers["X-Request-ID"]
    assert response.headers["X-RateLimit-Limit"]


# --- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["text-embedding-ada-002", "light", "auto", "llama3.2:3b"])
def test_an_unknown_model_is_404_model_not_found(app, alice, sdk, fake_ollama, model):
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.embeddings.create(model=model, input="which model")

    error = caught.value
    assert (error.code, error.type, error.param) == (
        "model_not_found",
        "invalid_request_error",
        None,
    )
    assert model in error.message and MODEL in error.message
    raw = openai_error(alice.post({"model": model, "input": "which model"}), 404)
    assert raw["code"] == "model_not_found"
    assert fake_ollama.embed_requests == []
    assert usage_rows(app) == []


BAD_INPUTS = {
    "token array": ([101, 2023, 102], "Token arrays are not supported"),
    "token arrays": ([[101, 2023], [102]], "Token arrays are not supported"),
    "empty string": ("", "Must not be empty."),
    "empty list": ([], "Must hold 1 to 2048 strings."),
    "an empty item": (["fine", ""], "Item 1 is empty"),
    "too many": (["x"] * 2049, "Must hold 1 to 2048 strings."),
    "mixed": (["fine", 3], "Must be a string or a list of strings."),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_400_with_param_input(app, alice, sdk, fake_ollama, case):
    value, text = BAD_INPUTS[case]

    with pytest.raises(openai.BadRequestError) as caught:
        sdk.embeddings.create(model=MODEL, input=value)

    error = caught.value
    assert (error.status_code, error.type, error.param, error.code) == (
        400,
        "invalid_request_error",
        "input",
        "validation_error",
    )
    assert text in error.message
    raw = openai_error(alice.post({"model": MODEL, "input": value}), 400)
    assert raw["param"] == "input" and raw["message"].startswith("input: ")
    assert fake_ollama.embed_requests == []
    assert usage_rows(app) == []


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"truncate": False}, "truncate"),
        ({"encoding_format": "int8"}, "encoding_format"),
        ({"dimensions": 0}, "dimensions"),
        ({"user": "u" * 257}, "user"),
    ],
)
def test_other_bad_fields_are_400_with_their_param(alice, fake_ollama, extra, param):
    error = openai_error(alice.post({"model": MODEL, "input": "x", **extra}), 400)

    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert fake_ollama.embed_requests == []


def test_credentials_api_key_or_jwt(server, alice, fake_ollama):
    bad = openai.OpenAI(base_url=server.url + "/v1", api_key="gw_" + "x" * 43, max_retries=0)
    try:
        with pytest.raises(openai.AuthenticationError) as caught:
            bad.embeddings.create(model=MODEL, input="who am i")
    finally:
        bad.close()
    assert (caught.value.status_code, caught.value.type) == (401, "authentication_error")

    missing = requests.post(
        server.url + "/v1/embeddings", json={"model": MODEL, "input": "x"}, timeout=10
    )
    assert openai_error(missing, 401)["type"] == "authentication_error"
    assert fake_ollama.embed_requests == []

    # An access JWT works as the SDK's api_key too; its usage row has no key.
    with openai.OpenAI(
        base_url=server.url + "/v1", api_key=alice.access_token, max_retries=0
    ) as signed_in:
        result = signed_in.embeddings.create(model=MODEL, input="signed in")
    assert len(result.data) == 1


def test_the_rate_limit_is_one_budget_with_chat(app, client, workers, alice, sdk, fake_ollama):
    admin = make_admin(app, client, "admin@example.com")
    patched = client.patch(
        f"/api/admin/users/{alice.user_id}",
        json={"rate_limit_per_minute": 3},
        headers=admin.headers,
    )
    assert patched.status_code == 200, patched.get_json()

    chat = sdk.chat.completions.create(  # 1
        model="light", messages=[{"role": "user", "content": f"hi {uuid.uuid4().hex}"}]
    )
    assert chat.choices[0].message.content
    sdk.embeddings.create(model=MODEL, input="two")  # 2
    sdk.embeddings.create(model=MODEL, input="three")  # 3

    with pytest.raises(openai.RateLimitError) as caught:
        sdk.embeddings.create(model=MODEL, input="four")
    error = caught.value
    assert (error.type, error.code) == ("rate_limit_error", "rate_limited")
    assert error.response.headers["X-RateLimit-Limit"] == "3"
    assert 0 < int(error.response.headers["Retry-After"]) <= 61
    # Chat is refused too: the same budget.
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(model="light", messages=[{"role": "user", "content": "hi"}])
    assert len(fake_ollama.embed_requests) == 2


# --- the model server failing ------------------------------------------------------------------


def test_a_model_server_that_is_down_is_503_model_unavailable(app, alice, sdk, fake_ollama):
    fake_ollama.mode = "down"
    try:
        with pytest.raises(openai.InternalServerError) as caught:
            sdk.embeddings.create(model=MODEL, input="anyone there")
        raw = alice.post({"model": MODEL, "input": "anyone there"})
    finally:
        fake_ollama.start()

    error = caught.value
    assert (error.status_code, error.type, error.code) == (503, "server_error", "model_unavailable")
    assert openai_error(raw, 503)["code"] == "model_unavailable"
    assert raw.headers["Retry-After"]
    rows = usage_rows(app)
    assert [(r.status, r.tier, r.prompt_tokens) for r in rows] == [("failed", "embeddings", 0)] * 2

    # Back up: answered again.
    assert len(sdk.embeddings.create(model=MODEL, input="back again").data) == 1


def test_a_model_server_error_is_502_model_error(app, sdk, fake_ollama):
    fake_ollama.mode = "error"

    with pytest.raises(openai.InternalServerError) as caught:
        sdk.embeddings.create(model=MODEL, input="fail")

    error = caught.value
    assert (error.status_code, error.type, error.code) == (502, "server_error", "model_error")
    assert "HTTP 500" in error.message
    (row,) = usage_rows(app)
    assert (row.status, row.model) == ("failed", MODEL)


def test_a_silent_model_server_is_503_model_timeout(app, sdk, fake_ollama):
    fake_ollama.mode = "hang"  # LLM_READ_TIMEOUT is 3 s in the tests

    with pytest.raises(openai.InternalServerError) as caught:
        sdk.embeddings.create(model=MODEL, input="hello?")

    assert (caught.value.status_code, caught.value.code) == (503, "model_timeout")
    assert "did not answer within 3 s" in caught.value.message


def test_a_configured_model_the_server_lacks_is_404_model_not_found(app, sdk, fake_ollama):
    fake_ollama.embedding_models = ["mxbai-embed-large"]

    with pytest.raises(openai.NotFoundError) as caught:
        sdk.embeddings.create(model=ALIAS, input="pulled?")

    assert caught.value.code == "model_not_found"
    assert ALIAS in caught.value.message
    (row,) = usage_rows(app)
    assert row.status == "failed"


def test_the_input_text_is_never_logged(server, sdk, fake_ollama):
    secret = f"confidential {uuid.uuid4().hex}"
    sdk.embeddings.create(model=MODEL, input=[secret, "other"])
    with pytest.raises(openai.BadRequestError):
        sdk.embeddings.create(model=MODEL, input=[secret], dimensions=4096)
    fake_ollama.mode = "error"
    with pytest.raises(openai.InternalServerError):
        sdk.embeddings.create(model=MODEL, input=[secret])

    assert "POST /v1/embeddings" in server.log_text()
    assert secret.split()[1] not in server.log_text()


# --- quota and stats ---------------------------------------------------------------------------


def test_embeddings_neither_count_towards_nor_are_refused_by_the_daily_quota(
    monkeypatch, migrated_database, redis_client, fake_ollama
):
    """In-process (the quota is a setting of the app): embeddings pass a used-up quota, add
    nothing to it, and show in the admin stats as their own tier."""
    monkeypatch.setenv("DAILY_TOKEN_QUOTA", "10")
    monkeypatch.setenv("OLLAMA_URL", fake_ollama.url)
    with fresh_app(TestingConfig(), redis_client) as app:
        client = app.test_client()
        admin = make_admin(app, client, "admin@example.com")
        user = register_and_login(client, "quota@example.com")
        add_usage(app, user.id, 4, 6)  # today's 10 tokens: used up

        chat = client.post(
            "/v1/chat/completions",
            json={"model": "light", "messages": [{"role": "user", "content": "hi"}]},
            headers=user.headers,
        )
        assert chat.status_code == 429, chat.get_json()
        assert chat.get_json()["error"]["code"] == "daily_token_quota_exceeded"

        for _ in range(2):
            answered = client.post(
                "/v1/embeddings",
                json={"model": MODEL, "input": ["one two three", "four five"]},
                headers=user.headers,
            )
            assert answered.status_code == 200, answered.get_json()
            assert answered.get_json()["usage"]["prompt_tokens"] == 5

        stats = client.get("/api/admin/stats", headers=admin.headers).get_json()
        by_tier = {row["tier"]: row for row in stats["by_model"]}
        embeddings = by_tier["embeddings"]
        assert embeddings["model"] == MODEL
        assert (
            embeddings["requests"],
            embeddings["jobs"],
            embeddings["errors"],
            embeddings["prompt_tokens"],
            embeddings["completion_tokens"],
        ) == (2, 0, 0, 10, 0)
        assert (stats["totals"]["requests"], stats["totals"]["jobs"]) == (3, 1)
