"""OpenAI's Responses API (/v1/responses) on the job pipeline, with the official `openai`
SDK against the live stack: plain and streamed answers, instructions and chaining,
function tools, structured output, background responses polled, resumed after a dropped
stream and cancelled, and the error contract."""

from __future__ import annotations

import json
import time
import uuid

import openai
import pytest

from tests.fakes.ollama import numbered_words, tokenize
from tests.integration.conftest import wait_for_status
from tests.integration.openai_client import requests_mentioning, the_model_request, unique

pytestmark = pytest.mark.live

DEFAULT_REPLY = numbered_words(20)
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def job_id_of(response_id: str) -> str:
    assert response_id.startswith("resp_"), response_id
    return str(uuid.UUID(response_id.removeprefix("resp_")))


def test_a_response_answers_the_input_with_usage(alice_http, alice_sdk, fake_ollama):
    marker = unique("responses")

    response = alice_sdk.responses.create(model="light", input=marker)

    assert response.status == "completed"
    assert response.output_text == DEFAULT_REPLY
    [item] = response.output
    assert (item.type, item.role, item.status) == ("message", "assistant", "completed")
    assert response.usage.output_tokens == 20
    assert response.usage.total_tokens == response.usage.input_tokens + 20
    assert response.model == "llama3.2:3b"
    job = alice_http.job(job_id_of(response.id))
    assert (job["status"], job["conversation_id"]) == ("succeeded", None)
    sent = the_model_request(fake_ollama, marker)["messages"]
    assert sent[-1] == {"role": "user", "content": marker}


def test_instructions_and_a_chain_of_responses(alice_sdk, fake_ollama):
    first_question = unique("first")
    first = alice_sdk.responses.create(
        model="light", input=first_question, instructions="Answer like a pirate."
    )
    assert first.instructions == "Answer like a pirate."
    sent = the_model_request(fake_ollama, first_question)["messages"]
    assert sent[0] == {"role": "system", "content": "Answer like a pirate."}

    second_question = unique("second")
    second = alice_sdk.responses.create(
        model="light",
        input=[{"role": "user", "content": [{"type": "input_text", "text": second_question}]}],
        previous_response_id=first.id,
        instructions="Answer like a poet.",
    )

    assert second.previous_response_id == first.id
    sent = the_model_request(fake_ollama, second_question)["messages"]
    # The previous turns and answer come along; its instructions do not (as OpenAI's).
    assert [(m["role"], m["content"]) for m in sent] == [
        ("system", "Answer like a poet."),
        ("user", first_question),
        ("assistant", DEFAULT_REPLY),
        ("user", second_question),
    ]


def test_a_streamed_response_has_openais_events_numbered_in_order(alice_sdk, fake_ollama):
    marker = unique("stream")

    events = list(alice_sdk.responses.create(model="light", input=marker, stream=True))

    assert [e.sequence_number for e in events] == list(range(len(events)))
    types = [e.type for e in events]
    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert deltas == tokenize(DEFAULT_REPLY)
    assert events[-1].response.output_text == DEFAULT_REPLY
    assert events[-1].response.status == "completed"
    assert events[-1].response.usage.output_tokens == 20
    item_ids = {e.item_id for e in events if e.type == "response.output_text.delta"}
    assert item_ids == {events[-1].response.output[0].id}


def test_function_tools_round_trip_through_previous_response_id(alice_sdk, fake_ollama):
    marker = unique("weather")
    question = f'Use get_weather for "Paris". {marker}'

    first = alice_sdk.responses.create(model="light", input=question, tools=[WEATHER_TOOL])

    [call] = first.output
    assert call.type == "function_call"
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"}
    sent = the_model_request(fake_ollama, marker)
    assert sent["tools"][0]["function"]["name"] == "get_weather"

    second = alice_sdk.responses.create(
        model="light",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Rainy"}],
        tools=[WEATHER_TOOL],
    )

    assert second.output_text == "Based on the tool result: Rainy"
    last = requests_mentioning(fake_ollama, "Rainy")[-1]["messages"]
    assert last[-2]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert (last[-1]["role"], last[-1]["content"]) == ("tool", "Rainy")


def test_streamed_function_calls_come_as_argument_events(alice_sdk, fake_ollama):
    question = f'Use get_weather for "Rome". {unique("streamed weather")}'

    events = list(
        alice_sdk.responses.create(model="light", input=question, tools=[WEATHER_TOOL], stream=True)
    )

    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert [json.loads(e.arguments) for e in done] == [{"city": "Rome"}]
    final = events[-1].response
    assert final.output[0].type == "function_call"
    assert final.output[0].call_id


def test_the_built_in_web_search_tool_is_the_gateways_own_where_enabled(alice_sdk, fake_ollama):
    question = unique("please search the web for otters")

    response = alice_sdk.responses.create(
        model="qwen2.5:7b", input=question, tools=[{"type": "web_search"}]
    )

    # The worker ran the search: the model got its result and answered from it.
    assert response.output_text.startswith("Based on the tool result:")
    sent = requests_mentioning(fake_ollama, question)
    assert [t["function"]["name"] for t in sent[0]["tools"]] == ["web_search"]
    assert sent[-1]["messages"][-1]["role"] == "tool"

    with pytest.raises(openai.BadRequestError) as caught:
        alice_sdk.responses.create(
            model="qwen2.5:7b", input=question, tools=[{"type": "web_search"}, WEATHER_TOOL]
        )
    assert caught.value.param == "tools.0.type"
    assert "cannot be combined" in caught.value.message


def test_structured_output_with_a_json_schema_text_format(alice_sdk, fake_ollama):
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
        "additionalProperties": False,
    }

    response = alice_sdk.responses.create(
        model="light",
        input=f'The city "Lyon" has 522000 people. {unique("schema")}',
        text={"format": {"type": "json_schema", "name": "city", "schema": schema, "strict": True}},
    )

    assert json.loads(response.output_text) == {"city": "Lyon", "population": 522000}
    assert response.text.format.type == "json_schema"


def test_a_response_cut_by_max_output_tokens_is_incomplete(alice_sdk, fake_ollama):
    response = alice_sdk.responses.create(model="light", input=unique("short"), max_output_tokens=3)

    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "w0 w1 w2"


def test_background_responses_return_at_once_and_are_polled(alice_sdk, fake_ollama):
    fake_ollama.token_delay = 0.05  # about a second of generation

    started = time.monotonic()
    response = alice_sdk.responses.create(model="light", input=unique("later"), background=True)

    assert time.monotonic() - started < 1.0
    assert response.status == "queued"
    assert response.background is True
    assert response.output == []
    deadline = time.monotonic() + 15
    while response.status in ("queued", "in_progress") and time.monotonic() < deadline:
        time.sleep(0.1)
        response = alice_sdk.responses.retrieve(response.id)
    assert response.status == "completed"
    assert response.output_text == DEFAULT_REPLY


def test_a_dropped_stream_resumes_after_its_last_sequence_number(alice_sdk, fake_ollama):
    fake_ollama.token_delay = 0.05
    response = alice_sdk.responses.create(model="light", input=unique("resume"), background=True)

    seen = []
    stream = alice_sdk.responses.retrieve(response.id, stream=True)
    for event in stream:
        seen.append(event)
        if sum(e.type == "response.output_text.delta" for e in seen) == 5:
            break
    stream.close()  # the connection drops mid-answer

    rest = list(
        alice_sdk.responses.retrieve(
            response.id, stream=True, starting_after=seen[-1].sequence_number
        )
    )

    numbers = [e.sequence_number for e in seen + rest]
    assert numbers == list(range(len(numbers)))
    text = "".join(e.delta for e in seen + rest if e.type == "response.output_text.delta")
    assert text == DEFAULT_REPLY
    assert rest[-1].type == "response.completed"

    # The whole stream again, once it has ended, numbers the same events the same way.
    again = list(alice_sdk.responses.retrieve(response.id, stream=True))
    assert [(e.sequence_number, e.type) for e in again] == [
        (e.sequence_number, e.type) for e in seen + rest
    ]


def test_a_background_response_is_cancelled_with_its_text_so_far(
    alice_http, alice_sdk, fake_ollama
):
    fake_ollama.token_delay = 0.2  # four seconds of generation
    response = alice_sdk.responses.create(model="light", input=unique("stop"), background=True)
    job_id = job_id_of(response.id)
    wait_for_status(lambda: alice_http.job(job_id), {"running"})
    time.sleep(0.5)

    cancelled = alice_sdk.responses.cancel(response.id)

    assert cancelled.status == "cancelled"
    assert alice_http.job(job_id)["status"] == "cancelled"
    events = list(alice_sdk.responses.retrieve(response.id, stream=True))
    assert events[-1].type == "response.failed"
    assert events[-1].response.status == "cancelled"
    assert alice_sdk.responses.retrieve(response.id).status == "cancelled"
    # Cancelling again is harmless.
    assert alice_sdk.responses.cancel(response.id).status == "cancelled"


def test_the_error_contract(live, alice_http, alice_sdk, bob_http, fake_ollama):
    plain = alice_sdk.responses.create(model="light", input=unique("not background"))

    with pytest.raises(openai.BadRequestError) as caught:
        alice_sdk.responses.cancel(plain.id)
    assert "background" in caught.value.message

    with pytest.raises(openai.NotFoundError) as caught:
        alice_sdk.responses.create(
            model="light", input="hi", previous_response_id="resp_" + uuid.uuid4().hex
        )
    assert caught.value.param == "previous_response_id"

    # Someone else's response, a chat completion's job and a malformed id are all 404.
    from tests.integration.openai_client import create_api_key, sdk

    bob = sdk(live, create_api_key(bob_http)["key"])
    for response_id in (plain.id, "resp_nothing", "chatcmpl-" + uuid.uuid4().hex):
        with pytest.raises(openai.NotFoundError):
            bob.responses.retrieve(response_id)
    completion = alice_sdk.chat.completions.create(
        model="light", messages=[{"role": "user", "content": unique("chat")}]
    )
    with pytest.raises(openai.NotFoundError):
        alice_sdk.responses.retrieve("resp_" + completion.id.removeprefix("chatcmpl-"))
    with pytest.raises(openai.NotFoundError):
        bob.responses.create(model="light", input="hi", previous_response_id=plain.id)

    refused = {
        # Web search is enabled for the heavy model only (OPENAI_WEB_SEARCH_MODELS).
        "tools.0.type": {"tools": [{"type": "web_search_preview"}]},
        "conversation": {"conversation": "conv_1"},
        "input.0.type": {"input": [{"type": "reasoning", "summary": []}]},
        "model": {"model": "gpt-9"},
    }
    for param, fields in refused.items():
        with pytest.raises((openai.BadRequestError, openai.NotFoundError)) as caught:
            alice_sdk.responses.create(**{"model": "light", "input": "hi", **fields})
        assert caught.value.param in (param, None if param == "model" else param), caught.value
    bob.close()
