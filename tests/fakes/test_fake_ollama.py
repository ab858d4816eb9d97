"""The fake Ollama server, driven by the real clients the workers use.

Everything goes through real sockets: `langchain_ollama.ChatOllama` (which uses the `ollama`
client over httpx), the bare `ollama.Client`, or httpx itself when the bytes on the wire matter.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import httpx
import ollama
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langchain_ollama import ChatOllama

# The gateway's providers module patches the ollama client to send nested tool schemas
# whole (the client's own Tool model drops them); the fake is tested as the gateway uses it,
# whatever other test module imported it first.
import worker.providers  # noqa: F401
from tests.fakes.ollama import FakeOllama, embedding_for, numbered_words, schema_example, tokenize

ROOT = Path(__file__).resolve().parents[2]
MODEL = "llama3.2:3b"
EXPECTED = numbered_words(20)
RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
FINAL_FIELDS = {
    "model",
    "created_at",
    "message",
    "done",
    "done_reason",
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
}
TOOL_TEXT = "Seoul weather today: sunny, 21 degrees, light wind from the west, no rain expected."


@tool
def web_search(query: str) -> str:
    """Search the web for up-to-date information."""
    return TOOL_TEXT


WEB_SEARCH_SCHEMA = {
    "type": "function",
    "function": {
        "name": "web_search",
        "description": "Search the web.",
        "parameters": {
            "type": "object",
            "required": ["query"],
            "properties": {"query": {"type": "string", "description": "what to look for"}},
        },
    },
}


@pytest.fixture(scope="module")
def server() -> FakeOllama:
    with FakeOllama() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeOllama) -> FakeOllama:
    server.reset()
    yield server
    server.reset()


def chat_model(fake: FakeOllama, model: str = MODEL, **kwargs) -> ChatOllama:
    return ChatOllama(model=model, base_url=fake.url, **kwargs)


def ndjson_lines(response: httpx.Response) -> list[dict]:
    return [json.loads(line) for line in response.iter_lines() if line]


# ---- plain chat through ChatOllama -------------------------------------------------------------


def test_invoke_returns_the_numbered_words_with_usage(fake: FakeOllama) -> None:
    answer = chat_model(fake).invoke("hello there, fake model")

    assert answer.content == EXPECTED
    assert answer.usage_metadata == {"input_tokens": 4, "output_tokens": 20, "total_tokens": 24}
    assert answer.response_metadata["done_reason"] == "stop"
    assert answer.response_metadata["model_name"] == MODEL
    sent = fake.requests[-1]
    assert sent["model"] == MODEL
    assert sent["stream"] is True  # ChatOllama streams even for invoke
    assert sent["messages"] == [{"role": "user", "content": "hello there, fake model"}]
    assert not sent.get("tools")


def test_stream_yields_tokens_in_order_and_usage_on_the_last_chunk(fake: FakeOllama) -> None:
    chunks = list(chat_model(fake).stream("hi"))

    texts = [chunk.content for chunk in chunks if chunk.content]
    assert texts == tokenize(EXPECTED) == ["w0"] + [f" w{i}" for i in range(1, 20)]
    assert "".join(texts) == EXPECTED
    # Usage rides on the chunk made from Ollama's final "done" object (langchain-core then
    # adds an empty closing chunk of its own).
    with_usage = [chunk for chunk in chunks if chunk.usage_metadata]
    assert len(with_usage) == 1
    assert with_usage[0].usage_metadata == {
        "input_tokens": 1,
        "output_tokens": 20,
        "total_tokens": 21,
    }
    assert with_usage[0].response_metadata["done_reason"] == "stop"
    assert chunks.index(with_usage[0]) >= len(chunks) - 2
    merged = sum(chunks[1:], chunks[0])
    assert merged.content == EXPECTED and merged.usage_metadata["output_tokens"] == 20


def test_history_and_options_reach_the_server(fake: FakeOllama) -> None:
    llm = chat_model(fake, temperature=0.3, num_ctx=4096)
    history = [
        SystemMessage("You are terse."),
        HumanMessage("first question"),
        AIMessage("first answer"),
        HumanMessage("second question please"),
    ]
    answer = llm.invoke(history)

    assert answer.usage_metadata["input_tokens"] == 10  # words in all the messages
    sent = fake.requests[-1]
    assert [(m["role"], m["content"]) for m in sent["messages"]] == [
        ("system", "You are terse."),
        ("user", "first question"),
        ("assistant", "first answer"),
        ("user", "second question please"),
    ]
    assert sent["options"] == {"temperature": 0.3, "num_ctx": 4096}


def test_num_predict_cuts_the_reply_with_done_reason_length(fake: FakeOllama) -> None:
    answer = chat_model(fake, num_predict=5).invoke("count")

    assert answer.content == "w0 w1 w2 w3 w4"
    assert answer.response_metadata["done_reason"] == "length"
    assert answer.usage_metadata["output_tokens"] == 5
    assert fake.requests[-1]["options"]["num_predict"] == 5

    fake.reply_tokens = 3  # a cap above the reply length changes nothing
    assert chat_model(fake, num_predict=5).invoke("count").response_metadata["done_reason"] == (
        "stop"
    )


def test_stop_sequences_end_the_reply_early(fake: FakeOllama) -> None:
    answer = chat_model(fake, stop=["w3"]).invoke("count")

    assert answer.content == "w0 w1 w2 "
    assert answer.response_metadata["done_reason"] == "stop"


def test_fixed_reply_and_reply_fn(fake: FakeOllama) -> None:
    fake.reply = "안녕하세요, 세계!  Hello\nworld "
    chunks = [c.content for c in chat_model(fake).stream("hi") if c.content]
    assert chunks == ["안녕하세요,", " 세계!", "  Hello", "\nworld", " "]
    assert "".join(chunks) == fake.reply

    fake.reply_fn = lambda request: "echo: " + request["messages"][-1]["content"]
    assert chat_model(fake).invoke("ping pong").content == "echo: ping pong"

    fake.reset()
    fake.reply_tokens = 3
    assert chat_model(fake).invoke("x").content == "w0 w1 w2"


def test_async_client_path(fake: FakeOllama) -> None:
    llm = chat_model(fake)

    async def run() -> tuple[str, list[str]]:
        answer = await llm.ainvoke("hi")
        chunks = [chunk.content async for chunk in llm.astream("hi") if chunk.content]
        return answer.content, chunks

    text, chunks = asyncio.run(run())
    assert text == EXPECTED
    assert "".join(chunks) == EXPECTED and len(chunks) == 20


# ---- tool calls -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "question", ["Please search the weather in Seoul", "SEARCH: seoul", "서울 날씨 검색해줘"]
)
def test_bound_web_search_tool_is_called_with_the_user_text(
    fake: FakeOllama, question: str
) -> None:
    answer = chat_model(fake).bind_tools([web_search]).invoke(question)

    assert answer.content == ""
    assert len(answer.tool_calls) == 1
    assert answer.tool_calls[0]["name"] == "web_search"
    assert answer.tool_calls[0]["args"] == {"query": question}
    sent_tools = fake.requests[-1]["tools"]
    assert [t["function"]["name"] for t in sent_tools] == ["web_search"]


def test_tool_result_reaches_the_model(fake: FakeOllama) -> None:
    llm = chat_model(fake).bind_tools([web_search])
    question = HumanMessage("search the weather in Seoul")
    call = llm.invoke([question])
    result = ToolMessage(TOOL_TEXT, tool_call_id=call.tool_calls[0]["id"])

    answer = llm.invoke([question, call, result])

    assert TOOL_TEXT[:50] in answer.content
    assert not answer.tool_calls
    sent = fake.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[1]["tool_calls"][0]["function"] == {
        "name": "web_search",
        "arguments": {"query": "search the weather in Seoul"},
    }
    assert sent[2]["content"] == TOOL_TEXT


def test_no_tool_call_without_trigger_tool_or_when_disabled(fake: FakeOllama) -> None:
    with_tools = chat_model(fake).bind_tools([web_search])
    assert with_tools.invoke("hello there").content == EXPECTED  # no trigger word
    assert chat_model(fake).invoke("search for cats").content == EXPECTED  # no tool offered
    assert fake.requests[-1]["tools"] == []

    fake.tool_trigger = None
    answer = with_tools.invoke("search for cats")
    assert answer.content == EXPECTED and not answer.tool_calls

    fake.tool_trigger = r"(?i)\bweather\b"
    assert with_tools.invoke("the WEATHER please").tool_calls[0]["name"] == "web_search"


def test_tool_call_on_the_wire_streaming_and_not(fake: FakeOllama) -> None:
    client = ollama.Client(host=fake.url)
    messages = [{"role": "user", "content": "search cats"}]

    parts = list(client.chat(MODEL, messages, tools=[WEB_SEARCH_SCHEMA], stream=True))
    # Like Ollama: the call comes in its own chunk, then the usual final chunk.
    assert [p.done for p in parts] == [False, True]
    call = parts[0].message.tool_calls[0].function
    assert (call.name, dict(call.arguments)) == ("web_search", {"query": "search cats"})
    assert parts[0].message.content == ""
    assert parts[1].done_reason == "stop" and parts[1].eval_count > 0

    whole = client.chat(MODEL, messages, tools=[WEB_SEARCH_SCHEMA], stream=False)
    assert whole.done is True and whole.done_reason == "stop"
    assert whole.message.content == ""
    assert whole.message.tool_calls[0].function.arguments == {"query": "search cats"}

    streamed = chat_model(fake).bind_tools([web_search]).stream("search cats")
    calls = [tc for chunk in streamed for tc in chunk.tool_calls]
    assert [(tc["name"], tc["args"]) for tc in calls] == [("web_search", {"query": "search cats"})]


# ---- the bare ollama client and the other endpoints -------------------------------------------


def test_ollama_client_list_show_and_stream(fake: FakeOllama) -> None:
    client = ollama.Client(host=fake.url)

    listed = client.list()  # the chat models, then the embedding models
    assert [m.model for m in listed.models] == ["llama3.2:3b", "qwen2.5:7b", "nomic-embed-text"]
    assert listed.models[0].details.format == "gguf"
    assert listed.models[0].details.family == "llama"
    assert listed.models[1].details.parameter_size == "7.6B"

    shown = client.show("qwen2.5:7b")
    assert shown.details.family == "qwen2"
    assert "tools" in shown.capabilities
    with pytest.raises(ollama.ResponseError) as info:
        client.show("missing:1b")
    assert info.value.status_code == 404

    parts = list(client.chat("qwen2.5:7b", [{"role": "user", "content": "hi"}], stream=True))
    assert "".join(p.message.content for p in parts) == EXPECTED
    assert [p.done for p in parts] == [False] * 20 + [True]
    assert parts[-1].eval_count == 20 and parts[-1].prompt_eval_count == 1
    assert parts[-1].model == "qwen2.5:7b"

    whole = client.chat("qwen2.5:7b", [{"role": "user", "content": "hi"}], stream=False)
    assert whole.message.content == EXPECTED and whole.done_reason == "stop"

    assert httpx.get(fake.url + "/").text == "Ollama is running"
    assert httpx.get(fake.url + "/api/version").json() == {"version": "0.6.0"}
    assert [m.model for m in client.ps().models] == ["llama3.2:3b", "qwen2.5:7b"]


def test_wire_format_of_a_stream(fake: FakeOllama) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "one two three"}]}
    with httpx.stream("POST", fake.url + "/api/chat", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-ndjson"
        assert response.headers["transfer-encoding"] == "chunked"
        objects = ndjson_lines(response)

    *tokens, final = objects
    assert len(tokens) == 20
    for obj in tokens:
        assert set(obj) == {"model", "created_at", "message", "done"}
        assert obj["done"] is False and obj["model"] == MODEL
        assert obj["message"]["role"] == "assistant"
        assert RFC3339_Z.match(obj["created_at"])
    assert set(final) == FINAL_FIELDS
    assert final["message"] == {"role": "assistant", "content": ""}
    assert final["done"] is True and final["done_reason"] == "stop"
    assert final["eval_count"] == 20 and final["prompt_eval_count"] == 3
    durations = [final[k] for k in FINAL_FIELDS if k.endswith("duration")]
    assert all(isinstance(d, int) and d > 0 for d in durations)
    assert final["total_duration"] >= final["eval_duration"]


def test_wire_format_without_stream_and_edge_requests(fake: FakeOllama) -> None:
    url = fake.url + "/api/chat"
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "stream": False}
    response = httpx.post(url, json=body)
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert set(response.json()) == FINAL_FIELDS
    assert response.json()["message"] == {"role": "assistant", "content": EXPECTED}

    loaded = httpx.post(url, json={"model": MODEL, "messages": []}).json()
    assert loaded["done"] is True and loaded["done_reason"] == "load"

    missing = httpx.post(url, json={"messages": []})
    assert (missing.status_code, missing.json()) == (400, {"error": "model is required"})
    assert httpx.post(url, content=b"{nope").status_code == 400
    assert httpx.get(fake.url + "/api/nothing").status_code == 404


def test_unknown_model_is_404_like_ollama(fake: FakeOllama) -> None:
    response = httpx.post(
        fake.url + "/api/chat", json={"model": "nope:1b", "messages": [], "stream": False}
    )
    assert response.status_code == 404
    assert response.json() == {"error": 'model "nope:1b" not found, try pulling it first'}

    with pytest.raises(ollama.ResponseError) as info:
        chat_model(fake, model="llama3.2").invoke("hi")  # means llama3.2:latest
    assert info.value.status_code == 404
    assert info.value.error == 'model "llama3.2" not found, try pulling it first'
    assert fake.requests[-1]["model"] == "llama3.2"  # recorded all the same


# ---- faults -----------------------------------------------------------------------------------


def test_error_mode(fake: FakeOllama) -> None:
    fake.mode = "error"
    with pytest.raises(ollama.ResponseError) as info:
        chat_model(fake).invoke("hi")
    assert info.value.status_code == 500
    assert info.value.error == fake.error_message

    fake.mode = "error_mid_stream"
    received: list[str] = []
    with pytest.raises(ollama.ResponseError, match="runner process"):
        for chunk in chat_model(fake).stream("hi"):
            received.append(chunk.content)
    assert received == ["w0", " w1"]


def test_hang_mode_times_out_the_client(fake: FakeOllama) -> None:
    fake.mode = "hang"
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        chat_model(fake, client_kwargs={"timeout": 1}).invoke("hi")
    assert time.monotonic() - started < 5
    assert fake.requests[-1]["messages"][-1]["content"] == "hi"

    with pytest.raises(httpx.ReadTimeout):
        ollama.Client(host=fake.url, timeout=1).chat(MODEL, [{"role": "user", "content": "x"}])


def test_hang_mid_stream_sends_hang_after_tokens_then_stalls(fake: FakeOllama) -> None:
    fake.mode = "hang_mid_stream"
    fake.hang_after = 3
    received: list[str] = []
    with pytest.raises(httpx.ReadTimeout):
        for chunk in chat_model(fake, client_kwargs={"timeout": 1}).stream("hi"):
            received.append(chunk.content)
    assert received == ["w0", " w1", " w2"]


def test_malformed_and_disconnect_make_the_client_raise(fake: FakeOllama) -> None:
    fake.mode = "malformed"
    received: list[str] = []
    with pytest.raises(json.JSONDecodeError):
        for chunk in chat_model(fake).stream("hi"):
            received.append(chunk.content)
    assert received == ["w0", " w1"]

    fake.mode = "disconnect_mid_stream"
    received.clear()
    with pytest.raises(httpx.RemoteProtocolError):
        for chunk in chat_model(fake).stream("hi"):
            received.append(chunk.content)
    assert received == ["w0", " w1"]

    with pytest.raises(httpx.RemoteProtocolError):
        ollama.Client(host=fake.url).chat(MODEL, [{"role": "user", "content": "x"}])

    fake.mode = "ok"  # the server itself is fine afterwards
    assert chat_model(fake).invoke("hi").content == EXPECTED


def test_unknown_mode_is_refused(fake: FakeOllama) -> None:
    with pytest.raises(ValueError, match="unknown mode"):
        fake.mode = "sideways"


def test_stop_ends_hanging_requests_promptly_and_down_refuses_connections() -> None:
    fake = FakeOllama().start()
    outcomes: list[BaseException] = []

    def hang_forever() -> None:
        try:
            ollama.Client(host=fake.url).chat(MODEL, [{"role": "user", "content": "x"}])
        except BaseException as exc:
            outcomes.append(exc)

    fake.mode = "hang"
    waiters = [threading.Thread(target=hang_forever) for _ in range(3)]
    for thread in waiters:
        thread.start()
    assert fake.wait_for_requests(3)
    fake.mode = "hang_mid_stream"
    fake.hang_after = 1
    streamer = threading.Thread(target=lambda: outcomes.extend(_stream_until_error(fake)))
    streamer.start()
    assert fake.wait_for_requests(4)
    time.sleep(0.2)  # let the first token arrive

    started = time.monotonic()
    fake.mode = "down"  # the same as stop()
    assert time.monotonic() - started < 1.5
    for thread in [*waiters, streamer]:
        thread.join(timeout=3)
        assert not thread.is_alive()
    assert len(outcomes) == 4
    assert all(isinstance(exc, httpx.TransportError) for exc in outcomes)

    with pytest.raises(ConnectionError):
        ollama.Client(host=fake.url).list()

    url = fake.url
    fake.start()  # back up, on the same port
    try:
        assert fake.url == url and fake.mode == "ok"
        assert ChatOllama(model=MODEL, base_url=url).invoke("hi").content == EXPECTED
    finally:
        fake.stop()


def _stream_until_error(fake: FakeOllama) -> list[BaseException]:
    try:
        for _ in ollama.Client(host=fake.url).chat(
            MODEL, [{"role": "user", "content": "x"}], stream=True
        ):
            pass
    except BaseException as exc:
        return [exc]
    return []


# ---- timing and concurrency -------------------------------------------------------------------


def test_stream_is_incremental(fake: FakeOllama) -> None:
    fake.token_delay = 0.2
    fake.reply_tokens = 5
    started = time.monotonic()
    arrivals: list[float] = []
    in_flight_at_first: int | None = None
    for chunk in chat_model(fake).stream("hi"):
        if chunk.content:
            arrivals.append(time.monotonic() - started)
            if in_flight_at_first is None:
                in_flight_at_first = fake.in_flight
    total = time.monotonic() - started

    assert len(arrivals) == 5
    assert in_flight_at_first == 1  # the server was still generating the rest
    assert arrivals[0] < total / 2
    assert arrivals == sorted(arrivals)
    assert arrivals[-1] - arrivals[0] > total / 2  # spread out, not delivered in one burst


def test_first_token_delay(fake: FakeOllama) -> None:
    fake.first_token_delay = 0.4
    fake.reply_tokens = 10
    started = time.monotonic()
    arrivals = [
        time.monotonic() - started for chunk in chat_model(fake).stream("hi") if chunk.content
    ]
    assert arrivals[0] >= 0.35
    assert arrivals[-1] - arrivals[0] < arrivals[0]


def test_fifty_concurrent_chat_streams(fake: FakeOllama) -> None:
    fake.token_delay = 0.02

    def one(index: int) -> str:
        llm = chat_model(fake, model="qwen2.5:7b" if index % 2 else MODEL)
        return "".join(chunk.content for chunk in llm.stream(f"request {index}"))

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=50) as pool:
        texts = list(pool.map(one, range(50)))
    elapsed = time.monotonic() - started

    assert texts == [EXPECTED] * 50
    assert len(fake.requests) == 50
    assert fake.max_in_flight >= 10
    assert elapsed < 50 * 20 * 0.02 / 2  # well below one-after-another (20 s)


def test_hundred_concurrent_raw_streams(fake: FakeOllama) -> None:
    fake.token_delay = 0.01

    def one(index: int) -> str:
        with ollama.Client(host=fake.url) as client:
            parts = client.chat(MODEL, [{"role": "user", "content": str(index)}], stream=True)
            return "".join(part.message.content for part in parts)

    with ThreadPoolExecutor(max_workers=100) as pool:
        texts = list(pool.map(one, range(100)))
    assert texts == [EXPECTED] * 100
    assert fake.max_in_flight >= 10


def test_reset_restores_defaults(fake: FakeOllama) -> None:
    chat_model(fake).invoke("hi")
    fake.mode = "error"
    fake.token_delay = 1.0
    fake.reply = "x"
    fake.tool_trigger = None

    fake.reset()

    assert fake.requests == []
    assert (fake.mode, fake.token_delay, fake.reply, fake.reply_tokens) == ("ok", 0.0, None, 20)
    assert fake.tool_trigger is not None
    assert chat_model(fake).invoke("hi").content == EXPECTED


# ---- command line -----------------------------------------------------------------------------


def test_cli_serves_until_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.ollama", "--port", "0", "--reply-tokens", "3"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("FakeOllama listening on http://127.0.0.1:"), line
        url = line.split()[-1]

        tags = httpx.get(url + "/api/tags", timeout=5).json()
        assert [m["name"] for m in tags["models"]] == [
            "llama3.2:3b",
            "qwen2.5:7b",
            "nomic-embed-text",
        ]
        assert ChatOllama(model=MODEL, base_url=url).invoke("hi").content == "w0 w1 w2"

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# ---- client tools -----------------------------------------------------------------------------


def function_tool(name: str, properties: dict, required: list[str] | None = None) -> dict:
    """An OpenAI/Ollama function tool offered by the client."""
    parameters = {"type": "object", "properties": properties}
    if required is not None:
        parameters["required"] = required
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


WEATHER_TOOL = function_tool(
    "get_weather",
    {
        "units": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer"},
        "city": {"type": "string"},
        "detailed": {"type": "boolean"},
        "hours": {"type": "array", "items": {"type": "number"}},
        "where": {"type": "object", "properties": {"country": {"type": "string"}}},
    },
    required=["city", "days"],
)
TIME_TOOL = function_tool("get_time", {"zone": {"type": "string"}}, required=["zone"])
NO_PARAMETERS_TOOL = {"type": "function", "function": {"name": "ping"}}


def test_a_client_tool_named_by_the_user_is_called_with_schema_arguments(
    fake: FakeOllama,
) -> None:
    client = ollama.Client(host=fake.url)
    messages = [{"role": "user", "content": 'Use get_weather for "Seoul" over 3 days'}]
    expected = {  # required properties first, then the others in schema order
        "city": "Seoul",
        "days": 3,
        "units": "celsius",
        "detailed": True,
        "hours": [3],
        "where": {"country": "Seoul"},  # nested properties arrive (see the import above)
    }

    tools = [WEB_SEARCH_SCHEMA, WEATHER_TOOL]
    parts = list(client.chat(MODEL, messages, tools=tools, stream=True))
    assert [p.done for p in parts] == [False, True]
    assert parts[0].message.content == "" and parts[1].done_reason == "stop"
    call = parts[0].message.tool_calls[0].function
    assert call.name == "get_weather"
    assert list(call.arguments.items()) == list(expected.items())

    whole = client.chat(MODEL, messages, tools=[WEATHER_TOOL], stream=False)
    assert [(c.function.name, c.function.arguments) for c in whole.message.tool_calls] == [
        ("get_weather", expected)
    ]

    # The raw wire shape: Ollama's message with tool_calls, arguments as an object.
    body = {"model": MODEL, "messages": messages, "tools": [WEATHER_TOOL], "stream": False}
    raw = httpx.post(fake.url + "/api/chat", json=body).json()
    assert raw["message"] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"function": {"name": "get_weather", "arguments": expected}}],
    }
    assert raw["done_reason"] == "stop"


def test_client_tool_defaults_without_numbers_or_quotes(fake: FakeOllama) -> None:
    messages = [{"role": "user", "content": "what does GET_WEATHER say? also ping"}]
    call = ollama.Client(host=fake.url).chat(
        MODEL, messages, tools=[NO_PARAMETERS_TOOL, WEATHER_TOOL], stream=False
    )
    # Case-insensitive; the first tool named wins, whatever the order tools were offered in.
    assert [(c.function.name, c.function.arguments) for c in call.message.tool_calls] == [
        (
            "get_weather",
            {
                "city": "w0",
                "days": 1,
                "units": "celsius",
                "detailed": True,
                "hours": [1],
                "where": {"country": "w0"},
            },
        )
    ]

    messages = [{"role": "user", "content": "ping the server"}]
    call = ollama.Client(host=fake.url).chat(MODEL, messages, tools=[NO_PARAMETERS_TOOL])
    assert [(c.function.name, c.function.arguments) for c in call.message.tool_calls] == [
        ("ping", {})
    ]


def test_client_tool_through_langchain_bind_tools(fake: FakeOllama) -> None:
    @tool
    def convert_currency(amount: float, currency: str) -> str:
        """Convert an amount of money."""
        return "done"

    llm = chat_model(fake).bind_tools([convert_currency])
    answer = llm.invoke('convert_currency 12.5 into "EUR"')

    assert [(tc["name"], tc["args"]) for tc in answer.tool_calls] == [
        ("convert_currency", {"amount": 12.5, "currency": "EUR"})
    ]
    result = ToolMessage("12.5 USD is 11.4 EUR", tool_call_id=answer.tool_calls[0]["id"])
    follow_up = llm.invoke([HumanMessage('convert_currency 12.5 into "EUR"'), answer, result])
    assert follow_up.content == "Based on the tool result: 12.5 USD is 11.4 EUR"
    assert not follow_up.tool_calls


def test_when_client_tools_are_not_called(fake: FakeOllama) -> None:
    client = ollama.Client(host=fake.url)

    def reply(content: str, *tools: dict) -> ollama.ChatResponse:
        messages = [{"role": "user", "content": content}]
        return client.chat(MODEL, messages, tools=list(tools or [WEATHER_TOOL]))

    assert reply("get_weathers is not a tool name").message.content == EXPECTED  # whole words
    assert reply("get_weather please", TIME_TOOL).message.content == EXPECTED  # not offered
    tool_turn = [
        {"role": "user", "content": "get_weather"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {}}}],
        },
        {"role": "tool", "content": "sunny"},
    ]
    answer = client.chat(MODEL, tool_turn, tools=[WEATHER_TOOL], stream=False)
    assert answer.message.content == "Based on the tool result: sunny"

    fake.client_tool_calls = False
    assert reply("get_weather please").message.content == EXPECTED
    fake.client_tool_calls = True

    # List content (OpenAI-style parts): the text parts are read.
    body = {
        "model": MODEL,
        "stream": False,
        "tools": [WEATHER_TOOL],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "get_weather now"}]}],
    }
    raw = httpx.post(fake.url + "/api/chat", json=body).json()
    assert raw["message"]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_a_client_tool_is_called_for_its_topic_when_none_is_named(fake: FakeOllama) -> None:
    client = ollama.Client(host=fake.url)
    customer = function_tool("unicode_customer", {"customer_name": {"type": "string"}})

    def calls(content: str, *tools: dict) -> list[tuple[str, dict]]:
        answer = client.chat(MODEL, [{"role": "user", "content": content}], tools=list(tools))
        return [(c.function.name, c.function.arguments) for c in answer.message.tool_calls or ()]

    # A word of the name (4+ letters, whole word): the first such tool in the order offered.
    assert calls("What is the Weather in Paris?", TIME_TOOL, WEATHER_TOOL)[0][0] == "get_weather"
    assert calls("What time is it?", WEATHER_TOOL, TIME_TOOL) == [("get_time", {"zone": "w0"})]
    # Strings come from a 'single-quoted' phrase too, when there is no double-quoted one.
    assert calls("Create a customer named '你好' now", customer) == [
        ("unicode_customer", {"customer_name": "你好"})
    ]
    # Naming a tool or the search trigger wins; other words, short ones and "tool" do not.
    assert calls("get_time, and the weather", WEATHER_TOOL, TIME_TOOL)[0][0] == "get_time"
    search_docs = function_tool("search_docs", {"q": {"type": "string"}})
    assert calls("search the docs", search_docs, WEB_SEARCH_SCHEMA)[0][0] == "web_search"
    assert calls("Hello! Use the tool.", WEATHER_TOOL, TIME_TOOL, NO_PARAMETERS_TOOL) == []
    assert calls("the get_weathers", WEATHER_TOOL) == []  # inside another word
    fake.client_tool_calls = False
    assert calls("What is the weather?", WEATHER_TOOL) == []


def test_a_named_client_tool_wins_over_the_web_search_trigger(fake: FakeOllama) -> None:
    search_docs = function_tool("search_docs", {"q": {"type": "string"}})
    client = ollama.Client(host=fake.url)
    tools = [WEB_SEARCH_SCHEMA, search_docs]

    named = client.chat(MODEL, [{"role": "user", "content": 'search_docs "api"'}], tools=tools)
    assert named.message.tool_calls[0].function.arguments == {"q": "api"}
    assert named.message.tool_calls[0].function.name == "search_docs"

    triggered = client.chat(MODEL, [{"role": "user", "content": "search cats"}], tools=tools)
    assert [(c.function.name, c.function.arguments) for c in triggered.message.tool_calls] == [
        ("web_search", {"query": "search cats"})
    ]


def test_parallel_client_tool_calls(fake: FakeOllama) -> None:
    client = ollama.Client(host=fake.url)
    tools = [TIME_TOOL, WEATHER_TOOL]

    def called(content: str) -> list[str]:
        messages = [{"role": "user", "content": content}]
        parts = list(client.chat(MODEL, messages, tools=tools, stream=True))
        assert [p.done for p in parts] == [False, True]  # all the calls in one message
        return [c.function.name for c in parts[0].message.tool_calls]

    assert called('Twice: get_weather in "Seoul" and get_time in "KST"') == [
        "get_weather",
        "get_time",
    ]
    assert called("get_time twice") == ["get_time"]  # one name: one call
    assert called("get_weather and get_time") == ["get_weather"]  # no "twice": the first

    fake.parallel_tool_calls_for_all = True
    assert called("get_time, then get_weather") == ["get_time", "get_weather"]

    body = {
        "model": MODEL,
        "stream": False,
        "tools": tools,
        "messages": [{"role": "user", "content": 'get_time "UTC" twice with get_weather 7'}],
    }
    calls = httpx.post(fake.url + "/api/chat", json=body).json()["message"]["tool_calls"]
    assert calls == [
        {"function": {"name": "get_time", "arguments": {"zone": "UTC"}}},
        {
            "function": {
                "name": "get_weather",
                "arguments": {
                    "city": "UTC",
                    "days": 7,
                    "units": "celsius",
                    "detailed": True,
                    "hours": [7],
                    "where": {"country": "UTC"},
                },
            }
        },
    ]


# ---- structured output ------------------------------------------------------------------------


ORDER_SCHEMA = {
    "$defs": {
        "Item": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}},
            "required": ["name", "qty"],
        },
        "Size": {"enum": ["small", "large"]},
    },
    "type": "object",
    "properties": {
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "customer": {"type": "string"},
        "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}, "minItems": 2},
        "size": {"$ref": "#/$defs/Size"},
        "express": {"type": "boolean"},
        "kind": {"const": "order"},
        "total": {"type": "number", "maximum": 2.5},
        "meta": {"type": "object", "properties": {"source": {"type": ["string", "null"]}}},
        "choice": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
    },
    "required": ["customer", "items", "size", "kind"],
}
ORDER_TEXT = 'Order 3 pizzas for "Kim" please'
ORDER = {
    "customer": "Kim",
    "items": [{"name": "Kim", "qty": 3}, {"name": "Kim", "qty": 3}],
    "size": "small",
    "kind": "order",
    "note": "Kim",
    "express": True,
    "total": 2.5,
    "meta": {"source": "Kim"},
    "choice": 3,
}


def compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def test_format_json_wraps_the_reply(fake: FakeOllama) -> None:
    client = ollama.Client(host=fake.url)
    messages = [{"role": "user", "content": "hi"}]

    whole = client.chat(MODEL, messages, format="json", stream=False)
    assert whole.message.content == compact({"answer": EXPECTED})
    parts = [p.message.content for p in client.chat(MODEL, messages, format="json", stream=True)]
    assert [p for p in parts if p] == tokenize(compact({"answer": EXPECTED}))

    fake.reply = "short one"
    assert client.chat(MODEL, messages, format="json").message.content == '{"answer":"short one"}'
    fake.reply_fn = lambda request: "not json at all"  # reply_fn is sent verbatim
    assert client.chat(MODEL, messages, format="json").message.content == "not json at all"


def test_format_json_has_the_keys_the_user_asks_for(fake: FakeOllama) -> None:
    client = ollama.Client(host=fake.url)
    fake.reply = "ha"

    def answer(content: str) -> dict:
        messages = [{"role": "user", "content": content}]
        return json.loads(client.chat(MODEL, messages, format="json").message.content)

    asked = "Return the result as a JSON with 'setup' and 'punchline' keys. Nothing else."
    assert answer(asked) == {"setup": "ha", "punchline": "ha"}
    assert answer('JSON with "a", "b", and "c" fields') == {"a": "ha", "b": "ha", "c": "ha"}
    assert answer("JSON with 'setup' please") == {"answer": "ha"}  # not asked as keys


def test_format_schema_answers_an_instance(fake: FakeOllama) -> None:
    client = ollama.Client(host=fake.url)
    messages = [
        {"role": "user", "content": "an earlier 99"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": ORDER_TEXT},
    ]
    answer = client.chat(MODEL, messages, format=ORDER_SCHEMA, stream=False)
    assert answer.message.content == compact(ORDER)
    assert fake.requests[-1]["format"] == ORDER_SCHEMA

    fake.format_violation = True  # every object lacks its required properties
    broken = json.loads(client.chat(MODEL, messages, format=ORDER_SCHEMA).message.content)
    assert broken == {
        "note": "Kim",
        "express": True,
        "total": 2.5,
        "meta": {"source": "Kim"},
        "choice": 3,
    }


def test_format_schema_through_langchain_structured_output(fake: FakeOllama) -> None:
    from pydantic import BaseModel, Field

    class Pet(BaseModel):
        name: str
        legs: int = Field(ge=0)
        kind: Literal["cat", "dog"]

    class Household(BaseModel):
        owner: str
        pets: list[Pet] = Field(min_length=1)
        nickname: str | None = None

    llm = chat_model(fake).with_structured_output(Household, method="json_schema")
    result = llm.invoke('"Lee" has 4 pets')
    assert result == Household(
        owner="Lee", pets=[Pet(name="Lee", legs=4, kind="cat")], nickname="Lee"
    )
    assert fake.requests[-1]["format"] == Household.model_json_schema()


def test_stop_and_num_predict_cut_structured_replies(fake: FakeOllama) -> None:
    client = ollama.Client(host=fake.url)
    messages = [{"role": "user", "content": "hi"}]

    cut = client.chat(MODEL, messages, format="json", options={"num_predict": 3})
    assert cut.message.content == '{"answer":"w0 w1 w2'
    assert cut.done_reason == "length"
    stopped = client.chat(MODEL, messages, format="json", options={"stop": [" w2"]})
    assert stopped.message.content == '{"answer":"w0 w1'


def test_invalid_format_is_a_400(fake: FakeOllama) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "format": "yaml"}
    response = httpx.post(fake.url + "/api/chat", json=body)
    assert response.status_code == 400
    assert response.json() == {"error": 'invalid format: expected "json" or a valid JSON schema'}
    body["format"] = ""  # what some clients send for "no format"
    assert (
        httpx.post(fake.url + "/api/chat", json=body | {"stream": False}).json()["message"][
            "content"
        ]
        == EXPECTED
    )


def test_schema_example_edge_cases() -> None:
    assert schema_example({"type": "array", "items": {"type": "string"}, "maxItems": 0}) == []
    assert schema_example({"type": "array", "minItems": 3}, "x") == ["w0", "w0", "w0"]
    assert schema_example({"type": "integer", "minimum": 5}, "2") == 5
    assert schema_example({"type": "integer"}, "-7.9 degrees") == -7
    assert schema_example({"type": "number"}, "-7.9 degrees") == -7.9
    assert schema_example({"type": "null"}) is None
    assert schema_example({}) == "w0"
    assert schema_example({"$ref": "#/definitions/missing"}) == "w0"  # anything goes
    merged = {"allOf": [{"properties": {"a": {"type": "boolean"}}, "required": ["a"]}]}
    assert schema_example(merged) == {"a": True}
    tree = {  # a recursive schema still ends
        "type": "object",
        "properties": {"child": {"$ref": "#"}},
        "required": ["child"],
    }
    depth, node = 0, schema_example(tree)
    while isinstance(node, dict):
        depth, node = depth + 1, node["child"]
    assert node is None and 2 < depth < 20


# ---- logprobs ---------------------------------------------------------------------------------


def entry(token: str, index: int, top: int = 0) -> dict:
    logprob = -round(0.01 * (index + 1), 4)
    result = {"token": token, "logprob": logprob, "bytes": list(token.encode())}
    if top:
        names = [token] + [f"alt{k}" for k in range(1, top)]
        result["top_logprobs"] = [
            {"token": name, "logprob": round(logprob - k, 4), "bytes": list(name.encode())}
            for k, name in enumerate(names)
        ]
    return result


def logprobs_request(**fields: object) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": "x"}], **fields}


def streamed(fake: FakeOllama, body: dict) -> list[dict]:
    with httpx.stream("POST", fake.url + "/api/chat", json=body) as response:
        return ndjson_lines(response)


def test_logprobs_on_every_streamed_chunk(fake: FakeOllama) -> None:
    fake.reply = "héllo big world"

    *chunks, final = streamed(fake, logprobs_request(logprobs=True, top_logprobs=2))
    assert [c["logprobs"] for c in chunks] == [
        [entry("héllo", 0, 2)],
        [entry(" big", 1, 2)],
        [entry(" world", 2, 2)],
    ]
    assert chunks[0]["logprobs"][0] == {
        "token": "héllo",
        "logprob": -0.01,
        "bytes": [104, 195, 169, 108, 108, 111],
        "top_logprobs": [
            {"token": "héllo", "logprob": -0.01, "bytes": [104, 195, 169, 108, 108, 111]},
            {"token": "alt1", "logprob": -1.01, "bytes": [97, 108, 116, 49]},
        ],
    }
    assert "logprobs" not in final

    # With no top_logprobs asked for, Ollama leaves the field out (Go's omitempty).
    *chunks, _ = streamed(fake, logprobs_request(logprobs=True))
    assert [c["logprobs"] for c in chunks] == [
        [entry("héllo", 0)],
        [entry(" big", 1)],
        [entry(" world", 2)],
    ]
    # And none at all unless logprobs is true.
    *chunks, _ = streamed(fake, logprobs_request(top_logprobs=3))
    assert not any("logprobs" in c for c in chunks)

    parts = ollama.Client(host=fake.url).chat(
        MODEL, [{"role": "user", "content": "x"}], logprobs=True, top_logprobs=1, stream=True
    )
    assert [
        (lp.token, lp.logprob, len(lp.top_logprobs)) for p in parts for lp in p.logprobs or []
    ] == [
        ("héllo", -0.01, 1),
        (" big", -0.02, 1),
        (" world", -0.03, 1),
    ]


def test_logprobs_without_streaming_and_limits(fake: FakeOllama) -> None:
    fake.reply_tokens = 3
    url = fake.url + "/api/chat"

    whole = httpx.post(url, json=logprobs_request(stream=False, logprobs=True, top_logprobs=1))
    assert whole.json()["logprobs"] == [entry("w0", 0, 1), entry(" w1", 1, 1), entry(" w2", 2, 1)]
    assert whole.json()["message"]["content"] == "w0 w1 w2"
    assert "logprobs" not in httpx.post(url, json=logprobs_request(stream=False)).json()

    # A tool call carries no content, so no logprobs either.
    body = logprobs_request(stream=False, logprobs=True, tools=[WEB_SEARCH_SCHEMA])
    body["messages"][0]["content"] = "search x"
    assert "logprobs" not in httpx.post(url, json=body).json()

    for top in (21, -1, "2"):
        response = httpx.post(url, json=logprobs_request(logprobs=True, top_logprobs=top))
        assert (response.status_code, response.json()) == (
            400,
            {"error": "top_logprobs must be between 0 and 20"},
        )


def test_sampling_options_are_accepted_and_recorded(fake: FakeOllama) -> None:
    options = {
        "seed": 42,
        "temperature": 0.2,
        "top_p": 0.9,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.25,
        "stop": ["w5"],
    }
    answer = ollama.Client(host=fake.url).chat(
        MODEL, [{"role": "user", "content": "x"}], options=options, stream=False
    )
    assert answer.message.content == "w0 w1 w2 w3 w4 "
    assert fake.requests[-1]["options"] == options

    llm = chat_model(fake, seed=7, top_p=0.5)
    assert llm.invoke("x").content == EXPECTED
    assert fake.requests[-1]["options"]["seed"] == 7
    assert fake.requests[-1]["options"]["top_p"] == 0.5


# ---- images -----------------------------------------------------------------------------------


PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake image bytes").decode()


def test_images_for_vision_models(fake: FakeOllama) -> None:
    fake.vision_models = {"llava:7b", MODEL}
    client = ollama.Client(host=fake.url)

    shown = client.show("llava:7b")  # served though not in models
    assert shown.capabilities == ["completion", "tools", "vision"]
    assert "vision" in client.show(MODEL).capabilities
    assert "vision" not in client.show("qwen2.5:7b").capabilities
    assert [m.model for m in client.list().models] == [
        "llama3.2:3b",
        "qwen2.5:7b",
        "llava:7b",
        "nomic-embed-text",
    ]

    messages = [
        {"role": "user", "content": "and these?", "images": [PNG]},
        {"role": "assistant", "content": "I see 1 image(s)."},
        {"role": "user", "content": "what is this?", "images": [PNG, PNG]},
    ]
    assert client.chat("llava:7b", messages).message.content == "I see 2 image(s)."
    assert fake.requests[-1]["messages"][-1]["images"] == [PNG, PNG]
    assert client.chat("llava:7b", messages[:1]).message.content == "I see 1 image(s)."
    no_image = [
        *messages,
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "hi"},
    ]
    assert client.chat(MODEL, no_image).message.content == EXPECTED

    fake.reply = "a cat"
    assert client.chat(MODEL, messages).message.content == "a cat"
    fake.reply = None
    assert client.chat(MODEL, messages, format="json").message.content == (
        '{"answer":"I see 2 image(s)."}'
    )


def test_images_through_langchain(fake: FakeOllama) -> None:
    fake.vision_models = {MODEL}
    message = HumanMessage(
        content=[
            {"type": "text", "text": "describe"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        ]
    )
    assert chat_model(fake).invoke([message]).content == "I see 1 image(s)."
    sent = fake.requests[-1]["messages"][-1]
    assert sent["images"] == [PNG] and sent["content"].strip() == "describe"


def test_images_for_other_models_are_a_400(fake: FakeOllama) -> None:
    messages = [{"role": "user", "content": "what is this?", "images": [PNG]}]
    with pytest.raises(ollama.ResponseError) as info:
        ollama.Client(host=fake.url).chat(MODEL, messages)
    assert (info.value.status_code, info.value.error) == (
        400,
        "this model is missing data required for image input",
    )
    assert fake.requests[-1]["messages"] == messages  # recorded all the same


# ---- embeddings -------------------------------------------------------------------------------


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


def test_embed_like_ollama(fake: FakeOllama) -> None:
    client = ollama.Client(host=fake.url)

    answer = client.embed(
        "nomic-embed-text", input=["hello world", "second text here", "hello world"]
    )
    assert answer.model == "nomic-embed-text"
    first, second, again = answer.embeddings
    assert len(first) == 768 and abs(norm(first) - 1) < 1e-9
    assert first == again != second  # deterministic, and different texts differ
    assert first == embedding_for("hello world")
    assert answer.prompt_eval_count == 2 + 3 + 2
    assert answer.total_duration > 0 and answer.load_duration > 0

    single = client.embed("nomic-embed-text:latest", input="hello world")
    assert single.embeddings == [first]
    assert fake.embed_requests[-1] == {"model": "nomic-embed-text:latest", "input": "hello world"}
    assert len(fake.embed_requests) == 2 and fake.requests == []

    raw = httpx.post(fake.url + "/api/embed", json={"model": "nomic-embed-text", "input": "a b"})
    assert set(raw.json()) == {
        "model",
        "embeddings",
        "total_duration",
        "load_duration",
        "prompt_eval_count",
    }


def test_embed_dimensions_truncate_and_renormalize(fake: FakeOllama) -> None:
    client = ollama.Client(host=fake.url)
    full = embedding_for("some text")

    short = client.embed("nomic-embed-text", input="some text", dimensions=256).embeddings[0]
    assert len(short) == 256 and abs(norm(short) - 1) < 1e-9
    prefix = full[:256]
    assert short == pytest.approx([x / norm(prefix) for x in prefix])
    assert short == embedding_for("some text", 256)
    assert fake.embed_requests[-1]["dimensions"] == 256

    with pytest.raises(ollama.ResponseError) as info:
        client.embed("nomic-embed-text", input="x", dimensions=1024)
    assert info.value.status_code == 400
    assert "1024" in info.value.error

    fake.embedding_dimensions = 1024
    assert len(client.embed("nomic-embed-text", input="x", dimensions=1024).embeddings[0]) == 1024
    assert len(client.embed("nomic-embed-text", input="x").embeddings[0]) == 1024


def test_embed_edge_requests(fake: FakeOllama) -> None:
    url = fake.url + "/api/embed"
    model = "nomic-embed-text"
    assert httpx.post(url, json={"model": model, "input": []}).json() == {
        "model": model,
        "embeddings": [],
    }
    assert httpx.post(url, json={"model": model, "input": ""}).json()["embeddings"] == []
    accepted = httpx.post(
        url,
        json={"model": model, "input": ["x"], "truncate": False, "keep_alive": "5m", "options": {}},
    )
    assert accepted.status_code == 200

    for body, status, error in [
        ({"input": "x"}, 400, "model is required"),
        ({"model": model, "input": [1, 2]}, 400, "invalid input type"),
        (
            {"model": model, "input": "x", "dimensions": -1},
            400,
            "dimensions must be a non-negative number",
        ),
        ({"model": "nope", "input": "x"}, 404, 'model "nope" not found, try pulling it first'),
        ({"model": MODEL, "input": "x"}, 404, f'model "{MODEL}" not found, try pulling it first'),
    ]:
        response = httpx.post(url, json=body)
        assert (response.status_code, response.json()) == (status, {"error": error}), body


def test_chat_with_an_embedding_model_is_a_400(fake: FakeOllama) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        chat_model(fake, model="nomic-embed-text").invoke("hi")
    assert (info.value.status_code, info.value.error) == (
        400,
        '"nomic-embed-text" does not support chat',
    )


def test_embedding_models_in_tags_and_show(fake: FakeOllama) -> None:
    client = ollama.Client(host=fake.url)
    tagged = {m.model: m for m in client.list().models}
    assert tagged["nomic-embed-text"].details.family == "nomic-bert"
    assert [m.model for m in client.ps().models] == ["llama3.2:3b", "qwen2.5:7b"]

    shown = client.show("nomic-embed-text")
    assert shown.capabilities == ["embedding"]
    assert shown.modelinfo["nomic-bert.embedding_length"] == 768

    fake.embedding_models = ["mxbai-embed-large:335m"]
    assert client.embed("mxbai-embed-large:335m", input="x").embeddings[0] == embedding_for("x")
    with pytest.raises(ollama.ResponseError):
        client.embed("nomic-embed-text", input="x")


def test_legacy_embeddings_endpoint(fake: FakeOllama) -> None:
    client = ollama.Client(host=fake.url)
    assert client.embeddings("nomic-embed-text", prompt="hello").embedding == embedding_for("hello")
    assert httpx.post(
        fake.url + "/api/embeddings", json={"model": "nomic-embed-text", "prompt": ""}
    ).json() == {"embedding": []}
    assert fake.embed_requests[-2] == {"model": "nomic-embed-text", "prompt": "hello"}


def test_faults_apply_to_embed(fake: FakeOllama) -> None:
    client = ollama.Client(host=fake.url, timeout=1)
    fake.mode = "error"
    with pytest.raises(ollama.ResponseError) as info:
        client.embed("nomic-embed-text", input="x")
    assert (info.value.status_code, info.value.error) == (500, fake.error_message)

    fake.mode = "hang"
    with pytest.raises(httpx.ReadTimeout):
        client.embed("nomic-embed-text", input="x")

    fake.mode = "malformed"
    with pytest.raises(json.JSONDecodeError):
        client.embed("nomic-embed-text", input="x")

    fake.mode = "disconnect_mid_stream"
    with pytest.raises(httpx.RemoteProtocolError):
        client.embed("nomic-embed-text", input="x")
    assert len(fake.embed_requests) == 4


def test_embed_when_down() -> None:
    fake = FakeOllama().start()
    fake.mode = "down"
    with pytest.raises(ConnectionError):
        ollama.Client(host=fake.url).embed("nomic-embed-text", input="x")


# ---- reset and command line for the new settings ----------------------------------------------


def test_reset_restores_the_new_settings(fake: FakeOllama) -> None:
    defaults = (True, False, False, set(), ["nomic-embed-text"], 768)

    def settings() -> tuple:
        return (
            fake.client_tool_calls,
            fake.parallel_tool_calls_for_all,
            fake.format_violation,
            fake.vision_models,
            fake.embedding_models,
            fake.embedding_dimensions,
        )

    assert settings() == defaults
    ollama.Client(host=fake.url).embed("nomic-embed-text", input="x")
    fake.client_tool_calls = False
    fake.parallel_tool_calls_for_all = True
    fake.format_violation = True
    fake.vision_models.add("llava:7b")
    fake.embedding_models.append("bge-m3")
    fake.embedding_dimensions = 1024

    fake.reset()

    assert settings() == defaults
    assert fake.embed_requests == []
    custom = FakeOllama(
        vision_models=["llava"], embedding_models=["bge-m3"], embedding_dimensions=8
    )
    custom.embedding_models.clear()
    custom.reset()
    assert (custom.vision_models, custom.embedding_models, custom.embedding_dimensions) == (
        {"llava"},
        ["bge-m3"],
        8,
    )


def test_cli_vision_and_embedding_flags() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fakes.ollama",
            "--port",
            "0",
            "--models",
            MODEL,
            "--vision-models",
            "llava:7b",
            "--embedding-models",
            "bge-m3,nomic-embed-text",
            "--embedding-dimensions",
            "16",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = process.stdout.readline().split()[-1]
        client = ollama.Client(host=url, timeout=5)
        assert [m.model for m in client.list().models] == [
            MODEL,
            "llava:7b",
            "bge-m3",
            "nomic-embed-text",
        ]
        assert "vision" in client.show("llava:7b").capabilities
        assert len(client.embed("bge-m3", input="x").embeddings[0]) == 16
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
