"""/v1/chat/completions under LangChain's `ChatOpenAI` (langchain-openai), a real client
library, against the live stack (gunicorn, Celery workers, fake Ollama on a real socket).

The first part uses ChatOpenAI as applications do — invoke, stream, tools and a tool
round trip, structured output, stop sequences, logprobs — and checks what the user gets
and what the model server was sent. The second part runs LangChain's standard chat-model
integration tests (langchain-tests) with ChatOpenAI pointed at the gateway.
"""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import Literal

import httpx
import openai
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langchain_tests.integration_tests import ChatModelIntegrationTests
from pydantic import BaseModel, Field

from tests.fakes.ollama import DEFAULT_MODELS, numbered_words, tokenize
from tests.integration.openai_client import requests_mentioning, the_model_request, unique

pytestmark = pytest.mark.live

LIGHT_MODEL, HEAVY_MODEL = DEFAULT_MODELS
DEFAULT_REPLY = numbered_words(20)


@pytest.fixture
def http_clients() -> Iterator[dict]:
    """HTTP clients of one test for ChatOpenAI, closed after it.

    Left to itself, langchain-openai keeps one client per base URL for the whole process:
    its idle keep-alive connection would hold the gunicorn server's graceful shutdown at
    the end of the run (15 s), and its async connections would outlive their test's
    event loop. The async client keeps no connection open between requests, so it needs
    no closing from inside a loop.
    """
    no_keepalive = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client() as client:
        yield {"http_client": client, "http_async_client": httpx.AsyncClient(limits=no_keepalive)}


@pytest.fixture
def chat_openai(live, alice_key, http_clients) -> Callable[..., ChatOpenAI]:
    """ChatOpenAI on the gateway's /v1 with alice's API key, failing at once (no retries)."""

    def make(**settings) -> ChatOpenAI:
        defaults = {"model": "light", "max_retries": 0, "timeout": 30, **http_clients}
        return ChatOpenAI(
            base_url=live.url + "/v1", api_key=alice_key["key"], **{**defaults, **settings}
        )

    return make


@pytest.fixture
def llm(chat_openai) -> ChatOpenAI:
    return chat_openai()


def words(messages: list[dict]) -> int:
    """The fake model's prompt_eval_count for these messages: their words."""
    return sum(len(str(message.get("content") or "").split()) for message in messages)


@tool
def get_weather(city: str, days: int) -> str:
    """The weather in a city over some days."""
    return f"Sunny in {city} for {days} days"


class GetTime(BaseModel):
    """The time in a city."""

    city: str = Field(description="the city")


class Person(BaseModel):
    """A person the text is about."""

    name: str
    age: int
    mood: Literal["happy", "sad"]


def person_question(label: str) -> tuple[str, str]:
    # The fake fills strings from the first quoted phrase and numbers from the first number.
    marker = unique(label)
    return f'A person called "Ada" aged 36. {marker}', marker


# --- 1. ChatOpenAI as applications use it ----------------------------------------------


def test_invoke_answers_with_usage_and_the_model_gets_the_conversation(llm, fake_ollama):
    marker = unique("langchain invoke")

    answer = llm.invoke([SystemMessage("Answer briefly."), HumanMessage(marker)])

    assert isinstance(answer, AIMessage)
    assert answer.content == DEFAULT_REPLY
    assert answer.response_metadata["model_name"] == LIGHT_MODEL
    assert answer.response_metadata["finish_reason"] == "stop"
    assert answer.response_metadata["id"].startswith("chatcmpl-")
    sent = the_model_request(fake_ollama, marker)
    assert sent["model"] == LIGHT_MODEL
    assert sent["messages"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": marker},
    ]
    usage = answer.usage_metadata
    assert usage["output_tokens"] == 20
    assert usage["input_tokens"] == words(sent["messages"])
    assert usage["total_tokens"] == usage["input_tokens"] + 20


def test_stream_sends_the_answer_token_by_token_with_usage_last(chat_openai, fake_ollama):
    llm = chat_openai(stream_usage=True)
    marker = unique("langchain stream")

    chunks = list(llm.stream(marker))

    texts = [chunk.content for chunk in chunks if chunk.content]
    assert texts == tokenize(DEFAULT_REPLY)  # one chunk per token, as the model sent them
    full = chunks[0]
    for chunk in chunks[1:]:
        full += chunk
    assert full.content == DEFAULT_REPLY
    assert full.response_metadata["finish_reason"] == "stop"
    assert full.response_metadata["model_name"] == LIGHT_MODEL
    assert chunks[-1].chunk_position == "last"
    sent = the_model_request(fake_ollama, marker)
    assert sent["stream"] is True
    assert full.usage_metadata["output_tokens"] == 20
    assert full.usage_metadata["input_tokens"] == words(sent["messages"])
    # The usage comes once, with the last chunks; the token chunks carry none.
    assert [chunk.usage_metadata for chunk in chunks if chunk.content] == [None] * 20


def test_bound_tools_are_called_and_a_tool_message_gets_the_final_answer(llm, fake_ollama):
    marker = unique("langchain tools")
    question = HumanMessage(f'Use get_weather for "Paris" over 3 days. {marker}')
    with_tools = llm.bind_tools([get_weather, GetTime])

    called = with_tools.invoke([question])

    sent = the_model_request(fake_ollama, marker)
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather", "GetTime"]
    assert sent["tools"][0]["function"]["parameters"]["required"] == ["city", "days"]
    assert called.response_metadata["finish_reason"] == "tool_calls"
    [call] = called.tool_calls
    assert (call["name"], call["args"]) == ("get_weather", {"city": "Paris", "days": 3})
    assert call["id"] and called.content == ""

    # Streamed, the tool call arrives as tool-call chunks that join to the same call.
    streamed = None
    for chunk in with_tools.stream([question]):
        streamed = chunk if streamed is None else streamed + chunk
    [streamed_call] = streamed.tool_calls
    assert (streamed_call["name"], streamed_call["args"]) == (call["name"], call["args"])

    # The application runs the tool and sends its result back: the model answers from it.
    result = get_weather.invoke(call)
    assert isinstance(result, ToolMessage) and result.tool_call_id == call["id"]
    final = with_tools.invoke([question, called, result])

    assert final.content == "Based on the tool result: Sunny in Paris for 3 days"
    assert final.tool_calls == []
    sent = requests_mentioning(fake_ollama, "Sunny in Paris")[-1]
    assistant, tool_result = sent["messages"][-2:]
    assert assistant["role"] == "assistant"
    assert assistant["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": {"city": "Paris", "days": 3},
    }
    assert tool_result == {"role": "tool", "content": "Sunny in Paris for 3 days"}


def test_a_pydantic_tool_named_by_the_user_is_called_with_its_fields(llm, fake_ollama):
    marker = unique('What is the time in "Lima"? Use GetTime.')

    called = llm.bind_tools([get_weather, GetTime]).invoke(marker)

    [call] = called.tool_calls
    assert (call["name"], call["args"]) == ("GetTime", {"city": "Lima"})
    assert GetTime(**call["args"]).city == "Lima"


def test_structured_output_by_json_schema_returns_the_model_instance(llm, fake_ollama):
    question, marker = person_question("structured json schema")

    person = llm.with_structured_output(Person).invoke(question)

    assert person == Person(name="Ada", age=36, mood="happy")
    sent = the_model_request(fake_ollama, marker)
    # langchain-openai's default (json_schema, strict) reaches Ollama as its `format`.
    assert sent["format"]["properties"].keys() == {"name", "age", "mood"}
    assert sent["format"]["required"] == ["name", "age", "mood"]
    assert sent["format"]["additionalProperties"] is False
    assert not sent.get("tools")


def test_structured_output_by_function_calling_returns_the_model_instance(llm, fake_ollama):
    question, marker = person_question("structured function calling")

    person = llm.with_structured_output(Person, method="function_calling").invoke(question)

    assert person == Person(name="Ada", age=36, mood="happy")
    sent = the_model_request(fake_ollama, marker)
    # Called by name (tool_choice): the model is offered that one tool and no format.
    assert [t["function"]["name"] for t in sent["tools"]] == ["Person"]
    assert not sent.get("format")


def test_structured_output_that_breaks_the_schema_is_an_error_not_an_instance(llm, fake_ollama):
    fake_ollama.format_violation = True  # the model leaves out required properties
    question, _ = person_question("structured broken")

    # A pydantic schema is always strict (the openai SDK's parse): the gateway checks it.
    with pytest.raises(openai.InternalServerError) as caught:
        llm.with_structured_output(Person).invoke(question)

    assert caught.value.status_code == 502
    assert "does not match the Person schema" in caught.value.message


def test_bound_stop_sequences_cut_the_answer(llm, fake_ollama):
    marker = unique("langchain stop")

    answer = llm.bind(stop=["w3"]).invoke(marker)

    assert answer.content.rstrip() == "w0 w1 w2"
    assert the_model_request(fake_ollama, marker)["options"]["stop"] == ["w3"]


def test_bound_logprobs_come_in_the_response_metadata(llm, fake_ollama):
    marker = unique("langchain logprobs")

    answer = llm.bind(logprobs=True, top_logprobs=2, max_tokens=4).invoke(marker)

    sent = the_model_request(fake_ollama, marker)
    assert (sent["logprobs"], sent["top_logprobs"]) == (True, 2)
    entries = answer.response_metadata["logprobs"]["content"]
    assert [entry["token"] for entry in entries] == tokenize("w0 w1 w2 w3")
    assert all(entry["logprob"] < 0 for entry in entries)
    assert [len(entry["top_logprobs"]) for entry in entries] == [2, 2, 2, 2]


def test_an_image_part_reaches_the_vision_model(llm, fake_ollama):
    fake_ollama.vision_models = {HEAVY_MODEL}
    marker = unique("what is in this picture?")
    image = base64.b64encode(PNG).decode()
    question = HumanMessage(
        [
            {"type": "text", "text": marker},
            {"type": "image", "base64": image, "mime_type": "image/png"},
        ]
    )

    answer = llm.bind(model="auto").invoke([question])

    assert answer.content == "I see 1 image(s)."
    assert answer.response_metadata["model_name"] == HEAVY_MODEL
    sent = the_model_request(fake_ollama, marker)
    assert sent["messages"][-1]["images"] == [image]


# --- 2. LangChain's standard chat-model integration tests -------------------------------


def _png(width: int = 2, height: int = 2) -> bytes:
    """A small valid PNG (grey pixels)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PNG = _png()
# The picture the standard image tests download; this machine has no internet, so it is
# answered with PNG (the fake model counts images, it does not look at them).
STANDARD_IMAGE_URL = (
    "https://raw.githubusercontent.com/langchain-ai/docs/"
    "4d11d08b6b0e210bd456943f7a22febbd168b543/src/images/agentic-rag-output.png"
)


# Two warnings of the client libraries, not of the gateway: langchain-openai serializes the
# openai SDK's parsed completion, whose generic `parsed` field pydantic cannot type; and it
# answers the standard pydantic-v1 test's schema by function calling, as it says.
@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")
@pytest.mark.filterwarnings("ignore:Received a Pydantic BaseModel V1 schema:UserWarning")
class TestGatewayAsChatOpenAI(ChatModelIntegrationTests):
    """ChatOpenAI on the gateway's /v1, as LangChain's standard tests drive a chat model.

    `model` is "auto": text goes to the light tier, images to the vision model (the heavy
    tier's, VISION_MODELS in the tests).
    """

    params: dict = {}

    @pytest.fixture(autouse=True)
    def _on_the_gateway(self, live, alice_key, http_clients, fake_ollama, monkeypatch):
        # Autouse, so it runs before the base class builds its `model` fixture.
        fake_ollama.vision_models = {HEAVY_MODEL}
        self.params = {
            "model": "auto",
            "base_url": live.url + "/v1",
            "api_key": alice_key["key"],
            "stream_usage": True,
            "max_retries": 0,
            "timeout": 30,
            **http_clients,
        }
        download = httpx.get

        def offline_get(url, *args, **kwargs):
            if url == STANDARD_IMAGE_URL:
                return httpx.Response(200, content=PNG, request=httpx.Request("GET", url))
            return download(url, *args, **kwargs)

        monkeypatch.setattr(httpx, "get", offline_get)

    @pytest.mark.xfail(
        reason="Ollama has no tool_choice: the gateway offers a named function alone, and "
        "all for required ('any'), but cannot force a call, so to 'Hello!' the model "
        "answers in text (docs/openai-compatibility.md: best effort on Ollama)",
        strict=True,
    )
    def test_tool_choice(self, model) -> None:
        super().test_tool_choice(model)

    @property
    def chat_model_class(self) -> type[ChatOpenAI]:
        return ChatOpenAI

    @property
    def chat_model_params(self) -> dict:
        return self.params

    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def supports_image_urls(self) -> bool:
        return False  # Ollama takes images inline; the gateway fetches no URL (no SSRF)

    @property
    def supports_image_tool_message(self) -> bool:
        return False  # only a user message may carry images

    @property
    def supports_pdf_inputs(self) -> bool:
        return False

    @property
    def supports_pdf_tool_message(self) -> bool:
        return False

    @property
    def supports_audio_inputs(self) -> bool:
        return False

    @property
    def supports_anthropic_inputs(self) -> bool:
        return False

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return HEAVY_MODEL
