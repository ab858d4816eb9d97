"""OpenAI compatibility side by side: this gateway and LiteLLM's proxy, same calls, same model.

Starts, on 127.0.0.1, the fake Ollama server (tests/fakes/ollama.py, in this process, so
that every body it receives can be read back; `qwen2.5:7b` takes images), this gateway's
stack (a fresh database `llm_gateway_bench_compat`, Redis db 13 under `gwbench-compat:`,
gunicorn and one Celery worker for both queues, response cache off) and LiteLLM's proxy
(bench/peers/.venv-litellm, installed by `bash bench/peers/install.sh`; a config file in a
temporary directory maps `light`, `heavy` and the Ollama model names to `ollama_chat/...`
and `nomic-embed-text` to `ollama/...` at the fake's URL; a master key, no database).

Then it makes the same calls with the official `openai` SDK against both base URLs and
prints a markdown table: per call what each one answered (checked where cheap: the JSON
validates, the stop sequence cut the text...) and what reached the model server (each call
carries a marker of its own in its text, found again in the fake's recorded bodies: did
`stop`, `seed`, `format`... arrive in Ollama's own terms?). Everything it started is
stopped, and the database and keys removed, at the end, also on errors and Ctrl-C.

Run: .venv/bin/python bench/compat.py [--only REGEX] [--json] [--keep-logs]
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
import time
import traceback
import uuid
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import jsonschema
import openai
from peers_litellm import (
    EMBEDDING_MODEL,
    VISION_MODEL,
    add_litellm_arguments,
    litellm_binary,
    litellm_version,
    start_litellm,
)
from stack import (
    HOST,
    MODEL,
    ROOT,
    STARTUP_ERRORS,
    Stack,
    StackError,
    Storage,
    create_api_key,
    logger,
    parse_overrides,
)

if str(ROOT) not in sys.path:  # the fake model server lives in the tests
    sys.path.insert(1, str(ROOT))
from tests.fakes.ollama import FakeOllama, embedding_for, numbered_words, tokenize

STORAGE = Storage(db_name="llm_gateway_bench_compat", redis_db=13, prefix="gwbench-compat:")
LIGHT = "light"
REPLY = numbered_words(20)  # what the fake model answers by default
CALL_TIMEOUT = 30.0  # seconds for one SDK call
CELL_CHARS = 120  # a cell's note is cut there

log = logger("compat")

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
WEATHER_ARGUMENTS = {"city": "Paris", "days": 3}
RESPONSES_WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
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
PNG_BYTES = b"\x89PNG\r\n\x1a\nfake image"
PNG = "data:image/png;base64," + base64.b64encode(PNG_BYTES).decode()
TOOL_RESULT = "Sunny, 21 degrees"


# --- what a call and its checks look like -----------------------------------------------------


class Wrong(Exception):
    """The call answered, but not what OpenAI's API promises (the note says what came)."""


@dataclass
class Target:
    """One of the compared servers, as the SDK sees it."""

    name: str
    client: openai.OpenAI | None  # None: not running (e.g. LiteLLM not installed)
    missing: str = ""  # why client is None
    about: str = ""  # version and settings, for the summary line


@dataclass
class Context:
    """What one call gets: the server's client, its marker, and the fake model server."""

    client: openai.OpenAI
    marker: str
    fake: FakeOllama


@dataclass
class Sent:
    """What the fake model server received for one call: the chat and embed bodies."""

    marker: str
    chats: list[dict[str, Any]]
    embeds: list[dict[str, Any]]

    @property
    def chat(self) -> dict[str, Any]:
        """The last chat body (the one that answered), {} when there is none."""
        return self.chats[-1] if self.chats else {}

    @property
    def options(self) -> dict[str, Any]:
        return self.chat.get("options") or {}


Verdict = tuple[bool | None, str]  # (right? None: nothing to judge), note
Check = Callable[[Sent], Verdict]


@dataclass
class Call:
    name: str
    run: Callable[[Context], str]
    sent: Check | None


@dataclass
class Outcome:
    answer: str  # the table cell: "ok: ...", "WRONG: ...", "400 ...", ...
    reached: str  # the "reached Ollama" cell
    answer_ok: bool | None = None
    reached_ok: bool | None = None
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)


CALLS: list[Call] = []


def call(name: str, sent: Check | None = None) -> Callable[[Callable[[Context], str]], Any]:
    """Register a call (in table order) with the check of what reached the model server."""

    def register(run: Callable[[Context], str]) -> Callable[[Context], str]:
        CALLS.append(Call(name, run, sent))
        return run

    return register


def expect(condition: bool, note: str) -> None:
    if not condition:
        raise Wrong(note)


def plain(value: Any) -> Any:
    """An SDK object as JSON can show it."""
    return value.model_dump(exclude_none=True) if hasattr(value, "model_dump") else repr(value)


def short(value: Any, limit: int = 40) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=plain)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def weather_question(marker: str) -> list[dict[str, Any]]:
    return user(f'Use get_weather for "Paris" over 3 days. {marker}')


def tool_names(tools: Any) -> list[str]:
    return [(tool.get("function") or {}).get("name", "?") for tool in tools or []]


def calls_of(message: Any) -> list[tuple[str, Any]]:
    """(name, arguments parsed) of a chat message's tool calls."""
    found = []
    for tool_call in message.tool_calls or []:
        try:
            arguments = json.loads(tool_call.function.arguments)
        except (TypeError, ValueError):
            arguments = tool_call.function.arguments
        found.append((tool_call.function.name, arguments))
    return found


def text_of(completion: Any) -> str:
    return completion.choices[0].message.content or ""


def expect_reply(text: str, expected: str = REPLY) -> None:
    expect(text == expected, f"text {short(text)!s}")


# --- checks of what reached Ollama ----------------------------------------------------------


def roles(sent: Sent) -> str:
    """The roles of the messages sent, e.g. "system+user"."""
    return "+".join(str(m.get("role")) for m in sent.chat.get("messages") or [])


def reached_plain(sent: Sent) -> Verdict:
    """The call sent one user message: the model, and what was added to it."""
    got = sent.chat.get("model")
    note = f"model {got}, messages {roles(sent)}"
    if len(sent.chats) > 1:
        note += f", {len(sent.chats)} requests"
    return got == MODEL, note


def reached_options(**expected: Any) -> Check:
    """Each expected Ollama option arrived with its value (in `options`)."""

    def check(sent: Sent) -> Verdict:
        options = sent.options
        wrong = [
            f"{name}={short(options[name], 20)}"
            + (" (a string: Ollama's stop is a list)" if isinstance(options[name], str) else "")
            if name in options
            else f"no {name}"
            for name, value in expected.items()
            if options.get(name) != value
        ]
        if wrong:
            return False, ", ".join(wrong)
        return True, "options " + ", ".join(f"{k}={short(v, 20)}" for k, v in expected.items())

    return check


def reached_tools(expected: list[str], *, judge: bool = True) -> Check:
    """The tools offered to the model, by name, with WEATHER_TOOL's schema intact."""

    def check(sent: Sent) -> Verdict:
        tools = sent.chat.get("tools") or []
        names = tool_names(tools)
        note = f"tools {names}" if names else "no tools"
        schemas = {(t.get("function") or {}).get("name"): t for t in tools}
        weather = schemas.get("get_weather")
        if (
            weather
            and weather["function"].get("parameters") != WEATHER_TOOL["function"]["parameters"]
        ):
            return False, f"{note}; get_weather's schema changed"
        if names == expected:
            return True, note
        return (False if judge else None), note

    return check


def reached_tool_history(*, tools: bool) -> Check:
    """The assistant's tool call (arguments as an object, as Ollama takes them) and the tool
    message before it."""

    def check(sent: Sent) -> Verdict:
        messages = sent.chat.get("messages") or []
        if len(messages) < 2:
            return False, f"{len(messages)} messages"
        assistant, result = messages[-2], messages[-1]
        notes = []
        good = True
        calls = assistant.get("tool_calls") or []
        if assistant.get("role") != "assistant":
            good = False
            notes.append(f"before the result: {short(assistant, 40)}")
        elif not calls:
            good = False
            notes.append("the assistant's tool_calls dropped")
        else:
            arguments = (calls[0].get("function") or {}).get("arguments")
            if arguments != WEATHER_ARGUMENTS:
                good = False
                notes.append(f"arguments {short(arguments, 40)} (Ollama takes an object)")
        if result.get("role") != "tool" or result.get("content") != TOOL_RESULT:
            good = False
            notes.append(f"last {short(result, 40)}")
        offered = tool_names(sent.chat.get("tools"))
        if bool(offered) != tools:
            notes.append(f"tools {offered}")
        return good, "; ".join(notes) or "assistant tool_calls (object arguments) + tool message"

    return check


def reached_embed(inputs: Any, **extra: Any) -> Check:
    def check(sent: Sent) -> Verdict:
        if not sent.embeds:
            return False, "no /api/embed request"
        body = sent.embeds[-1]
        got = body.get("input", body.get("prompt"))
        wanted = [inputs] if isinstance(inputs, str) else inputs
        good = got in (inputs, wanted)
        notes = [f"input {short(got, 30)}" if not good else f"{len(wanted)} input(s)"]
        for name, value in extra.items():
            if body.get(name) != value:
                good = False
                notes.append(f"{name}={body.get(name)!r}" if name in body else f"no {name}")
            else:
                notes.append(f"{name}={value}")
        if len(sent.embeds) > 1:
            notes.append(f"{len(sent.embeds)} requests")
        return good, ", ".join(notes)

    return check


# --- the calls: chat completions ------------------------------------------------------------


@call("chat: plain", reached_plain)
def chat_plain(c: Context) -> str:
    completion = c.client.chat.completions.create(model=LIGHT, messages=user(c.marker))
    expect_reply(text_of(completion))
    expect(completion.choices[0].finish_reason == "stop", completion.choices[0].finish_reason)
    usage = completion.usage
    expect(usage is not None and usage.completion_tokens == 20, f"usage {usage}")
    return f"text, usage {usage.prompt_tokens}+{usage.completion_tokens}"


def reached_stream(sent: Sent) -> Verdict:
    return None, f"stream={sent.chat.get('stream')}"


@call("chat: stream + include_usage", reached_stream)
def chat_stream(c: Context) -> str:
    chunks = list(
        c.client.chat.completions.create(
            model=LIGHT,
            messages=user(c.marker),
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    expect_reply(text)
    last = chunks[-1]
    expect(last.usage is not None, "no usage chunk")
    expect(not last.choices, "usage on a chunk with choices (OpenAI: a last chunk, choices [])")
    expect(last.usage.completion_tokens == 20, f"usage {last.usage}")
    return f"{len(chunks)} chunks, usage chunk last"


@call("chat: tools + tool_choice auto", reached_tools(["get_weather", "get_time"]))
def chat_tools_auto(c: Context) -> str:
    completion = c.client.chat.completions.create(
        model=LIGHT,
        messages=weather_question(c.marker),
        tools=[WEATHER_TOOL, TIME_TOOL],
        tool_choice="auto",
    )
    choice = completion.choices[0]
    calls = calls_of(choice.message)
    expect(calls == [("get_weather", WEATHER_ARGUMENTS)], f"calls {short(calls)}")
    expect(choice.finish_reason == "tool_calls", f"finish_reason {choice.finish_reason}")
    expect(bool(choice.message.tool_calls[0].id), "no call id")
    return f"tool_calls get_weather {short(WEATHER_ARGUMENTS)}"


def tool_history(marker: str) -> list[dict[str, Any]]:
    return [
        *weather_question(marker),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": json.dumps(WEATHER_ARGUMENTS)},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": TOOL_RESULT},
    ]


@call("chat: tool round trip (tool_calls + tool message) → text", reached_tool_history(tools=True))
def chat_tool_round_trip(c: Context) -> str:
    completion = c.client.chat.completions.create(
        model=LIGHT, messages=tool_history(c.marker), tools=[WEATHER_TOOL, TIME_TOOL]
    )
    expect_reply(text_of(completion), f"Based on the tool result: {TOOL_RESULT}")
    return "text from the tool result"


@call("chat: tool_choice required", reached_tools(["get_weather", "get_time"], judge=False))
def chat_tool_choice_required(c: Context) -> str:
    completion = c.client.chat.completions.create(
        model=LIGHT,
        messages=weather_question(c.marker),
        tools=[WEATHER_TOOL, TIME_TOOL],
        tool_choice="required",
    )
    calls = calls_of(completion.choices[0].message)
    expect([name for name, _ in calls] == ["get_weather"], f"calls {short(calls)}")
    return "tool_calls get_weather"


def reached_named(sent: Sent) -> Verdict:
    names = tool_names(sent.chat.get("tools"))
    if names == ["get_time"]:
        return True, "tools ['get_time'] (only the named one)"
    return None, f"tools {names} (Ollama has no tool_choice)"


@call("chat: tool_choice named (get_time)", reached_named)
def chat_tool_choice_named(c: Context) -> str:
    # The fake calls the first offered tool the text names: get_weather, unless only
    # get_time is offered. OpenAI's named choice must call get_time.
    completion = c.client.chat.completions.create(
        model=LIGHT,
        messages=user(f'Use get_weather or get_time for "Oslo". {c.marker}'),
        tools=[WEATHER_TOOL, TIME_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    calls = calls_of(completion.choices[0].message)
    expect(
        [name for name, _ in calls] == ["get_time"], f"calls {short(calls) if calls else 'none'}"
    )
    return "tool_calls get_time"


def reached_choice_none(sent: Sent) -> Verdict:
    names = tool_names(sent.chat.get("tools"))
    if not names:
        return True, "no tools"
    return None, f"tools {names} (Ollama has no tool_choice)"


@call("chat: tool_choice none", reached_choice_none)
def chat_tool_choice_none(c: Context) -> str:
    completion = c.client.chat.completions.create(
        model=LIGHT,
        messages=weather_question(c.marker),
        tools=[WEATHER_TOOL, TIME_TOOL],
        tool_choice="none",
    )
    calls = calls_of(completion.choices[0].message)
    expect(not calls, f"calls {short(calls)}")
    expect_reply(text_of(completion))
    return "text, no tool call"


@call("chat: streamed tool-call deltas", reached_tools(["get_weather"]))
def chat_tool_call_deltas(c: Context) -> str:
    chunks = list(
        c.client.chat.completions.create(
            model=LIGHT, messages=weather_question(c.marker), tools=[WEATHER_TOOL], stream=True
        )
    )
    calls: dict[int, dict[str, str]] = {}
    finishes = []
    for chunk in chunks:
        if not chunk.choices:
            continue
        finishes += [chunk.choices[0].finish_reason] if chunk.choices[0].finish_reason else []
        for delta in chunk.choices[0].delta.tool_calls or ():
            entry = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] = delta.id or entry["id"]
            if delta.function:
                entry["name"] += delta.function.name or ""
                entry["arguments"] += delta.function.arguments or ""
    expect(list(calls) == [0], f"{len(calls)} calls")
    expect(calls[0]["name"] == "get_weather" and bool(calls[0]["id"]), short(calls[0]))
    try:
        arguments = json.loads(calls[0]["arguments"])
    except ValueError:
        arguments = calls[0]["arguments"]
    expect(arguments == WEATHER_ARGUMENTS, f"arguments {short(arguments)}")
    expect(finishes == ["tool_calls"], f"finish_reason {finishes}")
    deltas = sum(1 for chunk in chunks if chunk.choices and chunk.choices[0].delta.tool_calls)
    return f"get_weather in {deltas} delta(s)"


def reached_format(expected: Any, label: str) -> Check:
    def check(sent: Sent) -> Verdict:
        got = sent.chat.get("format")
        if got == expected:
            return True, f"format={label}"
        return False, f"format={short(got, 30)}" if got else "no format"

    return check


@call("chat: response_format json_object", reached_format("json", "json"))
def chat_json_object(c: Context) -> str:
    completion = c.client.chat.completions.create(
        model=LIGHT,
        messages=user(f"Answer in JSON. {c.marker}"),
        response_format={"type": "json_object"},
    )
    text = text_of(completion)
    try:
        value = json.loads(text)
    except ValueError:
        raise Wrong(f"not JSON: {short(text)}") from None
    expect(isinstance(value, dict), f"JSON {type(value).__name__}")
    return f"json ok {short(value, 30)}"


@call("chat: response_format json_schema strict", reached_format(PERSON_SCHEMA, "the schema"))
def chat_json_schema(c: Context) -> str:
    completion = c.client.chat.completions.create(
        model=LIGHT,
        messages=user(f'A person called "Ada" aged 36. {c.marker}'),
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": PERSON_SCHEMA, "strict": True},
        },
    )
    text = text_of(completion)
    try:
        value = json.loads(text)
        jsonschema.validate(value, PERSON_SCHEMA)
    except (ValueError, jsonschema.ValidationError) as exc:
        raise Wrong(f"{short(text, 30)}: {short(str(exc), 40)}") from None
    return f"validates: {short(value, 50)}"


def stop_call(stop: str | list[str]) -> Callable[[Context], str]:
    def run(c: Context) -> str:
        completion = c.client.chat.completions.create(
            model=LIGHT, messages=user(c.marker), stop=stop
        )
        text = text_of(completion)
        expect(text.rstrip() == "w0 w1 w2", f"text {short(text)}")
        return "cut before w3"

    return run


call("chat: stop (string)", reached_options(stop=["w3"]))(stop_call("w3"))
call("chat: stop (list)", reached_options(stop=["w9", " w3"]))(stop_call(["w9", " w3"]))

SAMPLING = {
    "temperature": 0.3,
    "seed": 42,
    "top_p": 0.9,
    "presence_penalty": 0.5,
    "frequency_penalty": -0.5,
}


@call("chat: temperature, seed, top_p, presence/frequency_penalty", reached_options(**SAMPLING))
def chat_sampling(c: Context) -> str:
    completion = c.client.chat.completions.create(model=LIGHT, messages=user(c.marker), **SAMPLING)
    expect_reply(text_of(completion))
    return "text"


def reached_logprobs(sent: Sent) -> Verdict:
    got = (sent.chat.get("logprobs"), sent.chat.get("top_logprobs"))
    return got == (True, 2), f"logprobs={got[0]}, top_logprobs={got[1]}"


@call("chat: logprobs + top_logprobs=2", reached_logprobs)
def chat_logprobs(c: Context) -> str:
    completion = c.client.chat.completions.create(
        model=LIGHT, messages=user(c.marker), logprobs=True, top_logprobs=2, max_tokens=5
    )
    logprobs = completion.choices[0].logprobs
    expect(logprobs is not None and logprobs.content, "no logprobs")
    tokens = [entry.token for entry in logprobs.content]
    expect(tokens == tokenize("w0 w1 w2 w3 w4"), f"tokens {short(tokens)}")
    expect(all(len(e.top_logprobs or []) == 2 for e in logprobs.content), "top_logprobs count")
    return f"{len(tokens)} tokens, 2 alternatives each"


def reached_count(sent: Sent) -> Verdict:
    return None, f"{len(sent.chats)} chat request(s)"


@call("chat: n=2", reached_count)
def chat_n(c: Context) -> str:
    completion = c.client.chat.completions.create(model=LIGHT, messages=user(c.marker), n=2)
    expect(len(completion.choices) == 2, f"{len(completion.choices)} choice(s)")
    expect([ch.index for ch in completion.choices] == [0, 1], "indexes")
    return "2 choices"


def reached_developer(sent: Sent) -> Verdict:
    messages = sent.chat.get("messages") or []
    roles = [(m.get("role"), short(m.get("content") or "", 20)) for m in messages]
    first = messages[0] if messages else {}
    if first.get("role") == "system" and first.get("content") == "Answer in French.":
        return True, "as a system message"
    return False, f"messages {short(roles, 60)} (Ollama knows system, not developer)"


@call("chat: developer message", reached_developer)
def chat_developer(c: Context) -> str:
    completion = c.client.chat.completions.create(
        model=LIGHT,
        messages=[{"role": "developer", "content": "Answer in French."}, *user(c.marker)],
    )
    expect_reply(text_of(completion))
    return "text"


@call("chat: tool message in history, no tools offered", reached_tool_history(tools=False))
def chat_tool_message(c: Context) -> str:
    completion = c.client.chat.completions.create(model=LIGHT, messages=tool_history(c.marker))
    expect_reply(text_of(completion), f"Based on the tool result: {TOOL_RESULT}")
    return "text from the tool result"


def reached_image(sent: Sent) -> Verdict:
    messages = sent.chat.get("messages") or []
    last = messages[-1] if messages else {}
    images = last.get("images")
    wanted = base64.b64encode(PNG_BYTES).decode()
    model = sent.chat.get("model")
    if images == [wanted] and isinstance(last.get("content"), str):
        return model == VISION_MODEL, f"images [1 base64] to {model}"
    return False, f"images {short(images, 20)}, content {short(last.get('content'), 40)}"


@call(f"chat: image content part ({VISION_MODEL})", reached_image)
def chat_image(c: Context) -> str:
    completion = c.client.chat.completions.create(
        model=VISION_MODEL,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": f"What is in this picture? {c.marker}"},
                    {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
                ],
            }
        ],
    )
    expect_reply(text_of(completion), "I see 1 image(s).")
    return "'I see 1 image(s).'"


@call("chat: max_completion_tokens=5", reached_options(num_predict=5))
def chat_max_completion_tokens(c: Context) -> str:
    completion = c.client.chat.completions.create(
        model=LIGHT, messages=user(c.marker), max_completion_tokens=5
    )
    expect_reply(text_of(completion), "w0 w1 w2 w3 w4")
    finish = completion.choices[0].finish_reason
    expect(finish == "length", f"cut at 5 tokens, finish_reason {finish}")
    return "5 tokens, finish_reason length"


def reached_ignored(sent: Sent) -> Verdict:
    body = json.dumps(sent.chat)
    leaked = [name for name in ("end-user-7", "compat-meta") if name in body]
    extra = sorted(set(sent.chat) - {"model", "messages", "stream", "options", "tools"})
    note = f"forwarded: {leaked}" if leaked else "none forwarded"
    return None, note + (f"; other keys {extra}" if extra else "")


@call("chat: user + metadata + service_tier (ignored)", reached_ignored)
def chat_ignored_fields(c: Context) -> str:
    completion = c.client.chat.completions.create(
        model=LIGHT,
        messages=user(c.marker),
        user="end-user-7",
        metadata={"purpose": "compat-meta"},
        service_tier="auto",
    )
    expect_reply(text_of(completion))
    return "text"


# --- embeddings -----------------------------------------------------------------------------


def close_to(got: list[float], wanted: list[float]) -> bool:
    return len(got) == len(wanted) and all(
        abs(a - b) < 1e-5 for a, b in zip(got, wanted, strict=True)
    )


def embed_note(vectors: list[list[float]], texts: list[str], dimensions: int = 768) -> str:
    expect(len(vectors) == len(texts), f"{len(vectors)} vectors for {len(texts)} inputs")
    for vector, text in zip(vectors, texts, strict=True):
        expect(len(vector) == dimensions, f"{len(vector)} dimensions")
        expect(close_to(vector, embedding_for(text, dimensions)), "not the model's vector")
    return f"{len(vectors)} x {dimensions} floats, the model's"


def embedding_inputs(inputs: str | list[str], marker: str) -> str | list[str]:
    """A call's input: each text with the call's marker."""
    if isinstance(inputs, str):
        return f"{inputs} {marker}"
    return [f"{text} {marker}" for text in inputs]


def embedding_call(
    name: str, inputs: str | list[str], sent_extra: dict[str, Any], **params: Any
) -> None:
    def run(c: Context) -> str:
        value = embedding_inputs(inputs, c.marker)
        texts = [value] if isinstance(value, str) else value
        response = c.client.embeddings.create(model=EMBEDDING_MODEL, input=value, **params)
        data = sorted(response.data, key=lambda item: item.index)
        if params.get("encoding_format") == "base64":
            raw = data[0].embedding
            expect(isinstance(raw, str), f"{type(raw).__name__}, not a base64 string")
            vector = array("f", base64.b64decode(raw)).tolist()
            return "base64 of " + embed_note([vector], texts)
        return embed_note([item.embedding for item in data], texts, params.get("dimensions", 768))

    def check(sent: Sent) -> Verdict:
        return reached_embed(embedding_inputs(inputs, sent.marker), **sent_extra)(sent)

    call(name, check)(run)


embedding_call("embeddings: string (the SDK asks for base64)", "embed one", {})
embedding_call(
    "embeddings: string, encoding_format float", "embed float", {}, encoding_format="float"
)
embedding_call("embeddings: list of 2 (base64)", ["embed a", "embed b"], {})
embedding_call(
    "embeddings: dimensions=256 (base64)", "embed short", {"dimensions": 256}, dimensions=256
)
embedding_call("embeddings: encoding_format base64", "embed base64", {}, encoding_format="base64")


# --- legacy completions ---------------------------------------------------------------------


@call("completions (legacy): prompt, max_tokens=5", reached_options(num_predict=5))
def legacy_completion(c: Context) -> str:
    completion = c.client.completions.create(model=LIGHT, prompt=c.marker, max_tokens=5)
    text = completion.choices[0].text
    expect(text.strip() == "w0 w1 w2 w3 w4", f"text {short(text)}")
    finish = completion.choices[0].finish_reason
    expect(finish == "length", f"cut at 5 tokens, finish_reason {finish}")
    return "text_completion, 5 tokens, finish_reason length"


# --- Responses API --------------------------------------------------------------------------


def reached_input(sent: Sent) -> Verdict:
    messages = sent.chat.get("messages") or []
    last = messages[-1] if messages else {}
    good = last.get("role") == "user" and isinstance(last.get("content"), str)
    return good, f"messages {roles(sent)}"


@call("responses: create", reached_input)
def responses_plain(c: Context) -> str:
    response = c.client.responses.create(model=LIGHT, input=c.marker)
    expect(response.status == "completed", f"status {response.status}")
    expect_reply(response.output_text)
    usage = response.usage
    return f"completed, usage {usage.input_tokens}+{usage.output_tokens}" if usage else "no usage"


@call("responses: stream", reached_input)
def responses_stream(c: Context) -> str:
    events = list(c.client.responses.create(model=LIGHT, input=c.marker, stream=True))
    types = [event.type for event in events]
    expect(types[:1] == ["response.created"], f"first {types[:1]}")
    expect(types[-1:] == ["response.completed"], f"last {types[-1:]}")
    numbers = [event.sequence_number for event in events]
    expect(numbers == list(range(len(events))), f"sequence numbers {short(numbers, 30)}")
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    expect_reply(deltas)
    return f"{len(events)} events, numbered, created … completed"


def wait_until_done(c: Context, response: Any, timeout: float = 20.0) -> tuple[Any, int]:
    polls = 0
    deadline = time.monotonic() + timeout
    while response.status in ("queued", "in_progress") and time.monotonic() < deadline:
        time.sleep(0.2)
        response = c.client.responses.retrieve(response.id)
        polls += 1
    return response, polls


@call("responses: background + retrieve", reached_input)
def responses_background(c: Context) -> str:
    c.fake.token_delay = 0.03  # about 0.6 s of generation
    response = c.client.responses.create(model=LIGHT, input=c.marker, background=True)
    first = response.status
    expect(first in ("queued", "in_progress"), f"status {first} at once (not in the background)")
    response, polls = wait_until_done(c, response)
    expect(response.status == "completed", f"status {response.status}")
    expect_reply(response.output_text)
    return f"{first}, completed after {polls} retrieve(s)"


@call("responses: background + retrieve(stream, starting_after)", reached_input)
def responses_resume(c: Context) -> str:
    c.fake.token_delay = 0.05
    response = c.client.responses.create(model=LIGHT, input=c.marker, background=True)
    expect(response.status in ("queued", "in_progress"), f"status {response.status} at once")
    seen = []
    stream = c.client.responses.retrieve(response.id, stream=True)
    for event in stream:
        seen.append(event)
        if sum(e.type == "response.output_text.delta" for e in seen) == 5:
            break
    stream.close()
    expect(bool(seen), "no event")
    after = seen[-1].sequence_number
    rest = list(c.client.responses.retrieve(response.id, stream=True, starting_after=after))
    numbers = [e.sequence_number for e in seen + rest]
    expect(numbers == list(range(len(numbers))), f"sequence numbers {short(numbers, 30)}")
    text = "".join(e.delta for e in seen + rest if e.type == "response.output_text.delta")
    expect_reply(text)
    expect(rest[-1].type == "response.completed", f"last {rest[-1].type}")
    return f"resumed after #{after}: {len(rest)} more events, text whole"


@call("responses: cancel (background)", reached_count)
def responses_cancel(c: Context) -> str:
    c.fake.token_delay = 0.2  # four seconds of generation
    response = c.client.responses.create(model=LIGHT, input=c.marker, background=True)
    expect(response.status in ("queued", "in_progress"), f"status {response.status} at once")
    deadline = time.monotonic() + 10
    while response.status == "queued" and time.monotonic() < deadline:
        time.sleep(0.2)
        response = c.client.responses.retrieve(response.id)
    time.sleep(0.5)
    cancelled = c.client.responses.cancel(response.id)
    expect(cancelled.status == "cancelled", f"status {cancelled.status}")
    again = c.client.responses.retrieve(response.id)
    expect(again.status == "cancelled", f"retrieved: {again.status}")
    return "cancelled, and stays so"


def reached_chain(sent: Sent) -> Verdict:
    messages = sent.chat.get("messages") or []
    pairs = [(m.get("role"), m.get("content")) for m in messages]
    had_answer = ("assistant", REPLY) in pairs
    first = any(role == "user" and "first" in str(content) for role, content in pairs)
    if had_answer and first:
        return True, "earlier turn + its answer sent"
    return False, f"{len(messages)} message(s): history missing"


@call("responses: previous_response_id", reached_chain)
def responses_chain(c: Context) -> str:
    first = c.client.responses.create(model=LIGHT, input=f"first {c.marker}")
    second = c.client.responses.create(
        model=LIGHT, input=f"second {c.marker}", previous_response_id=first.id
    )
    expect(second.previous_response_id == first.id, f"previous {second.previous_response_id}")
    expect_reply(second.output_text)
    return "chained, previous_response_id echoed"


def reached_function_tool(sent: Sent) -> Verdict:
    tools = sent.chat.get("tools") or []
    names = tool_names(tools)
    return names == ["get_weather"], f"tools {names}"


@call("responses: function tools", reached_function_tool)
def responses_function_tools(c: Context) -> str:
    response = c.client.responses.create(
        model=LIGHT,
        input=f'Use get_weather for "Paris". {c.marker}',
        tools=[RESPONSES_WEATHER_TOOL],
    )
    calls = [item for item in response.output if item.type == "function_call"]
    expect([item.name for item in calls] == ["get_weather"], f"output {short(response.output)}")
    arguments = json.loads(calls[0].arguments)
    expect(arguments == {"city": "Paris"}, f"arguments {short(arguments)}")
    others = [item.type for item in response.output if item.type != "function_call"]
    text = response.output_text
    extra = f" (+ {', '.join(others)} item, text {text!r})" if others else ""
    return "function_call get_weather {city: Paris}" + extra


def reached_function_output(sent: Sent) -> Verdict:
    messages = sent.chat.get("messages") or []
    if len(messages) < 2:
        return False, f"{len(messages)} message(s)"
    assistant, result = messages[-2], messages[-1]
    calls = assistant.get("tool_calls") or []
    good = (
        bool(calls)
        and (calls[0].get("function") or {}).get("arguments") == {"city": "Paris"}
        and result.get("role") == "tool"
    )
    return good, f"…{assistant.get('role')} ({len(calls)} call), {result.get('role')}"


@call("responses: function_call_output + previous_response_id", reached_function_output)
def responses_function_output(c: Context) -> str:
    first = c.client.responses.create(
        model=LIGHT,
        input=f'Use get_weather for "Paris". {c.marker}',
        tools=[RESPONSES_WEATHER_TOOL],
    )
    function_call = next(item for item in first.output if item.type == "function_call")
    second = c.client.responses.create(
        model=LIGHT,
        previous_response_id=first.id,
        input=[
            {
                "type": "function_call_output",
                "call_id": function_call.call_id,
                "output": f"Rainy {c.marker}",
            }
        ],
        tools=[RESPONSES_WEATHER_TOOL],
    )
    expect(
        second.output_text.startswith("Based on the tool result: Rainy"),
        f"text {short(second.output_text)}",
    )
    return "text from the function output"


# --- running the calls ------------------------------------------------------------------------


def first_sentence(text: str) -> str:
    """Up to the first full stop followed by a capital ("... model=x. To drop these...")."""
    match = re.search(r"\.\s+(?=[A-Z])", text)
    return text[: match.start()] if match else text


def error_cell(exc: Exception) -> str:
    """An SDK error as a short cell: status, param and message."""
    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else {}
        error = body.get("error", body) if isinstance(body.get("error", body), dict) else {}
        param = error.get("param") or getattr(exc, "param", None)
        message = error.get("message") or exc.message
        message = first_sentence(re.sub(r"\s+", " ", str(message)))
        return f"{exc.status_code}" + (f" param={param}" if param else "") + f": {message}"
    if isinstance(exc, openai.APITimeoutError):
        return f"timeout after {CALL_TIMEOUT:g} s"
    if isinstance(exc, openai.APIConnectionError):
        return f"connection error: {exc.__cause__ or exc}"
    return f"client error: {exc.__class__.__name__}: {exc}"


def run_call(target: Target, spec: Call, number: int, fake: FakeOllama) -> Outcome:
    if target.client is None:
        return Outcome(answer=target.missing, reached="")
    marker = f"cmp{number:02d}{target.name[:2]}{uuid.uuid4().hex[:8]}"
    fake.token_delay = 0.0
    started = time.monotonic()
    answer_ok: bool | None
    try:
        note = spec.run(Context(target.client, marker, fake))
        answer, answer_ok = f"ok: {note}", True
    except Wrong as exc:
        answer, answer_ok = f"WRONG: {exc}", False
    except (openai.OpenAIError, httpx.HTTPError) as exc:
        answer, answer_ok = error_cell(exc), False
    except (KeyError, IndexError, AttributeError, TypeError, ValueError, StopIteration) as exc:
        # An answer the SDK parsed but whose shape is not OpenAI's.
        where = traceback.extract_tb(exc.__traceback__)[-1]
        answer, answer_ok = (
            f"WRONG shape: {exc.__class__.__name__}: {exc} (line {where.lineno})",
            False,
        )
    finally:
        fake.token_delay = 0.0
    seconds = time.monotonic() - started
    sent = Sent(
        marker=marker,
        chats=[b for b in list(fake.requests) if marker in json.dumps(b, ensure_ascii=False)],
        embeds=[
            b for b in list(fake.embed_requests) if marker in json.dumps(b, ensure_ascii=False)
        ],
    )
    if not sent.chats and not sent.embeds:
        reached, reached_ok = "no request", None
    elif spec.sent is None:
        reached, reached_ok = "", None
    else:
        reached_ok, note = spec.sent(sent)
        reached = {True: "ok: ", False: "WRONG: ", None: ""}[reached_ok] + note
    return Outcome(
        answer=answer,
        reached=reached,
        answer_ok=answer_ok,
        reached_ok=reached_ok,
        seconds=seconds,
        details={
            "marker": marker,
            "sent_chat": sent.chats,
            "sent_embed": sent.embeds,
            "chat_requests": len(sent.chats),
            "embed_requests": len(sent.embeds),
        },
    )


def cell(text: str) -> str:
    text = re.sub(r"\s+", " ", text).replace("|", "\\|")
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"


def markdown_table(rows: list[tuple[str, Outcome, Outcome]]) -> str:
    lines = [
        "| call | this gateway | LiteLLM | reached Ollama: gateway | reached Ollama: LiteLLM |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, ours, theirs in rows:
        lines.append(
            f"| {cell(name)} | {cell(ours.answer)} | {cell(theirs.answer)} "
            f"| {cell(ours.reached)} | {cell(theirs.reached)} |"
        )
    return "\n".join(lines)


def tally(rows: list[tuple[str, Outcome, Outcome]], index: int) -> str:
    outcomes = [row[index] for row in rows]
    answers = sum(1 for o in outcomes if o.answer_ok)
    reached = sum(1 for o in outcomes if o.reached_ok)
    judged = sum(1 for o in outcomes if o.reached_ok is not None)
    return f"{answers}/{len(outcomes)} answers ok, {reached}/{judged} judged requests right"


# --- the stack ----------------------------------------------------------------------------


def gateway_env(fake_url: str, overrides: dict[str, str]) -> dict[str, str]:
    return {
        "OLLAMA_URL": fake_url,
        "VISION_MODELS": VISION_MODEL,
        "EMBEDDING_MODELS": EMBEDDING_MODEL,
        # Every call is a generation: no answer from the cache, no per-user caps.
        "CACHE_TTL_SECONDS": "0",
        "MAX_JOBS_IN_FLIGHT": "0",
        "RATE_LIMIT_USER_PER_MINUTE": "1000000",
        "WEB_CONCURRENCY": "2",
        "LLM_READ_TIMEOUT": "20",
        **overrides,
    }


def sdk(base: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=CALL_TIMEOUT)


def first_answer(client: openai.OpenAI, what: str, timeout: float = 90.0) -> None:
    """One chat answered end to end (the worker consumes, the proxy reaches the model)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.chat.completions.create(model=LIGHT, messages=user("warm-up"))
            return
        except openai.OpenAIError as exc:
            if time.monotonic() > deadline:
                raise StackError(f"{what}: no chat answered within {timeout:.0f} s: {exc}") from exc
            time.sleep(0.5)


def set_up(stack: Stack, fake: FakeOllama, args: argparse.Namespace) -> list[Target]:
    overrides = parse_overrides(args.set)
    env = gateway_env(fake.url, overrides)
    stack.prepare_storage(env)
    base = stack.start_gunicorn(env)
    stack.start_worker(4, env, queues="light,heavy")
    litellm: tuple[str, str] | None = None
    binary, missing = litellm_binary(args, log)
    if binary is not None:
        log("starting LiteLLM's proxy")
        litellm = start_litellm(stack, fake.url, binary, drop_params=args.litellm_drop_params)
        log(f"LiteLLM at {litellm[0]}")
    stack.wait_for_health(base, 60)
    log(f"gunicorn healthy at {base}")
    gateway = sdk(base, create_api_key(base, "compat bench"))
    first_answer(gateway, "the gateway")
    targets = [Target("gateway", gateway, about="this gateway")]
    if litellm:
        client = sdk(*litellm)
        first_answer(client, "LiteLLM")
        drop = "true" if args.litellm_drop_params else "false (its default)"
        about = f"LiteLLM {litellm_version(binary)}, drop_params {drop}"
        targets.append(Target("litellm", client, about=about))
    else:
        targets.append(Target("litellm", None, missing))
    fake.reset()
    return targets


def run_all(
    stack: Stack, targets: list[Target], fake: FakeOllama, only: re.Pattern[str] | None
) -> list[tuple[str, Outcome, Outcome]]:
    rows = []
    for number, spec in enumerate(CALLS, 1):
        if only and not only.search(spec.name):
            continue
        ours, theirs = (run_call(target, spec, number, fake) for target in targets)
        stack.check_alive()  # a server that went down would fail every call after
        log(f"{spec.name}: {short(ours.answer, 50)} | {short(theirs.answer, 50)}")
        rows.append((spec.name, ours, theirs))
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="run the calls whose name matches this regex")
    add_litellm_arguments(parser)
    parser.add_argument(
        "--litellm-drop-params",
        action="store_true",
        help="LiteLLM drops the parameters a provider does not take (default: a 400)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the gateway's API and worker",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--keep-logs", action="store_true", help="keep the process logs")
    args = parser.parse_args(argv)
    if any("=" not in item for item in args.set):
        parser.error("--set takes NAME=VALUE")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    only = re.compile(args.only) if args.only else None
    stack = Stack.create(STORAGE, log, "compat-bench-")
    fake = FakeOllama(host=HOST, port=0, vision_models=[VISION_MODEL])
    failed = False
    started = time.monotonic()
    targets: list[Target] = []
    try:
        fake.start()
        log(f"fake Ollama at {fake.url} (in this process)")
        try:
            targets = set_up(stack, fake, args)
        except STARTUP_ERRORS as exc:
            failed = True
            log(f"the stack did not come up: {exc}")
            return 2
        rows = run_all(stack, targets, fake, only)
    except StackError as exc:
        failed = True
        log(f"the stack went down: {exc}")
        return 2
    except KeyboardInterrupt:
        log("interrupted: stopping everything")
        return 130
    finally:
        # The stack first: its clean-up cannot be cut short by a second Ctrl-C or SIGTERM.
        stack.close(keep_logs=failed or args.keep_logs)
        for target in targets:
            if target.client is not None:
                target.client.close()
        fake.stop()
    elapsed = time.monotonic() - started
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "call": name,
                        **{
                            side: {
                                "answer": outcome.answer,
                                "answer_ok": outcome.answer_ok,
                                "reached_ollama": outcome.reached,
                                "reached_ok": outcome.reached_ok,
                                "seconds": round(outcome.seconds, 3),
                                **outcome.details,
                            }
                            for side, outcome in (("gateway", ours), ("litellm", theirs))
                        },
                    }
                    for name, ours, theirs in rows
                ],
                indent=2,
            )
        )
    else:
        print(markdown_table(rows))
        print()
        for index, target in enumerate(targets, 1):
            if target.client is not None:
                print(f"{target.about}: {tally(rows, index)}")
        print(f"openai SDK {openai.__version__}; {elapsed:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
