"""/v1/chat/completions as real clients use it: sampling parameters, structured output,
client tools, logprobs, roles and images — with the official `openai` SDK against the live
stack (gunicorn, Celery workers, fake Ollama on a real socket).

Each test checks both what the client gets and what the model server was sent (in
Ollama's own protocol), so a parameter that is accepted but dropped fails here.
"""

from __future__ import annotations

import base64
import json

import openai
import pytest
import requests

from tests.fakes.ollama import DEFAULT_MODELS, numbered_words, tokenize
from tests.integration.openai_client import (
    job_id_of,
    openai_error,
    raw_post,
    read_frames,
    requests_mentioning,
    the_model_request,
    unique,
    user,
)

pytestmark = pytest.mark.live

LIGHT_MODEL, HEAVY_MODEL = DEFAULT_MODELS
DEFAULT_REPLY = numbered_words(20)

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The time in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
PERSON_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "mood": {"type": "string", "enum": ["happy", "sad"]},
    },
    "required": ["name", "age", "mood"],
    "additionalProperties": False,
}
PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\nfake image").decode()


def weather_question(marker: str) -> list[dict]:
    # Quotes would be escaped in the recorded request: the marker goes last, unquoted.
    return user(f'Use get_weather for "Paris" over 3 days. {marker}')


# --- 1. sampling and output parameters ------------------------------------------------------


def test_sampling_parameters_reach_the_model_as_ollama_options(alice_sdk, fake_ollama):
    marker = unique("sampling")

    completion = alice_sdk.chat.completions.create(
        model="light",
        messages=user(marker),
        temperature=0.3,
        top_p=0.9,
        seed=42,
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        max_completion_tokens=50,
        user="end-user-7",
        metadata={"purpose": "test"},
        store=False,
        service_tier="auto",
        extra_body={"reasoning_effort": "low", "verbosity": "low"},
    )

    assert completion.choices[0].message.content == DEFAULT_REPLY
    sent = the_model_request(fake_ollama, marker)
    assert sent["options"] == {
        "num_predict": 50,
        "temperature": 0.3,
        "top_p": 0.9,
        "seed": 42,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
    }
    assert "format" not in sent or sent["format"] in (None, "")


@pytest.mark.parametrize("stop", ["w3", ["w9", " w3"]], ids=["a string", "a list"])
def test_stop_sequences_end_the_answer_before_them(alice_sdk, fake_ollama, stop):
    marker = unique("stop")

    completion = alice_sdk.chat.completions.create(model="light", messages=user(marker), stop=stop)

    assert the_model_request(fake_ollama, marker)["options"]["stop"] == (
        [stop] if isinstance(stop, str) else stop
    )
    assert completion.choices[0].message.content.rstrip() == "w0 w1 w2"
    assert completion.choices[0].finish_reason == "stop"


def test_a_json_schema_answer_is_json_of_that_schema(alice_sdk, fake_ollama):
    marker = unique("a person")
    question = f'A person called "Ada" aged 36. {marker}'
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "person", "schema": PERSON_SCHEMA, "strict": True},
    }

    completion = alice_sdk.chat.completions.create(
        model="light", messages=user(question), response_format=response_format
    )

    assert the_model_request(fake_ollama, marker)["format"] == PERSON_SCHEMA
    answer = json.loads(completion.choices[0].message.content)
    assert answer == {"name": "Ada", "age": 36, "mood": "happy"}

    # Streamed too: the deltas join to the same JSON.
    streamed = f'Another person called "Ada" aged 36. {unique("streamed")}'
    chunks = list(
        alice_sdk.chat.completions.create(
            model="light", messages=user(streamed), response_format=response_format, stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(text) == {"name": "Ada", "age": 36, "mood": "happy"}


def test_json_object_mode_asks_ollama_for_json(alice_sdk, fake_ollama):
    marker = unique("answer in JSON")

    completion = alice_sdk.chat.completions.create(
        model="light", messages=user(marker), response_format={"type": "json_object"}
    )

    assert the_model_request(fake_ollama, marker)["format"] == "json"
    assert isinstance(json.loads(completion.choices[0].message.content), dict)


def test_a_strict_schema_the_answer_breaks_fails_the_job_and_is_never_cached(
    live, alice_http, alice_sdk, alice_key, fake_ollama
):
    fake_ollama.format_violation = True  # the model leaves out required properties
    marker = unique("a broken person")
    body = {
        "model": "light",
        "messages": user(marker),
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": PERSON_SCHEMA, "strict": True},
        },
    }

    with pytest.raises(openai.APIStatusError) as caught:
        alice_sdk.chat.completions.create(**body)

    assert caught.value.status_code == 502
    assert caught.value.code == "invalid_structured_output"
    assert "person schema" in caught.value.message

    # A stream shows the text as it came, then the error instead of a finish.
    response = raw_post(live, alice_key["key"], {**body, "stream": True}, stream=True)
    frames, _ = read_frames(response)
    assert frames[-1] == "[DONE]"
    assert frames[-2]["error"]["code"] == "invalid_structured_output"
    assert not [f for f in frames[:-2] if f["choices"][0]["finish_reason"]]

    # Without strict the same answer is returned as the model wrote it.
    lenient = {**body, "response_format": {**body["response_format"]}}
    lenient["response_format"]["json_schema"] = {"name": "person", "schema": PERSON_SCHEMA}
    completion = alice_sdk.chat.completions.create(**lenient)
    assert completion.choices[0].finish_reason == "stop"
    assert "age" not in json.loads(completion.choices[0].message.content)


def test_logprobs_come_per_token_streamed_or_not(alice_sdk, fake_ollama):
    marker = unique("with logprobs")

    completion = alice_sdk.chat.completions.create(
        model="light", messages=user(marker), logprobs=True, top_logprobs=2, max_tokens=5
    )

    sent = the_model_request(fake_ollama, marker)
    assert (sent["logprobs"], sent["top_logprobs"]) == (True, 2)
    content = completion.choices[0].logprobs.content
    assert [entry.token for entry in content] == tokenize("w0 w1 w2 w3 w4")
    assert all(entry.logprob < 0 for entry in content)
    assert all(len(entry.top_logprobs) == 2 for entry in content)
    assert content[0].top_logprobs[0].token == "w0"

    streamed = unique("streamed logprobs")
    chunks = list(
        alice_sdk.chat.completions.create(
            model="light", messages=user(streamed), logprobs=True, max_tokens=3, stream=True
        )
    )
    entries = [
        entry
        for chunk in chunks
        if chunk.choices and chunk.choices[0].logprobs
        for entry in chunk.choices[0].logprobs.content
    ]
    assert [entry.token for entry in entries] == ["w0", " w1", " w2"]

    # Without logprobs, none are asked for or returned.
    plain = alice_sdk.chat.completions.create(model="light", messages=user(unique("plain")))
    assert plain.choices[0].logprobs is None


def test_an_answer_is_only_reused_when_every_output_parameter_matches(alice_sdk, fake_ollama):
    marker = unique("cache by parameters")

    def ask(**params):
        response = alice_sdk.chat.completions.with_raw_response.create(
            model="light", messages=user(marker), **params
        )
        return response.headers["X-Cache"], response.parse()

    assert ask(seed=1)[0] == "MISS"
    assert ask(seed=1)[0] == "HIT"
    assert ask(seed=2)[0] == "MISS"
    assert ask(seed=1, stop=["w5"])[0] == "MISS"
    assert ask(seed=1, response_format={"type": "json_object"})[0] == "MISS"
    assert ask(seed=1, tools=[WEATHER_TOOL])[0] == "MISS"
    # Fields that change nothing keep the answer shared.
    cached, completion = ask(seed=1, user="someone else", metadata={"a": "b"})
    assert cached == "HIT"
    assert completion.choices[0].message.content == DEFAULT_REPLY
    assert len(requests_mentioning(fake_ollama, marker)) == 5


# --- 2. client tools -----------------------------------------------------------------------


def test_a_tool_call_round_trip(app, alice_http, alice_sdk, fake_ollama):
    marker = unique("weather")
    messages = weather_question(marker)

    first = alice_sdk.chat.completions.create(
        model="light", messages=messages, tools=[WEATHER_TOOL, TIME_TOOL]
    )

    sent = the_model_request(fake_ollama, marker)
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather", "get_time"]
    assert sent["tools"][0]["function"]["parameters"] == WEATHER_TOOL["function"]["parameters"]
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.id
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "days": 3}
    job = alice_http.job(job_id_of(first.id))
    assert (job["status"], job["finish_reason"]) == ("succeeded", "tool_calls")
    assert job["tool_calls"] == [call.model_dump()]
    assert first.usage.completion_tokens > 0

    # The client runs the tool and sends its result: the model answers from it.
    followed = [
        *messages,
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 degrees"},
    ]
    second = alice_sdk.chat.completions.create(
        model="light", messages=followed, tools=[WEATHER_TOOL, TIME_TOOL]
    )

    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == "Based on the tool result: Sunny, 21 degrees"
    sent = requests_mentioning(fake_ollama, "Sunny, 21 degrees")[-1]
    assistant, result = sent["messages"][-2:]
    assert assistant["role"] == "assistant"
    assert assistant["tool_calls"][0]["function"]["name"] == "get_weather"
    assert assistant["tool_calls"][0]["function"]["arguments"] == {"city": "Paris", "days": 3}
    assert (result["role"], result["content"]) == ("tool", "Sunny, 21 degrees")


def test_tool_calls_stream_as_openai_tool_call_deltas(alice_sdk, fake_ollama):
    marker = unique("streamed weather")

    stream = alice_sdk.chat.completions.create(
        model="light", messages=weather_question(marker), tools=[WEATHER_TOOL], stream=True
    )
    chunks = list(stream)

    calls: dict[int, dict] = {}
    for chunk in chunks:
        for delta in chunk.choices[0].delta.tool_calls or ():
            call = calls.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
            call["id"] = delta.id or call["id"]
            call["name"] += delta.function.name or ""
            call["arguments"] += delta.function.arguments or ""
    assert list(calls) == [0]
    assert calls[0]["id"] and calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris", "days": 3}
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason]
    assert finishes == ["tool_calls"]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == ""


def test_several_tool_calls_in_one_answer(alice_sdk, fake_ollama):
    fake_ollama.parallel_tool_calls_for_all = True
    marker = unique('Use get_weather and get_time for "Oslo"')

    completion = alice_sdk.chat.completions.create(
        model="light", messages=user(marker), tools=[WEATHER_TOOL, TIME_TOOL]
    )

    calls = completion.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert len({c.id for c in calls}) == 2


@pytest.mark.parametrize(
    ("tool_choice", "offered", "called"),
    [
        ("none", None, None),
        ("auto", ["get_weather", "get_time"], "get_weather"),
        ("required", ["get_weather", "get_time"], "get_weather"),
        ({"type": "function", "function": {"name": "get_time"}}, ["get_time"], None),
    ],
    ids=["none", "auto", "required", "named"],
)
def test_tool_choice_decides_what_the_model_is_offered(
    alice_sdk, fake_ollama, tool_choice, offered, called
):
    marker = unique("tool choice")

    completion = alice_sdk.chat.completions.create(
        model="light",
        messages=weather_question(marker),
        tools=[WEATHER_TOOL, TIME_TOOL],
        tool_choice=tool_choice,
    )

    sent = the_model_request(fake_ollama, marker)
    assert [t["function"]["name"] for t in sent.get("tools") or []] == (offered or [])
    calls = completion.choices[0].message.tool_calls
    if called is None:
        assert calls is None
        assert completion.choices[0].finish_reason == "stop"
    else:
        assert [c.function.name for c in calls] == [called]


def test_the_gateways_web_search_is_never_mixed_with_client_tools(
    app, live, alice_key, alice_sdk, fake_ollama
):
    # HEAVY_MODEL has the gateway's search enabled (OPENAI_WEB_SEARCH_MODELS in the tests).
    question = unique("please search the web for cats")
    searched = alice_sdk.chat.completions.create(model=HEAVY_MODEL, messages=user(question))
    assert searched.choices[0].message.tool_calls is None
    assert searched.choices[0].message.content.startswith("Based on the tool result:")
    sent = requests_mentioning(fake_ollama, question)
    assert [t["function"]["name"] for t in sent[0]["tools"]] == ["web_search"]
    assert sent[-1]["messages"][-1]["role"] == "tool"  # run on the worker

    # Not enabled for the light tier: no tool is offered.
    light = unique("please search the web for dogs")
    alice_sdk.chat.completions.create(model="light", messages=user(light))
    assert not the_model_request(fake_ollama, light).get("tools")

    # A client tool of the same name is the client's: returned, never run here.
    client_search = {
        "type": "function",
        "function": {
            "name": "web_search",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        },
    }
    mine = unique("please search the web for birds")
    completion = alice_sdk.chat.completions.create(
        model=HEAVY_MODEL, messages=user(mine), tools=[client_search]
    )
    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.choices[0].message.tool_calls[0].function.name == "web_search"
    assert len(requests_mentioning(fake_ollama, mine)) == 1  # nothing ran on the worker


def test_a_cached_tool_call_answer_replays_its_tool_calls(alice_sdk, fake_ollama):
    marker = unique("cached weather")

    def ask(stream: bool = False):
        return alice_sdk.chat.completions.with_raw_response.create(
            model="light", messages=weather_question(marker), tools=[WEATHER_TOOL], stream=stream
        )

    first = ask()
    again = ask()
    assert (first.headers["X-Cache"], again.headers["X-Cache"]) == ("MISS", "HIT")
    calls = [c.model_dump() for c in first.parse().choices[0].message.tool_calls]
    assert [c.model_dump() for c in again.parse().choices[0].message.tool_calls] == calls
    streamed = list(ask(stream=True).parse())
    deltas = [d for c in streamed for d in c.choices[0].delta.tool_calls or ()]
    assert [(d.id, d.function.name, d.function.arguments) for d in deltas] == [
        (c["id"], c["function"]["name"], c["function"]["arguments"]) for c in calls
    ]
    assert len(requests_mentioning(fake_ollama, marker)) == 1


# --- 3. messages ---------------------------------------------------------------------------


def test_a_developer_message_is_the_system_message(app, alice_sdk, fake_ollama):
    marker = unique("developer")

    alice_sdk.chat.completions.create(
        model="light",
        messages=[{"role": "developer", "content": "Answer in French."}, *user(marker)],
    )

    sent = the_model_request(fake_ollama, marker)["messages"]
    assert [(m["role"], m["content"]) for m in sent] == [
        ("system", "Answer in French."),
        ("user", marker),
    ]


def test_images_reach_a_vision_model_and_auto_routes_to_one(alice_sdk, fake_ollama):
    fake_ollama.vision_models = {HEAVY_MODEL}
    marker = unique("what is in this picture?")
    content = [
        {"type": "text", "text": marker},
        {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
    ]

    completion = alice_sdk.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": content}]
    )

    assert completion.model == HEAVY_MODEL  # the light tier's model takes no images
    assert completion.choices[0].message.content == "I see 1 image(s)."
    sent = the_model_request(fake_ollama, marker)
    assert sent["model"] == HEAVY_MODEL
    assert sent["messages"][-1]["images"] == [PNG.split(",", 1)[1]]
    assert sent["messages"][-1]["content"].strip() == marker


def test_images_for_a_model_without_vision_are_400_and_never_sent(
    live, alice_key, alice_http, fake_ollama
):
    marker = unique("describe")
    body = {
        "model": "light",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": marker},
                    {"type": "image_url", "image_url": {"url": PNG}},
                ],
            }
        ],
    }

    error = openai_error(raw_post(live, alice_key["key"], body), 400)
    assert error["param"] == "messages"
    assert "does not take images" in error["message"]

    # An image by URL: Ollama takes images inline only, and the gateway fetches nothing.
    body["model"] = HEAVY_MODEL
    body["messages"][0]["content"][1]["image_url"]["url"] = "http://127.0.0.1:9/cat.png"
    error = openai_error(raw_post(live, alice_key["key"], body), 400)
    assert error["param"] == "messages.0.content"
    assert "data:image" in error["message"]
    assert requests_mentioning(fake_ollama, marker) == []
    assert alice_http.get("/api/jobs/").json()["total"] == 0


def test_fields_openai_defines_are_accepted_and_unknown_ones_refused(live, alice_key):
    marker = unique("ignored fields")
    body = {
        "model": "light",
        "messages": user(marker),
        "store": True,
        "metadata": {"k": "v"},
        "service_tier": "default",
        "prompt_cache_key": "abc",
        "safety_identifier": "user-1",
        "prediction": {"type": "content", "content": "w0"},
        "parallel_tool_calls": True,
        "stream_options": None,
    }
    response = raw_post(live, alice_key["key"], body)
    assert response.status_code == 200, response.text

    error = openai_error(raw_post(live, alice_key["key"], {**body, "temprature": 1}), 400)
    assert (error["param"], error["code"]) == ("temprature", "validation_error")


def test_the_unsupported_are_refused_with_the_param_named(live, alice_key):
    cases = {
        "n": {"n": 3},
        "audio": {"audio": {"voice": "alloy", "format": "wav"}},
        "web_search_options": {"web_search_options": {}},
        "functions": {"functions": [{"name": "f", "parameters": {}}]},
    }
    for param, fields in cases.items():
        body = {"model": "light", "messages": user("hi"), **fields}
        error = openai_error(raw_post(live, alice_key["key"], body), 400)
        assert (error["type"], error["param"]) == ("invalid_request_error", param), error


def test_a_model_server_error_about_the_tools_is_a_502_not_a_hang(
    alice_sdk, fake_ollama, alice_http
):
    fake_ollama.mode = "error"
    fake_ollama.error_status = 400
    fake_ollama.error_message = "registry.ollama.ai/library/llama3.2 does not support tools"

    with pytest.raises(openai.APIStatusError) as caught:
        alice_sdk.chat.completions.create(
            model="light", messages=weather_question(unique("no tools")), tools=[WEATHER_TOOL]
        )

    assert caught.value.status_code == 502
    assert "does not support tools" in caught.value.message


def test_raw_wire_format_of_a_tool_call(live, alice_key, fake_ollama):
    marker = unique("raw weather")
    body = {"model": "light", "messages": weather_question(marker), "tools": [WEATHER_TOOL]}

    response = requests.post(
        live.url + "/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {alice_key['key']}"},
        timeout=30,
    )

    assert response.status_code == 200, response.text
    message = response.json()["choices"][0]["message"]
    assert set(message) == {"role", "content", "refusal", "tool_calls"}
    assert message["content"] is None
    [call] = message["tool_calls"]
    assert set(call) == {"id", "type", "function"}
    assert set(call["function"]) == {"name", "arguments"}
    assert isinstance(call["function"]["arguments"], str)


# --- 4. legacy completions -----------------------------------------------------------------


def test_a_legacy_completion_is_the_chat_models_answer_to_the_prompt(app, alice_sdk, fake_ollama):
    marker = unique("complete this")

    completion = alice_sdk.completions.create(model="light", prompt=marker, stop=[" w9"])

    assert completion.object == "text_completion"
    assert completion.id.startswith("cmpl-")
    assert completion.choices[0].text == "w0 w1 w2 w3 w4 w5 w6 w7 w8"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens == 9
    sent = the_model_request(fake_ollama, marker)
    assert sent["messages"] == [
        {"role": "system", "content": app.config["SYSTEM_PROMPT"]},
        {"role": "user", "content": marker},
    ]
    assert sent["options"]["num_predict"] == 16  # OpenAI's default for completions
    assert not sent.get("tools")  # never the gateway's web search


def test_a_legacy_completion_streams_with_logprobs(alice_sdk, fake_ollama):
    marker = unique("stream this")

    chunks = list(
        alice_sdk.completions.create(
            model="light",
            prompt=marker,
            max_tokens=3,
            logprobs=2,
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    text_chunks = [c for c in chunks if c.choices]
    assert "".join(c.choices[0].text for c in text_chunks) == "w0 w1 w2"
    tokens = [t for c in text_chunks if c.choices[0].logprobs for t in c.choices[0].logprobs.tokens]
    assert tokens == ["w0", " w1", " w2"]
    offsets = [
        o for c in text_chunks if c.choices[0].logprobs for o in c.choices[0].logprobs.text_offset
    ]
    assert offsets == [0, 2, 5]
    assert len(text_chunks[0].choices[0].logprobs.top_logprobs[0]) == 2
    assert [c.choices[0].finish_reason for c in text_chunks][-1] == "length"
    assert chunks[-1].usage.completion_tokens == 3
    assert the_model_request(fake_ollama, marker)["top_logprobs"] == 2


def test_legacy_completion_options_the_gateway_cannot_honour_are_refused(live, alice_key):
    cases = {
        "echo": {"echo": True},
        "suffix": {"suffix": "end"},
        "best_of": {"best_of": 2},
        "n": {"n": 2},
        "prompt": {"prompt": ["one", "two"]},
    }
    for param, fields in cases.items():
        response = requests.post(
            live.url + "/v1/completions",
            json={"model": "light", "prompt": "hi", **fields},
            headers={"Authorization": f"Bearer {alice_key['key']}"},
            timeout=30,
        )
        error = openai_error(response, 400)
        assert error["param"] == param, error
