"""What the workers send to an OpenAI-compatible model server."""

from __future__ import annotations

from langchain_core.messages import HumanMessage

from tests.helpers import settings_with
from worker.providers import chat_model, with_client_tools


def test_the_token_limit_reaches_servers_that_read_either_name(app):
    config = settings_with(
        app, LLM_PROVIDER="openai", OPENAI_BASE_URL="http://127.0.0.1:9/v1"
    ).models
    model = chat_model(config, "tiny", {"max_tokens": 7, "temperature": 0.2})

    payload = model._get_request_payload([HumanMessage(content="hi")])

    # OpenAI and vLLM read max_completion_tokens; llama.cpp's server reads max_tokens, which
    # the OpenAI client merges into the JSON body from extra_body.
    assert payload["max_completion_tokens"] == 7
    assert payload["extra_body"] == {"max_tokens": 7}
    assert payload["temperature"] == 0.2


def test_a_clients_nested_tool_schema_reaches_ollama_whole(app):
    """The ollama client would drop all but a few keys of each property (see providers)."""
    from tests.fakes.ollama import FakeOllama

    parameters = {
        "type": "object",
        "properties": {
            "place": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
                "required": ["city"],
            },
            "days": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}]},
        },
        "required": ["place"],
        "additionalProperties": False,
    }
    tool = {"type": "function", "function": {"name": "forecast", "parameters": parameters}}
    with FakeOllama() as fake:
        config = settings_with(app, LLM_PROVIDER="ollama", OLLAMA_URL=fake.url).models
        params = {"max_tokens": 5, "client_tools": [tool]}
        model = with_client_tools(config, chat_model(config, "llama3.2:3b", params), params)
        model.invoke([HumanMessage(content="hi")])

        assert fake.last_request["tools"] == [tool]


def test_openai_compatible_servers_get_every_option_by_its_openai_name(app):
    config = settings_with(
        app, LLM_PROVIDER="openai", OPENAI_BASE_URL="http://127.0.0.1:9/v1"
    ).models
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    response_format = {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}
    params = {
        "max_tokens": 9,
        "temperature": 0.1,
        "top_p": 0.5,
        "seed": 3,
        "stop": ["END"],
        "presence_penalty": 0.2,
        "frequency_penalty": 0.3,
        "logprobs": True,
        "top_logprobs": 2,
        "logit_bias": {"42": -100},
        "response_format": response_format,
        "client_tools": [tool],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "parallel_tool_calls": False,
    }
    model = with_client_tools(config, chat_model(config, "tiny", params), params)

    payload = model.bound._get_request_payload([HumanMessage(content="hi")], **model.kwargs)

    assert payload["tools"] == [tool]
    assert payload["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert payload["parallel_tool_calls"] is False
    assert payload["response_format"] == response_format
    assert payload["logit_bias"] == {42: -100}  # JSON has string keys either way
    expected = {"top_p": 0.5, "seed": 3, "stop": ["END"], "logprobs": True, "top_logprobs": 2}
    assert {name: payload[name] for name in expected} == expected
    assert (payload["presence_penalty"], payload["frequency_penalty"]) == (0.2, 0.3)


def test_ollama_gets_the_penalties_as_options_and_the_schema_as_format(app):
    config = settings_with(app, LLM_PROVIDER="ollama").models
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    params = {
        "max_tokens": 9,
        "presence_penalty": 0.2,
        "frequency_penalty": -0.3,
        "stop": ["END"],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    }
    model = chat_model(config, "llama3.2:3b", params)

    sent = model._chat_params([HumanMessage(content="hi")])

    assert sent["format"] == schema
    assert sent["options"] == {
        "num_predict": 9,
        "stop": ["END"],
        "presence_penalty": 0.2,
        "frequency_penalty": -0.3,
    }
    json_mode = chat_model(
        config, "m", {"max_tokens": 1, "response_format": {"type": "json_object"}}
    )
    assert json_mode._chat_params([HumanMessage(content="hi")])["format"] == "json"
