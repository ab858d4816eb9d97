"""What the workers send to an OpenAI-compatible model server."""

from __future__ import annotations

from langchain_core.messages import HumanMessage

from worker.providers import chat_model


def test_the_token_limit_reaches_servers_that_read_either_name(app):
    config = {**app.config, "LLM_PROVIDER": "openai", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    model = chat_model(config, "tiny", {"max_tokens": 7, "temperature": 0.2})

    payload = model._get_request_payload([HumanMessage(content="hi")])

    # OpenAI and vLLM read max_completion_tokens; llama.cpp's server reads max_tokens, which
    # the OpenAI client merges into the JSON body from extra_body.
    assert payload["max_completion_tokens"] == 7
    assert payload["extra_body"] == {"max_tokens": 7}
    assert payload["temperature"] == 0.2
