"""The OpenAI-compatible API (/v1), end to end with the official `openai` client library.

A real gunicorn server, real Celery workers and a fake Ollama on a real socket. The client
is `openai.OpenAI` pointed at the gateway with one of its API keys (or a JWT), exactly as a
user of an OpenAI-compatible tool would do; raw HTTP (requests) checks the wire format where
the SDK hides it. Every test asks its own uuid-marked questions, so the response cache
never links two tests.
"""

from __future__ import annotations

import json
import time
import uuid

import openai
import pytest
import requests

from tests.conftest import make_admin
from tests.fakes.ollama import DEFAULT_MODELS, numbered_words, tokenize
from tests.integration.conftest import wait_for_status
from tests.integration.openai_client import (
    OPENAI_ERROR_FIELDS,
    create_api_key,
    job_id_of,
    job_usage,
    openai_error,
    raw_post,
    read_frames,
    requests_mentioning,
    sdk,
    the_model_request,
    unique,
    usage_dict,
    usage_row,
    user,
)

pytestmark = pytest.mark.live

LIGHT_MODEL, HEAVY_MODEL = DEFAULT_MODELS
DEFAULT_REPLY = numbered_words(20)  # "w0 w1 ... w19": the fake model's answer
DEFAULT_TOKENS = tokenize(DEFAULT_REPLY)


# --- 1. GET /v1/models ---------------------------------------------------------------------


def test_models_lists_auto_the_tiers_and_the_configured_models(live, alice_sdk, alice_key):
    models = alice_sdk.models.list()

    # The chat models, then the embedding models (EMBEDDING_MODELS, by default one).
    assert [m.id for m in models.data] == [
        "auto",
        "light",
        "heavy",
        LIGHT_MODEL,
        HEAVY_MODEL,
        "nomic-embed-text",
    ]
    for model in models.data:
        assert model.object == "model"
        assert isinstance(model.created, int)
        assert model.owned_by

    raw = requests.get(
        live.url + "/v1/models", headers={"Authorization": f"Bearer {alice_key['key']}"}, timeout=10
    )
    assert raw.status_code == 200, raw.text
    body = raw.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == [m.id for m in models.data]
    for model in body["data"]:
        assert set(model) == {"id", "object", "created", "owned_by"}, model


# --- 2. non-streaming chat.completion --------------------------------------------------------


def test_completion_is_the_jobs_answer_without_a_conversation_and_with_a_usage_row(
    app, alice_http, alice_sdk, alice_key, fake_ollama
):
    # "search" would make the fake model call the web-search tool if it were offered.
    marker = unique("please search the web for")

    raw = alice_sdk.chat.completions.with_raw_response.create(model="auto", messages=user(marker))
    completion = raw.parse()

    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    job_id = job_id_of(completion.id)
    assert raw.headers["X-Job-ID"] == job_id
    assert raw.headers["X-Cache"] == "MISS"
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert (choice.index, choice.message.role) == (0, "assistant")
    assert choice.message.content == DEFAULT_REPLY
    assert choice.finish_reason == "stop"

    job = alice_http.job(job_id)
    assert job["status"] == "succeeded", job
    assert (job["model"], job["tier"]) == (LIGHT_MODEL, "light")
    assert completion.model == job["model"] == LIGHT_MODEL  # the resolved name, not "auto"
    assert job["output"] == DEFAULT_REPLY
    assert usage_dict(completion.usage) == job_usage(job)
    assert completion.usage.completion_tokens == len(DEFAULT_TOKENS)
    assert completion.usage.prompt_tokens > 0
    assert abs(completion.created - time.time()) < 60

    # The web-search tool is not offered to the model for /v1 requests.
    sent = the_model_request(fake_ollama, marker)
    assert not sent.get("tools"), sent.get("tools")
    assert sent["model"] == LIGHT_MODEL

    # No conversation is created or stored; the job is listed like any other.
    assert job["conversation_id"] is None and job["message_id"] is None, job
    conversations = alice_http.get("/api/conversations/")
    assert conversations.status_code == 200, conversations.text
    assert conversations.json()["total"] == 0, conversations.json()
    listed = alice_http.get("/api/jobs/").json()
    assert [item["id"] for item in listed["items"]] == [job_id]

    # A usage row, charged to the API key.
    row = usage_row(app, job_id)
    assert (row.status, row.cached, row.model, row.tier) == (
        "succeeded",
        False,
        LIGHT_MODEL,
        "light",
    )
    assert str(row.user_id) == alice_http.user_id
    assert str(row.api_key_id) == alice_key["id"]
    assert (row.prompt_tokens, row.completion_tokens) == (
        completion.usage.prompt_tokens,
        completion.usage.completion_tokens,
    )


# --- 3. streaming chat.completion.chunk ------------------------------------------------------


def test_streaming_deltas_join_to_the_answer_with_one_finish_chunk(
    live, alice_http, alice_sdk, alice_key, fake_ollama
):
    marker = unique("stream to me")

    chunks = list(
        alice_sdk.chat.completions.create(model="light", messages=user(marker), stream=True)
    )

    assert chunks, "no chunks"
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    assert {c.model for c in chunks} == {LIGHT_MODEL}
    first = chunks[0].choices[0]
    assert (first.delta.role, first.delta.content, first.finish_reason) == ("assistant", "", None)
    contents = [c.choices[0].delta.content for c in chunks[1:] if c.choices[0].delta.content]
    assert contents == DEFAULT_TOKENS  # one chunk per token
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == DEFAULT_REPLY
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)  # no include_usage: no usage chunk
    job = alice_http.job(job_id_of(chunks[0].id))
    assert (job["status"], job["output"]) == ("succeeded", DEFAULT_REPLY)

    # On the wire: data frames only, no usage key anywhere, and [DONE] last.
    marker2 = unique("stream raw")
    response = raw_post(
        live,
        alice_key["key"],
        {"model": "light", "messages": user(marker2), "stream": True},
        stream=True,
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Cache"] == "MISS"
    frames, _ = read_frames(response)
    assert frames[-1] == "[DONE]"
    chunks_raw = frames[:-1]
    assert all("usage" not in f for f in chunks_raw), chunks_raw
    assert all(len(f["choices"]) == 1 for f in chunks_raw), chunks_raw
    assert [f["choices"][0]["finish_reason"] for f in chunks_raw] == [None] * 21 + ["stop"]
    assert chunks_raw[-1]["choices"][0]["delta"] == {}
    assert job_id_of(chunks_raw[0]["id"]) == response.headers["X-Job-ID"]


def test_include_usage_adds_a_last_chunk_with_the_jobs_usage(
    live, alice_http, alice_sdk, alice_key
):
    marker = unique("count my tokens")

    chunks = list(
        alice_sdk.chat.completions.create(
            model="auto",
            messages=user(marker),
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    job = alice_http.job(job_id_of(last.id))
    assert job["status"] == "succeeded", job
    assert usage_dict(last.usage) == job_usage(job)
    assert last.usage.completion_tokens == len(DEFAULT_TOKENS)
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert [c.choices[0].finish_reason for c in chunks[:-1]].count("stop") == 1
    assert "".join(c.choices[0].delta.content or "" for c in chunks[:-1]) == DEFAULT_REPLY

    # On the wire, usage is null on every chunk but the last.
    response = raw_post(
        live,
        alice_key["key"],
        {
            "model": "auto",
            "messages": user(unique("count raw")),
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        stream=True,
    )
    frames, _ = read_frames(response)
    assert frames[-1] == "[DONE]"
    assert [f["usage"] for f in frames[:-2]] == [None] * (len(frames) - 2)
    assert frames[-2]["choices"] == [] and frames[-2]["usage"]["total_tokens"] > 0


def test_heartbeats_are_sse_comments_the_sdk_skips(live, alice_sdk, alice_key, fake_ollama):
    fake_ollama.first_token_delay = 1.5  # past SSE_HEARTBEAT_SECONDS (1 s) with nothing to say

    response = raw_post(
        live,
        alice_key["key"],
        {"model": "light", "messages": user(unique("slow start raw")), "stream": True},
        stream=True,
    )
    frames, comments = read_frames(response)
    assert comments, "no heartbeat"
    assert all(c.startswith(":") for c in comments)
    assert frames[-1] == "[DONE]"
    assert "".join(f["choices"][0]["delta"].get("content", "") for f in frames[:-1]) == (
        DEFAULT_REPLY
    )

    stream = alice_sdk.chat.completions.create(
        model="light", messages=user(unique("slow start sdk")), stream=True
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == DEFAULT_REPLY
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["stop"]


# --- 4. routing: aliases and model names -----------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "tier", "model"),
    [
        ("light", "light", LIGHT_MODEL),
        ("heavy", "heavy", HEAVY_MODEL),
        (LIGHT_MODEL, "light", LIGHT_MODEL),
        (HEAVY_MODEL, "heavy", HEAVY_MODEL),
    ],
)
def test_a_requested_model_routes_to_its_tier(
    alice_http, alice_sdk, fake_ollama, workers, requested, tier, model
):
    marker = unique(f"route me to {requested}")

    completion = alice_sdk.chat.completions.create(model=requested, messages=user(marker))

    assert completion.model == model
    assert completion.choices[0].message.content == DEFAULT_REPLY
    job_id = job_id_of(completion.id)
    job = alice_http.job(job_id)
    assert (job["tier"], job["model"]) == (tier, model)
    assert the_model_request(fake_ollama, marker)["model"] == model
    worker = workers.heavy if tier == "heavy" else workers.light
    assert job_id in worker.jobs_run()


# --- 5. what reaches the model ---------------------------------------------------------------


def test_the_clients_system_message_and_turns_reach_the_model_in_order(app, alice_sdk, fake_ollama):
    marker = unique("the last question")
    messages = [
        {"role": "system", "content": "You are a pirate. " + marker},
        {"role": "user", "content": "first question", "name": "alice"},
        {"role": "assistant", "content": "first answer"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "second "}, {"type": "text", "text": "question"}],
        },
        {"role": "assistant", "content": "second answer"},
        {"role": "user", "content": marker},
    ]

    completion = alice_sdk.chat.completions.create(
        model="light", messages=messages, user="end-user-42"
    )

    assert completion.choices[0].message.content == DEFAULT_REPLY
    sent = the_model_request(fake_ollama, marker)
    assert [(m["role"], m["content"]) for m in sent["messages"]] == [
        ("system", "You are a pirate. " + marker),
        ("user", "first question"),
        ("assistant", "first answer"),
        ("user", "second question"),  # text parts joined
        ("assistant", "second answer"),
        ("user", marker),
    ]
    gateway_prompt = app.config["SYSTEM_PROMPT"]
    assert all(m["content"] != gateway_prompt for m in sent["messages"])

    # Without a system message, the gateway's own system prompt comes first.
    plain = unique("no system message")
    alice_sdk.chat.completions.create(
        model="light",
        messages=[
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "hi"},
            {"role": "user", "content": plain},
        ],
    )
    sent = the_model_request(fake_ollama, plain)
    assert [(m["role"], m["content"]) for m in sent["messages"]] == [
        ("system", gateway_prompt),
        ("user", "hello"),
        ("assistant", "hi"),
        ("user", plain),
    ]


def test_max_tokens_and_temperature_reach_the_model(alice_http, alice_sdk, fake_ollama):
    marker = unique("cut me short")

    completion = alice_sdk.chat.completions.create(
        model="light", messages=user(marker), max_tokens=3, temperature=0.25
    )

    options = the_model_request(fake_ollama, marker)["options"]
    assert options["num_predict"] == 3
    assert options["temperature"] == 0.25
    assert completion.choices[0].message.content == "w0 w1 w2"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 3
    assert alice_http.job(job_id_of(completion.id))["finish_reason"] == "length"

    # max_completion_tokens (the newer name) too, and a streamed length finish.
    streamed = unique("cut the stream short")
    chunks = list(
        alice_sdk.chat.completions.create(
            model="light", messages=user(streamed), max_completion_tokens=4, stream=True
        )
    )
    assert the_model_request(fake_ollama, streamed)["options"]["num_predict"] == 4
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "w0 w1 w2 w3"
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["length"]


# --- 6. errors in OpenAI's shape -------------------------------------------------------------


def test_an_unknown_model_is_404_model_not_found(
    live, alice_http, alice_sdk, alice_key, fake_ollama
):
    marker = unique("which model")

    with pytest.raises(openai.NotFoundError) as caught:
        alice_sdk.chat.completions.create(model="gpt-4o", messages=user(marker))

    error = caught.value
    assert error.status_code == 404
    assert (error.code, error.type, error.param) == (
        "model_not_found",
        "invalid_request_error",
        None,
    )
    assert "gpt-4o" in error.message

    raw = openai_error(
        raw_post(live, alice_key["key"], {"model": "gpt-4o", "messages": user(marker)}), 404
    )
    assert (raw["code"], raw["type"], raw["param"]) == (
        "model_not_found",
        "invalid_request_error",
        None,
    )
    # Nothing was run or stored.
    assert requests_mentioning(fake_ollama, marker) == []
    assert alice_http.get("/api/jobs/").json()["total"] == 0


def test_an_invalid_or_missing_key_is_401_authentication_error(live, alice_http, fake_ollama):
    bad = sdk(live, "gw_" + "x" * 43)
    try:
        with pytest.raises(openai.AuthenticationError) as caught:
            bad.chat.completions.create(model="auto", messages=user(unique("who am i")))
        assert caught.value.status_code == 401
        assert (caught.value.type, caught.value.code) == ("authentication_error", "invalid_api_key")
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
    finally:
        bad.close()

    # A revoked key no longer works.
    key = create_api_key(alice_http, "soon revoked")
    assert alice_http.delete(f"/api/user/api-keys/{key['id']}").status_code in (200, 204)
    revoked = sdk(live, key["key"])
    try:
        with pytest.raises(openai.AuthenticationError):
            revoked.models.list()
    finally:
        revoked.close()

    missing = requests.post(live.url + "/v1/chat/completions", json={}, timeout=10)
    error = openai_error(missing, 401)
    assert error["type"] == "authentication_error"
    assert missing.headers.get("WWW-Authenticate") == "Bearer"
    assert fake_ollama.requests == []


def test_a_rate_limited_key_gets_429_rate_limit_error(
    app, client, live, alice_http, alice_key, alice_sdk, fake_ollama
):
    admin = make_admin(app, client, "admin@example.com")
    patched = client.patch(
        f"/api/admin/users/{alice_http.user_id}",
        json={"rate_limit_per_minute": 2},
        headers=admin.headers,
    )
    assert patched.status_code == 200, patched.get_json()

    assert len(alice_sdk.models.list().data) == 6
    first = alice_sdk.chat.completions.create(model="light", messages=user(unique("one more")))
    assert first.choices[0].message.content == DEFAULT_REPLY

    marker = unique("over the limit")
    with pytest.raises(openai.RateLimitError) as caught:
        alice_sdk.chat.completions.create(model="light", messages=user(marker))

    error = caught.value
    assert error.status_code == 429
    assert (error.type, error.code, error.param) == ("rate_limit_error", "rate_limited", None)
    assert 0 < int(error.response.headers["Retry-After"]) <= 61
    assert error.response.headers["X-RateLimit-Limit"] == "2"
    assert requests_mentioning(fake_ollama, marker) == []

    raw = openai_error(
        raw_post(live, alice_key["key"], {"model": "light", "messages": user(marker)}), 429
    )
    assert raw["type"] == "rate_limit_error"

    # Counted in the gateway's metrics like any other request.
    metrics = requests.get(live.url + "/api/metrics", headers=admin.headers, timeout=10).json()
    by_route = metrics["requests"]["by_route"]
    assert by_route["POST /v1/chat/completions"] == 3, by_route
    assert by_route["GET /v1/models"] == 1, by_route
    assert metrics["rate_limited"]["total"] == 2, metrics["rate_limited"]


VALIDATION_CASES = {
    "last message not the user's": (
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
        "messages",
        "The last message must be the user's or a tool result.",
    ),
    "unknown field": (
        {"messages": user("hi"), "frequency_penalty_x": 1},
        "frequency_penalty_x",
        "Unknown field.",
    ),
    "n=2": ({"messages": user("hi"), "n": 2}, "n", "Only n=1 is supported: send n requests"),
    "no messages": ({"messages": []}, "messages", "Length must be between 1 and 500."),
    "a tool result without its call": (
        {
            "messages": [
                *user("hi"),
                {"role": "tool", "tool_call_id": "call_nowhere", "content": "42"},
            ]
        },
        "messages.1.tool_call_id",
        "Must answer a tool call of an earlier assistant message.",
    ),
    "tool_choice without tools": (
        {"messages": user("hi"), "tool_choice": "required"},
        "tool_choice",
        "tool_choice needs tools.",
    ),
    "a tool_choice naming no offered tool": (
        {
            "messages": user("hi"),
            "tools": [{"type": "function", "function": {"name": "a"}}],
            "tool_choice": {"type": "function", "function": {"name": "b"}},
        },
        "tool_choice",
        "Names a function that is not in tools.",
    ),
    "top_logprobs without logprobs": (
        {"messages": user("hi"), "top_logprobs": 2},
        "top_logprobs",
        "top_logprobs needs logprobs: true.",
    ),
    "logit_bias on Ollama": (
        {"messages": user("hi"), "logit_bias": {"50256": -100}},
        "logit_bias",
        "Ollama has no logit bias",
    ),
    "audio output": (
        {"messages": user("hi"), "modalities": ["text", "audio"]},
        "modalities",
        "Only the text modality is supported.",
    ),
    "a custom tool": (
        {"messages": user("hi"), "tools": [{"type": "custom", "function": {"name": "a"}}]},
        "tools.0.type",
        "Only function tools are supported.",
    ),
    "an invalid JSON schema": (
        {
            "messages": user("hi"),
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": {"type": "nothing"}},
            },
        },
        "response_format.json_schema.schema",
        "Not a valid JSON schema",
    ),
    "an audio part": (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}
                    ],
                }
            ]
        },
        "messages.0.content.0",
        "Audio input is not supported",
    ),
    "an image for a model without vision": (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}},
                    ],
                }
            ]
        },
        "messages",
        "does not take images",
    ),
    "unknown role": (
        {"messages": [{"role": "robot", "content": "hi"}]},
        "messages.0.role",
        "Must be one of",
    ),
}


@pytest.mark.parametrize("case", list(VALIDATION_CASES))
def test_validation_errors_are_400_invalid_request_error(
    live, alice_http, alice_sdk, alice_key, fake_ollama, case
):
    body, param, text = VALIDATION_CASES[case]
    fields = {"model": "light", **body}
    known = {k: v for k, v in fields.items() if k in {"model", "messages", "n"}}
    extra = {k: v for k, v in fields.items() if k not in known}

    with pytest.raises(openai.BadRequestError) as caught:
        alice_sdk.chat.completions.create(**known, extra_body=extra or None)

    error = caught.value
    assert error.status_code == 400
    assert (error.type, error.param, error.code) == (
        "invalid_request_error",
        param,
        "validation_error",
    )
    assert text in error.message

    raw = openai_error(raw_post(live, alice_key["key"], fields), 400)
    assert (raw["type"], raw["param"], raw["code"]) == (
        "invalid_request_error",
        param,
        "validation_error",
    )
    assert raw["message"].startswith(f"{param}: "), raw
    assert text in raw["message"]
    assert fake_ollama.requests == []
    assert alice_http.get("/api/jobs/").json()["total"] == 0


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]"], ids=["invalid JSON", "not an object"])
def test_a_body_that_is_not_a_json_object_is_400_with_no_param(live, alice_key, body):
    error = openai_error(raw_post(live, alice_key["key"], body), 400)

    assert error["type"] == "invalid_request_error"
    assert not error["message"].startswith(":"), error
    assert error["param"] is None, error


# --- 7. failures ---------------------------------------------------------------------------


def test_a_model_failure_mid_stream_raises_and_never_finishes_with_stop(
    app, live, alice_http, alice_sdk, alice_key, fake_ollama
):
    fake_ollama.mode = "error_mid_stream"  # two tokens, then Ollama's {"error": ...} line
    marker = unique("fail while streaming")

    chunks = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in alice_sdk.chat.completions.create(
            model="light",
            messages=user(marker),
            stream=True,
            stream_options={"include_usage": True},
        ):
            chunks.append(chunk)

    assert not isinstance(caught.value, openai.APIStatusError)  # the HTTP status was 200
    assert chunks, "not even the role chunk arrived"
    assert all(c.choices and c.choices[0].finish_reason is None for c in chunks), chunks
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "w0 w1"
    job_id = job_id_of(chunks[0].id)
    job = alice_http.job(job_id)
    assert job["status"] == "failed", job
    assert caught.value.code == job["error"]["code"]
    assert caught.value.type == "server_error"
    assert usage_row(app, job_id).status == "failed"

    # On the wire: the role chunk, the tokens, one error frame, then [DONE].
    response = raw_post(
        live,
        alice_key["key"],
        {"model": "light", "messages": user(unique("fail raw")), "stream": True},
        stream=True,
    )
    assert response.status_code == 200, response.text
    frames, _ = read_frames(response)
    assert frames[-1] == "[DONE]"
    error_frame = frames[-2]
    assert set(error_frame) == {"error"}, error_frame
    assert set(error_frame["error"]) == OPENAI_ERROR_FIELDS
    assert error_frame["error"]["type"] == "server_error"
    assert error_frame["error"]["code"] == job["error"]["code"]
    chunk_frames = frames[:-2]
    assert [f["choices"][0]["delta"].get("content") for f in chunk_frames] == ["", "w0", " w1"]
    assert all(f["choices"][0]["finish_reason"] is None for f in chunk_frames), chunk_frames


def test_a_cancelled_stream_ends_with_an_error_frame(live, alice_http, alice_key, fake_ollama):
    fake_ollama.token_delay = 0.1
    response = raw_post(
        live,
        alice_key["key"],
        {"model": "light", "messages": user(unique("cancel me")), "stream": True},
        stream=True,
    )
    assert response.status_code == 200, response.text
    job_id = response.headers["X-Job-ID"]
    lines = response.iter_lines(decode_unicode=True)
    seen_tokens = 0
    for line in lines:  # wait for two content chunks, then cancel
        if (
            line
            and line.startswith("data:")
            and '"content":"' in line
            and '"content":""' not in line
        ):
            seen_tokens += 1
            if seen_tokens == 2:
                break
    cancelled = alice_http.delete(f"/api/jobs/{job_id}")
    assert cancelled.status_code == 202, cancelled.text

    rest = []
    for line in lines:
        if line and line.startswith("data:"):
            rest.append(line.removeprefix("data: "))
            if rest[-1] == "[DONE]":
                break
    response.close()

    assert rest[-1] == "[DONE]"
    error = json.loads(rest[-2])
    assert error["error"]["code"] == "cancelled", error
    assert all('"finish_reason":"stop"' not in frame for frame in rest), rest
    assert alice_http.job(job_id)["status"] == "cancelled"


def test_a_failed_generation_is_502_server_error(alice_http, alice_sdk, fake_ollama):
    fake_ollama.mode = "error"  # HTTP 500 from the model server before any token
    marker = unique("fail at once")

    with pytest.raises(openai.InternalServerError) as caught:
        alice_sdk.chat.completions.create(model="light", messages=user(marker))

    error = caught.value
    assert error.status_code == 502
    assert error.type == "server_error"
    jobs = alice_http.get("/api/jobs/").json()["items"]
    assert len(jobs) == 1 and jobs[0]["status"] == "failed", jobs
    assert error.code == jobs[0]["error"]["code"]
    assert set(error.body) == OPENAI_ERROR_FIELDS, error.body
    assert requests_mentioning(fake_ollama, marker)


def test_an_answer_past_the_wait_is_504_and_names_the_job_that_goes_on(
    app, alice_http, alice_sdk, fake_ollama
):
    fake_ollama.token_delay = 0.3  # 20 tokens: ~6 s, past CHAT_WAIT_SECONDS (5 s)
    marker = unique("take your time")

    with pytest.raises(openai.InternalServerError) as caught:
        alice_sdk.chat.completions.create(model="light", messages=user(marker))
    fake_ollama.token_delay = 0.005  # let the job end quickly now

    error = caught.value
    assert error.status_code == 504
    assert (error.type, error.code) == ("server_error", "answer_timeout")
    jobs = alice_http.get("/api/jobs/").json()["items"]
    assert len(jobs) == 1, jobs
    job_id = jobs[0]["id"]
    job = wait_for_status(lambda: alice_http.job(job_id), {"succeeded", "failed", "cancelled"})
    assert (job["status"], job["output"]) == ("succeeded", DEFAULT_REPLY), job  # it went on
    assert usage_row(app, job_id).status == "succeeded"

    assert error.response.headers.get("X-Job-ID") == job_id
    assert f"GET /api/jobs/{job_id}" in error.message


# --- 8. the response cache -------------------------------------------------------------------


def test_an_identical_request_is_answered_from_the_cache(app, alice_http, alice_sdk, fake_ollama):
    marker = unique("cache this")
    messages = [{"role": "system", "content": "Be brief."}, *user(marker)]

    first_raw = alice_sdk.chat.completions.with_raw_response.create(
        model="light", messages=messages
    )
    first = first_raw.parse()
    second_raw = alice_sdk.chat.completions.with_raw_response.create(
        model="light", messages=messages
    )
    second = second_raw.parse()

    assert first_raw.headers["X-Cache"] == "MISS"
    assert second_raw.headers["X-Cache"] == "HIT"
    assert second.id != first.id
    assert second.choices[0].message.content == first.choices[0].message.content == DEFAULT_REPLY
    assert usage_dict(second.usage) == usage_dict(first.usage)
    assert second.model == first.model == LIGHT_MODEL
    assert len(requests_mentioning(fake_ollama, marker)) == 1
    hit_job = alice_http.job(job_id_of(second.id))
    assert (hit_job["status"], hit_job["cached"]) == ("succeeded", True)
    assert usage_row(app, job_id_of(second.id)).cached is True

    # A streamed identical request replays the cached chunks.
    stream_raw = alice_sdk.chat.completions.with_raw_response.create(
        model="light", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    assert stream_raw.headers["X-Cache"] == "HIT"
    chunks = list(stream_raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks[:-1]) == DEFAULT_REPLY
    assert [c.choices[0].finish_reason for c in chunks[:-1] if c.choices[0].finish_reason] == [
        "stop"
    ]
    assert usage_dict(chunks[-1].usage) == usage_dict(first.usage)
    assert len(requests_mentioning(fake_ollama, marker)) == 1

    # A different system message is another request.
    other = alice_sdk.chat.completions.with_raw_response.create(
        model="light", messages=[{"role": "system", "content": "Be long."}, *user(marker)]
    )
    assert other.headers["X-Cache"] == "MISS"
    assert len(requests_mentioning(fake_ollama, marker)) == 2

    # Cache-Control: no-cache generates anew.
    fresh = alice_sdk.chat.completions.with_raw_response.create(
        model="light", messages=messages, extra_headers={"Cache-Control": "no-cache"}
    )
    assert fresh.headers["X-Cache"] == "MISS"
    assert len(requests_mentioning(fake_ollama, marker)) == 3


def test_an_idempotency_key_returns_the_same_completion(alice_sdk, fake_ollama):
    marker = unique("only once")
    key = {"Idempotency-Key": uuid.uuid4().hex}

    first = alice_sdk.chat.completions.create(
        model="light", messages=user(marker), extra_headers=key
    )
    again = alice_sdk.chat.completions.create(
        model="light", messages=user(marker), extra_headers=key
    )

    assert again.id == first.id
    assert again.choices[0].message.content == first.choices[0].message.content
    assert len(requests_mentioning(fake_ollama, marker)) == 1


# --- 9. JWT access tokens ------------------------------------------------------------------


def test_a_jwt_access_token_works_as_the_api_key(app, live, alice_http, fake_ollama):
    token = alice_http.headers["Authorization"].removeprefix("Bearer ")
    client = sdk(live, token)
    try:
        assert "auto" in [m.id for m in client.models.list().data]
        marker = unique("signed in with a token")
        completion = client.chat.completions.create(model="auto", messages=user(marker))
        chunks = list(
            client.chat.completions.create(
                model="auto", messages=user(marker + " again"), stream=True
            )
        )
    finally:
        client.close()

    assert completion.choices[0].message.content == DEFAULT_REPLY
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == DEFAULT_REPLY
    row = usage_row(app, job_id_of(completion.id))
    assert str(row.user_id) == alice_http.user_id
    assert row.api_key_id is None
    assert alice_http.get("/api/conversations/").json()["total"] == 0
