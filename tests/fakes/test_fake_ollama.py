"""The fake Ollama server, driven by the real clients the workers use.

Everything goes through real sockets: `langchain_ollama.ChatOllama` (which uses the `ollama`
client over httpx), the bare `ollama.Client`, or httpx itself when the bytes on the wire matter.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import ollama
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langchain_ollama import ChatOllama

from tests.fakes.ollama import FakeOllama, numbered_words, tokenize

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

    listed = client.list()
    assert [m.model for m in listed.models] == ["llama3.2:3b", "qwen2.5:7b"]
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
        assert [m["name"] for m in tags["models"]] == ["llama3.2:3b", "qwen2.5:7b"]
        assert ChatOllama(model=MODEL, base_url=url).invoke("hi").content == "w0 w1 w2"

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
