"""POST /v1/embeddings without a server: the request schema, EMBEDDING_MODELS, the base64
encoding the openai SDK decodes, and the model-server client against a mock transport
(the OpenAI-compatible provider's wire format included, which the live tests, on the
fake Ollama, do not reach)."""

from __future__ import annotations

import base64
import json
from array import array

import httpx
import marshmallow as ma
import numpy as np
import pytest

from api import embedding_backends as backends
from api.schemas.embeddings import MAX_INPUTS, TEXT_ONLY, EmbeddingRequestSchema
from api.services.embeddings import encode
from config.settings import ModelSettings, TestingConfig, parse_embedding_models

# --- the request schema --------------------------------------------------------------------


def load(**fields):
    return EmbeddingRequestSchema().load({"model": "nomic-embed-text", **fields})


def error_of(**fields) -> dict:
    with pytest.raises(ma.ValidationError) as caught:
        load(**fields)
    return caught.value.messages


def test_a_string_or_a_list_of_strings_is_loaded_as_the_list_of_texts():
    assert load(input="hello")["input"] == ["hello"]
    assert load(input=["a", "b", "c"])["input"] == ["a", "b", "c"]
    assert load(input=["x"] * MAX_INPUTS)["input"] == ["x"] * MAX_INPUTS


def test_defaults_and_optional_fields():
    loaded = load(input="hi")
    assert loaded["encoding_format"] == "float"
    assert "dimensions" not in loaded and "user" not in loaded

    loaded = load(input="hi", encoding_format="base64", dimensions=256, user="u-1")
    assert (loaded["encoding_format"], loaded["dimensions"], loaded["user"]) == (
        "base64",
        256,
        "u-1",
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([1, 2, 3], TEXT_ONLY),
        ([[1, 2], [3]], TEXT_ONLY),
        ("", "Must not be empty."),
        ([], f"Must hold 1 to {MAX_INPUTS} strings."),
        (["x"] * (MAX_INPUTS + 1), f"Must hold 1 to {MAX_INPUTS} strings."),
        (["a", ""], "Item 1 is empty; every text needs a character."),
        (["a", 1], "Must be a string or a list of strings."),
        ([["a"]], "Must be a string or a list of strings."),
        ([True], "Must be a string or a list of strings."),
        (5, "Must be a string or a list of strings."),
        ({"text": "a"}, "Must be a string or a list of strings."),
        (None, "Field may not be null."),
    ],
    ids=[
        "token array",
        "token arrays",
        "empty string",
        "empty list",
        "too many",
        "an empty item",
        "mixed",
        "nested strings",
        "booleans",
        "number",
        "object",
        "null",
    ],
)
def test_bad_input_is_an_error_on_input(value, message):
    assert error_of(input=value) == {"input": [message]}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"input": "a", "encoding_format": "binary"}, "encoding_format"),
        ({"input": "a", "dimensions": 0}, "dimensions"),
        ({"input": "a", "dimensions": "256"}, "dimensions"),
        ({"input": "a", "dimensions": 1.5}, "dimensions"),
        ({"input": "a", "user": "u" * 257}, "user"),
        ({"input": "a", "model": ""}, "model"),
        ({"input": "a", "truncate": True}, "truncate"),
    ],
    ids=[
        "format",
        "zero dimensions",
        "string dimensions",
        "float dimensions",
        "user",
        "model",
        "unknown",
    ],
)
def test_other_bad_fields_are_errors_on_themselves(fields, field):
    assert set(error_of(**fields)) == {field}


def test_model_and_input_are_required():
    assert set(error_of()) == {"input"}
    with pytest.raises(ma.ValidationError) as caught:
        EmbeddingRequestSchema().load({"input": "a"})
    assert set(caught.value.messages) == {"model"}


# --- EMBEDDING_MODELS --------------------------------------------------------------------------


def test_embedding_models_default_to_nomic_embed_text(monkeypatch):
    monkeypatch.delenv("EMBEDDING_MODELS", raising=False)
    assert TestingConfig().EMBEDDING_MODELS == {"nomic-embed-text": "nomic-embed-text"}
    monkeypatch.setenv("EMBEDDING_MODELS", "  ")
    assert TestingConfig().EMBEDDING_MODELS == {"nomic-embed-text": "nomic-embed-text"}


def test_entries_are_aliases_or_plain_names_in_order(monkeypatch):
    monkeypatch.setenv(
        "EMBEDDING_MODELS",
        " nomic-embed-text , text-embedding-3-small = nomic-embed-text,hf.co/org/e5:Q8_0",
    )
    models = TestingConfig().EMBEDDING_MODELS
    assert list(models.items()) == [
        ("nomic-embed-text", "nomic-embed-text"),
        ("text-embedding-3-small", "nomic-embed-text"),
        ("hf.co/org/e5:Q8_0", "hf.co/org/e5:Q8_0"),
    ]


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("a,,b", "entry 2 ('') is empty"),
        ("a,", "entry 2 ('') is empty"),
        ("small=", "entry 1 ('small=') is not `alias=backend_model`"),
        ("=nomic", "entry 1 ('=nomic') is not `alias=backend_model`"),
        ("a=b=c", "entry 1 ('a=b=c') is not `alias=backend_model`"),
        ("nomic embed", "entry 1 ('nomic embed') has whitespace inside a name"),
        ("a=" + "m" * 201, "has a name longer than 200 characters"),
        ("nomic,nomic=other", "entry 2 ('nomic=other') repeats the name 'nomic'"),
    ],
)
def test_a_malformed_entry_stops_the_start_with_a_clear_message(monkeypatch, raw, problem):
    with pytest.raises(RuntimeError) as caught:
        parse_embedding_models(raw)
    assert str(caught.value).startswith("EMBEDDING_MODELS entry ")
    assert problem in str(caught.value)
    assert "alias=backend_model" in str(caught.value)

    monkeypatch.setenv("EMBEDDING_MODELS", raw)
    with pytest.raises(RuntimeError):
        TestingConfig()


def test_an_alias_may_not_be_a_chat_model_name(monkeypatch):
    monkeypatch.setenv("EMBEDDING_MODELS", "nomic-embed-text,light=nomic-embed-text")
    with pytest.raises(RuntimeError, match="'light', already a chat model name"):
        TestingConfig().validate()
    monkeypatch.setenv("MODEL_LIGHT", "nomic-embed-text")
    monkeypatch.setenv("EMBEDDING_MODELS", "nomic-embed-text")
    with pytest.raises(RuntimeError, match="'nomic-embed-text', already a chat model name"):
        TestingConfig().validate()


# --- base64 ----------------------------------------------------------------------------------


def test_float_is_the_vector_as_the_model_server_sent_it():
    vector = [0.1, -0.25, 1e-8]
    assert encode(vector, "float") is vector


def test_base64_is_little_endian_float32_as_the_openai_sdk_decodes_it():
    vector = [0.1, -0.25, 1.0, 3.4e38, -1e-40, 0.0]

    encoded = encode(vector, "base64")

    raw = base64.b64decode(encoded)
    assert len(raw) == 4 * len(vector)
    # The openai SDK's two decoders: numpy's frombuffer (float32, native order on every
    # machine it runs on) and array("f"); both must give the float32 values of the vector.
    expected = array("f", vector).tolist()
    assert np.frombuffer(raw, dtype="<f4").tolist() == expected
    assert array("f", raw).tolist() == expected
    assert raw[:4] == bytes.fromhex("cdcccc3d")  # 0.1 as float32, little-endian
    assert encode([], "base64") == ""


# --- the model-server client ----------------------------------------------------------------

# Model settings as the environment would give them (typed settings are built by name).
CONFIG = ModelSettings(
    LLM_PROVIDER="ollama",
    OLLAMA_URL="http://ollama.test:11434/",
    OPENAI_BASE_URL="http://vllm.test/v1/",
    OPENAI_API_KEY="sk-test",
    LLM_CONNECT_TIMEOUT=1.0,
    LLM_READ_TIMEOUT=2.0,
)
OPENAI = CONFIG.model_copy(update={"llm_provider": "openai"})


@pytest.fixture
def server(monkeypatch):
    """A mock model server: set `server.answer` to a function of the request."""

    class Server:
        requests: list[httpx.Request] = []
        answer = None

        def handle(self, request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return self.answer(request)

        def body(self, index: int = -1) -> dict:
            return json.loads(self.requests[index].content)

    fake = Server()
    fake.requests = []
    client = httpx.Client(transport=httpx.MockTransport(fake.handle))
    monkeypatch.setattr(backends, "http_client", lambda connect, read: client)
    yield fake
    client.close()


def test_ollama_gets_one_embed_request_for_all_texts(server):
    server.answer = lambda request: httpx.Response(
        200, json={"embeddings": [[0.1, 0.2], [0.3, 0.4]], "prompt_eval_count": 7}
    )

    result = backends.embed(CONFIG, "nomic-embed-text", ["one", "two"], dimensions=None)

    assert result == backends.Embeddings([[0.1, 0.2], [0.3, 0.4]], 7)
    (request,) = server.requests
    assert str(request.url) == "http://ollama.test:11434/api/embed"
    assert server.body() == {"model": "nomic-embed-text", "input": ["one", "two"], "truncate": True}

    backends.embed(CONFIG, "nomic-embed-text", ["one", "two"], dimensions=2)
    assert server.body()["dimensions"] == 2


def test_an_openai_compatible_server_gets_openais_request_and_its_answer_is_reordered(server):
    def answer(request):
        return httpx.Response(
            200,
            json={
                "object": "list",
                "data": [
                    {"object": "embedding", "index": 1, "embedding": [0.3, 0.4]},
                    {"object": "embedding", "index": 0, "embedding": [0.1, 0.2]},
                ],
                "model": "e5",
                "usage": {"prompt_tokens": 5, "total_tokens": 5},
            },
        )

    server.answer = answer

    result = backends.embed(OPENAI, "e5", ["one", "two"], dimensions=2)

    assert result == backends.Embeddings([[0.1, 0.2], [0.3, 0.4]], 5)
    (request,) = server.requests
    assert str(request.url) == "http://vllm.test/v1/embeddings"
    assert request.headers["Authorization"] == "Bearer sk-test"
    assert server.body() == {
        "model": "e5",
        "input": ["one", "two"],
        "encoding_format": "float",
        "dimensions": 2,
    }


def test_an_answer_without_usage_counts_no_tokens(server):
    server.answer = lambda request: httpx.Response(
        200, json={"data": [{"index": 0, "embedding": [1.0]}]}
    )
    assert backends.embed(OPENAI, "e5", ["one"], dimensions=None).prompt_tokens == 0
    server.answer = lambda request: httpx.Response(200, json={"embeddings": [[1.0]]})
    assert backends.embed(CONFIG, "e5", ["one"], dimensions=None).prompt_tokens == 0


def raises(config, exc_type, dimensions=None, texts=("some text",)):
    with pytest.raises(exc_type) as caught:
        backends.embed(config, "nomic-embed-text", list(texts), dimensions=dimensions)
    return caught.value


def test_status_errors_map_to_what_the_client_can_act_on(server):
    server.answer = lambda request: httpx.Response(
        404, json={"error": 'model "nomic-embed-text" not found, try pulling it first'}
    )
    assert (
        "does not have 'nomic-embed-text'" in raises(CONFIG, backends.BackendModelNotFound).message
    )

    server.answer = lambda request: httpx.Response(
        400, json={"error": "dimensions 4096 exceeds the model's 768"}
    )
    rejected = raises(CONFIG, backends.BackendRejected, dimensions=4096)
    assert rejected.param == "dimensions"
    assert "dimensions 4096 exceeds the model's 768" in rejected.message

    server.answer = lambda request: httpx.Response(
        400,
        json={"error": {"message": "Too long.", "type": "invalid_request_error", "param": "input"}},
    )
    assert raises(OPENAI, backends.BackendRejected).param == "input"

    server.answer = lambda request: httpx.Response(422, json={"message": "Something odd."})
    rejected = raises(OPENAI, backends.BackendRejected)
    assert (rejected.param, rejected.message) == (
        None,
        "The model server refused the request: Something odd.",
    )

    server.answer = lambda request: httpx.Response(503, text="loading model")
    raises(CONFIG, backends.BackendUnavailable)

    server.answer = lambda request: httpx.Response(500, json={"error": "llama runner exited"})
    failed = raises(CONFIG, backends.BackendFailed)
    assert failed.code == "model_error"
    assert failed.message == "The model server failed (HTTP 500): llama runner exited"


@pytest.mark.parametrize(
    "answer",
    [
        {"embeddings": [[0.1]]},  # one vector for two texts
        {"embeddings": [[0.1], ["x"]]},
        {"embeddings": [[0.1], []]},
        {"embeddings": "nope"},
        {"something": "else"},
        [1, 2],
    ],
)
def test_an_answer_that_is_not_one_vector_per_text_is_a_bad_response(server, answer):
    server.answer = lambda request: httpx.Response(200, json=answer)
    failed = raises(CONFIG, backends.BackendFailed, texts=("a", "b"))
    assert failed.code == "model_bad_response"


def test_a_body_that_is_not_json_is_a_bad_response(server):
    server.answer = lambda request: httpx.Response(200, text="<html>")
    assert raises(CONFIG, backends.BackendFailed).code == "model_bad_response"


def test_a_server_that_ignores_dimensions_is_a_400_on_dimensions(server):
    server.answer = lambda request: httpx.Response(200, json={"embeddings": [[0.1, 0.2, 0.3]]})
    rejected = raises(CONFIG, backends.BackendRejected, dimensions=2)
    assert rejected.param == "dimensions"
    assert "answered 3 dimensions" in rejected.message


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (httpx.ConnectError("refused"), backends.BackendUnavailable),
        (httpx.ConnectTimeout("slow"), backends.BackendUnavailable),
        (httpx.ReadTimeout("silent"), backends.BackendTimeout),
        (httpx.RemoteProtocolError("closed"), backends.BackendFailed),
    ],
)
def test_transport_errors(server, error, expected):
    def answer(request):
        raise error

    server.answer = answer
    raised = raises(CONFIG, expected)
    assert "some text" not in raised.message


def test_the_input_text_is_never_logged(server, caplog):
    secret = "my secret diary entry"
    caplog.set_level("DEBUG", logger="api.embedding_backends")
    server.answer = lambda request: httpx.Response(400, json={"error": f"cannot embed {secret}"})
    raises(CONFIG, backends.BackendRejected, texts=(secret,))
    server.answer = lambda request: httpx.Response(200, json={"embeddings": [[0.5]]})
    backends.embed(CONFIG, "nomic-embed-text", [secret], dimensions=None)

    assert caplog.records
    for record in caplog.records:
        assert secret not in json.dumps(record.__dict__, default=str)


def test_one_http_client_per_process_and_timeouts():
    first = backends.http_client(1.0, 2.0)
    assert backends.http_client(1.0, 2.0) is first
    assert first.timeout == httpx.Timeout(2.0, connect=1.0)
    assert backends.http_client(1.0, 3.0) is not first
