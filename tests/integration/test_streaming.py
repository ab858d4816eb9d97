"""Jobs, chat and their Server-Sent Events, end to end over real processes.

A real gunicorn server, real Celery workers (light: 4 threads, heavy: 1) and a fake Ollama on
a real socket; PostgreSQL and Redis are the machine's own. Every assertion is about what a
client sees: HTTP status codes and bodies, SSE events and headers, and what reached the model.
"""

from __future__ import annotations

import os
import time
from datetime import datetime

import redis

from tests.fakes.ollama import numbered_words, tokenize
from tests.integration.conftest import wait_for_status
from tests.sse_client import (
    SseEvent,
    names,
    parse_sse_lines,
    read_raw,
    sse_events,
    text_of,
    tokens,
)

DEFAULT_REPLY = numbered_words(20)  # "w0 w1 ... w19": the fake's answer unless told otherwise
LIGHT_MODEL = "llama3.2:3b"
HEAVY_MODEL = "qwen2.5:7b"
ENDED = {"succeeded", "failed", "cancelled"}
CODE_PROMPT = (
    "Find the bug in this Python function and fix it:\n"
    "```python\n"
    "def average(values):\n"
    "    total = 0\n"
    "    for i in range(len(values) - 1):\n"
    "        total += values[i]\n"
    "    return total / len(values)\n"
    "```"
)


# --- helpers ------------------------------------------------------------------------------


def submit(client, message: str, expect: int = 202, **fields) -> dict:
    response = client.post("/api/jobs/", json={"message": message, **fields})
    assert response.status_code == expect, response.text
    return response.json()


def finished(client, job_id: str, timeout: float = 30) -> dict:
    job = wait_for_status(lambda: client.job(job_id), ENDED, timeout=timeout)
    assert job["status"] in ENDED, f"job did not end in {timeout} s: {job}"
    return job


def succeeded(client, job_id: str, timeout: float = 30) -> dict:
    job = finished(client, job_id, timeout)
    assert job["status"] == "succeeded", job
    return job


def id_key(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq)


def assert_ids_increase(events: list[SseEvent]) -> None:
    assert all(e.id for e in events), [(e.event, e.id) for e in events]
    keys = [id_key(e.id) for e in events]
    assert keys == sorted(keys) and len(set(keys)) == len(keys), [e.id for e in events]


def stream_key(job_id: str) -> str:
    return os.environ["TEST_REDIS_KEY_PREFIX"] + f"job:{job_id}:events"


def fake_request_for(fake, message: str) -> dict:
    """The last chat request the fake got whose final user message is `message`."""
    for body in reversed(list(fake.requests)):
        users = [m for m in body.get("messages") or [] if m.get("role") == "user"]
        if users and users[-1].get("content") == message:
            return body
    raise AssertionError(f"the model never saw {message!r}: {fake.requests}")


def wait_for_stream(job_id: str, timeout: float = 15) -> None:
    client = redis.Redis.from_url(os.environ["TEST_REDIS_URL"])
    deadline = time.monotonic() + timeout
    while not client.exists(stream_key(job_id)):
        assert time.monotonic() < deadline, f"job {job_id} never started streaming"
        time.sleep(0.05)


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


# --- 1. submit and poll -------------------------------------------------------------------


def test_submit_returns_202_and_poll_reaches_succeeded(alice_http, fake_ollama):
    created = submit(alice_http, "hello there")

    assert created["status"] == "queued"
    job_id = created["id"]
    assert created["tier"] in {"light", "heavy"}
    assert created["model"] == {"light": LIGHT_MODEL, "heavy": HEAVY_MODEL}[created["tier"]]
    route = created["route"]
    assert route["tier"] == created["tier"]
    assert 0.0 <= route["score"] <= 1.0
    assert isinstance(route["reason"], str) and route["reason"]
    assert created["links"] == {
        "self": f"/api/jobs/{job_id}",
        "events": f"/api/jobs/{job_id}/events",
    }

    job = succeeded(alice_http, job_id)
    assert job["id"] == job_id
    assert job["output"] == DEFAULT_REPLY
    assert job["finish_reason"] == "stop"
    assert job["error"] is None
    assert job["attempts"] == 1
    assert job["message_id"]

    # Usage is the model server's own counts: prompt_eval_count is the fake's word count of
    # every message it received, eval_count the number of tokens it streamed.
    body = fake_request_for(fake_ollama, "hello there")
    prompt = sum(len(m["content"].split()) for m in body["messages"])
    assert job["usage"] == {
        "prompt_tokens": prompt,
        "completion_tokens": 20,
        "total_tokens": prompt + 20,
    }

    timings = job["timings"]
    moments = [
        parse_time(timings[name])
        for name in ("created_at", "started_at", "first_token_at", "finished_at")
    ]
    assert moments == sorted(moments), timings
    for name in ("queue_wait_ms", "ttft_ms", "duration_ms"):
        assert timings[name] is not None and timings[name] >= 0, timings


# --- 2. the SSE stream --------------------------------------------------------------------


def test_events_stream_start_tokens_done_with_increasing_ids(alice_http, fake_ollama):
    job_id = submit(alice_http, "hello there")["id"]

    response = alice_http.get(f"/api/jobs/{job_id}/events", stream=True)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no"
    events = sse_events(response)

    job = succeeded(alice_http, job_id)
    assert events[0].event == "start"
    assert {k: events[0].data[k] for k in ("job_id", "model", "tier")} == {
        "job_id": job_id,
        "model": job["model"],
        "tier": job["tier"],
    }
    assert names(events) == ["start"] + ["token"] * 20 + ["done"]
    assert tokens(events) == tokenize(DEFAULT_REPLY)
    assert text_of(events) == job["output"] == DEFAULT_REPLY
    done = events[-1].data
    assert done["message_id"] == job["message_id"]
    assert done["finish_reason"] == "stop"
    assert done["usage"] == {
        "prompt_tokens": job["usage"]["prompt_tokens"],
        "completion_tokens": job["usage"]["completion_tokens"],
    }
    assert_ids_increase(events)


def test_heartbeats_arrive_while_the_model_is_silent(alice_http, fake_ollama):
    # More than one heartbeat period (1 s) passes between `start` and the first token.
    fake_ollama.first_token_delay = 2.5
    fake_ollama.reply_tokens = 3
    job_id = submit(alice_http, "hello there")["id"]

    response = alice_http.get(f"/api/jobs/{job_id}/events", stream=True)
    assert response.status_code == 200
    events, comments = parse_sse_lines(read_raw(response))

    assert ": ping" in comments, comments
    assert names(events) == ["start", "token", "token", "token", "done"]
    assert text_of(events) == "w0 w1 w2"


# --- 3. Last-Event-ID ---------------------------------------------------------------------


def test_reconnect_with_last_event_id_resumes_without_loss_or_duplicates(alice_http, fake_ollama):
    fake_ollama.token_delay = 0.1
    fake_ollama.reply_tokens = 30
    job_id = submit(alice_http, "hello there")["id"]

    first = alice_http.events(job_id, stop_after=6)
    assert names(first) == ["start"] + ["token"] * 5, names(first)

    second = alice_http.events(job_id, last_event_id=first[-1].id)
    assert second, "nothing after reconnecting"
    assert id_key(second[0].id) > id_key(first[-1].id)
    union = first + second
    assert names(union) == ["start"] + ["token"] * 30 + ["done"]
    assert tokens(union) == tokenize(numbered_words(30))
    assert_ids_increase(union)
    assert text_of(union) == succeeded(alice_http, job_id)["output"] == numbered_words(30)

    # The query-string form of Last-Event-ID (for EventSource polyfills) resumes the same way.
    third = sse_events(
        alice_http.get(
            f"/api/jobs/{job_id}/events", params={"last_event_id": first[-1].id}, stream=True
        )
    )
    assert [e.id for e in third] == [e.id for e in second]


# --- 4. late subscribers and expired streams ----------------------------------------------


def test_late_subscriber_replays_and_expired_stream_is_rebuilt_from_database(
    alice_http, fake_ollama
):
    job_id = submit(alice_http, "hello there")["id"]
    job = succeeded(alice_http, job_id)

    replay = alice_http.events(job_id)
    assert names(replay) == ["start"] + ["token"] * 20 + ["done"]
    assert text_of(replay) == job["output"] == DEFAULT_REPLY
    assert_ids_increase(replay)
    real_done = replay[-1].data

    store = redis.Redis.from_url(os.environ["TEST_REDIS_URL"])
    assert store.delete(stream_key(job_id)) == 1, "the job's stream was not where expected"

    rebuilt = alice_http.events(job_id)
    assert names(rebuilt) == ["start", "token", "done"]
    assert all(e.id for e in rebuilt)
    assert {k: rebuilt[0].data[k] for k in ("job_id", "model", "tier")} == {
        "job_id": job_id,
        "model": job["model"],
        "tier": job["tier"],
    }
    assert rebuilt[1].data == {"text": job["output"]}
    assert rebuilt[2].data["message_id"] == job["message_id"] == real_done["message_id"]
    assert rebuilt[2].data["finish_reason"] == "stop"
    assert rebuilt[2].data["usage"] == real_done["usage"]

    # A client that saw part of the vanished stream is told to start over.
    resumed = alice_http.events(job_id, last_event_id=replay[5].id)
    assert names(resumed) == ["reset", "start", "token", "done"]
    assert text_of(resumed) == job["output"]

    # A client that saw part of the rebuilt stream continues after it.
    rest = alice_http.events(job_id, last_event_id=rebuilt[1].id)
    assert names(rest) == ["done"]


# --- 5. early subscribers -----------------------------------------------------------------


def test_client_connected_before_the_worker_starts_gets_every_token(alice_http, fake_ollama):
    # The heavy pool has one slot: while a first heavy job runs, a second one waits in the
    # queue, and its client connects before any worker has touched it.
    fake_ollama.token_delay = 0.08
    fake_ollama.reply_fn = lambda body: numbered_words(
        40 if "occupy" in body["messages"][-1]["content"] else 20
    )
    blocker = submit(alice_http, "occupy the heavy worker", model="heavy")
    wait_for_stream(blocker["id"])
    waiting = submit(alice_http, "hello there", model="heavy")
    assert alice_http.job(waiting["id"])["status"] == "queued"

    response = alice_http.get(f"/api/jobs/{waiting['id']}/events", stream=True)
    assert response.status_code == 200
    assert alice_http.job(waiting["id"])["status"] == "queued"  # still not started
    events = sse_events(response)

    assert names(events) == ["start"] + ["token"] * 20 + ["done"]
    assert tokens(events) == tokenize(DEFAULT_REPLY)
    assert text_of(events) == succeeded(alice_http, waiting["id"])["output"]
    succeeded(alice_http, blocker["id"])


def test_client_connecting_right_after_submit_gets_every_token(alice_http, fake_ollama):
    fake_ollama.first_token_delay = 0.5
    job_id = submit(alice_http, "hello there")["id"]
    events = alice_http.events(job_id)

    assert names(events) == ["start"] + ["token"] * 20 + ["done"]
    assert text_of(events) == succeeded(alice_http, job_id)["output"] == DEFAULT_REPLY


# --- 6. tools -----------------------------------------------------------------------------


def test_search_request_streams_tool_call_and_result_before_the_answer(alice_http, fake_ollama):
    message = "please search the web for the tallest building"
    job_id = submit(alice_http, message)["id"]
    events = alice_http.events(job_id)
    job = succeeded(alice_http, job_id)

    order = names(events)
    assert order[0] == "start" and order[-1] == "done"
    assert "tool_call" in order and "tool_result" in order, order
    call = events[order.index("tool_call")]
    result = events[order.index("tool_result")]
    assert call.data["name"] == "web_search"
    assert call.data["arguments"] == {"query": message}
    assert result.data["name"] == "web_search"
    assert "FACT-FROM-SEARCH" in result.data["content"]
    assert order.index("tool_call") < order.index("tool_result") < order.index("token")
    assert "token" not in order[: order.index("tool_result")]
    assert text_of(events) == job["output"]
    assert job["output"].startswith("Based on the tool result:")
    assert_ids_increase(events)

    bodies = [b for b in fake_ollama.requests if b["messages"][-1].get("content") == message]
    assert len(bodies) == 1 and bodies[0].get("tools"), "the first request offered no tools"
    follow_up = fake_ollama.requests[fake_ollama.requests.index(bodies[0]) + 1]
    tool_messages = [m for m in follow_up["messages"] if m.get("role") == "tool"]
    assert len(tool_messages) == 1
    assert "FACT-FROM-SEARCH" in tool_messages[0]["content"]


def test_tools_false_sends_no_tools_and_streams_no_tool_events(alice_http, fake_ollama):
    message = "please search the web for the tallest building"
    job_id = submit(alice_http, message, tools=False)["id"]
    events = alice_http.events(job_id)
    job = succeeded(alice_http, job_id)

    assert "tool_call" not in names(events) and "tool_result" not in names(events)
    assert names(events) == ["start"] + ["token"] * 20 + ["done"]
    assert text_of(events) == job["output"] == DEFAULT_REPLY
    assert len(fake_ollama.requests) == 1
    assert not fake_ollama.requests[0].get("tools")


# --- 7. conversations ---------------------------------------------------------------------


def test_jobs_build_a_conversation_and_send_its_history(alice_http, fake_ollama):
    def answer(body: dict) -> str:
        last = body["messages"][-1]["content"]
        return f"reply to {last}"

    fake_ollama.reply_fn = answer
    first_message = "Tell me something nice about cats"
    first = submit(alice_http, first_message)
    conversation_id = first["conversation_id"]
    assert conversation_id

    early = alice_http.get(f"/api/conversations/{conversation_id}")
    assert early.status_code == 200, early.text
    assert early.json()["title"] == first_message
    assert early.json()["messages"][0]["role"] == "user"
    assert early.json()["messages"][0]["content"] == first_message

    job1 = succeeded(alice_http, first["id"])
    assert job1["output"] == f"reply to {first_message}"
    messages = alice_http.get(f"/api/conversations/{conversation_id}").json()["messages"]
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", first_message),
        ("assistant", job1["output"]),
    ]
    assistant = messages[1]
    assert assistant["id"] == job1["message_id"]
    assert (assistant["model"], assistant["tier"]) == (job1["model"], job1["tier"])
    assert assistant["prompt_tokens"] == job1["usage"]["prompt_tokens"]
    assert assistant["completion_tokens"] == job1["usage"]["completion_tokens"]

    second_message = "And about dogs"
    second = submit(alice_http, second_message, conversation_id=conversation_id)
    assert second["conversation_id"] == conversation_id
    job2 = succeeded(alice_http, second["id"])

    sent = fake_ollama.last_request["messages"]
    assert [(m["role"], m["content"]) for m in sent[1:]] == [
        ("user", first_message),
        ("assistant", job1["output"]),
        ("user", second_message),
    ]
    assert sent[0]["role"] == "system"

    detail = alice_http.get(f"/api/conversations/{conversation_id}").json()
    assert detail["title"] == first_message
    assert [(m["role"], m["content"]) for m in detail["messages"]] == [
        ("user", first_message),
        ("assistant", job1["output"]),
        ("user", second_message),
        ("assistant", f"reply to {second_message}"),
    ]
    assert detail["messages"][3]["id"] == job2["message_id"]


# --- 8. POST /api/chat/ -------------------------------------------------------------------


def test_chat_waits_and_answers(alice_http, fake_ollama):
    response = alice_http.post("/api/chat/", json={"message": "hello there"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) >= {
        "conversation_id",
        "message_id",
        "content",
        "model",
        "tier",
        "route",
        "usage",
        "job_id",
    }
    assert body["content"] == DEFAULT_REPLY
    assert body["route"]["tier"] == body["tier"]
    assert body["model"] == {"light": LIGHT_MODEL, "heavy": HEAVY_MODEL}[body["tier"]]
    assert body["usage"]["completion_tokens"] == 20
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]

    job = alice_http.job(body["job_id"])
    assert job["status"] == "succeeded"
    assert job["output"] == body["content"]
    assert job["message_id"] == body["message_id"]
    assert job["conversation_id"] == body["conversation_id"]


def test_chat_past_its_wait_answers_504_and_the_job_goes_on(alice_http, fake_ollama):
    # About 6.3 s of generation: past CHAT_WAIT_SECONDS (5), inside JOB_SOFT_TIME_LIMIT (8).
    fake_ollama.token_delay = 0.3
    fake_ollama.reply_tokens = 21
    response = alice_http.post("/api/chat/", json={"message": "hello there"})

    assert response.status_code == 504, response.text
    error = response.json()["error"]
    assert error["code"] == "answer_timeout"
    assert error["message"]
    assert error["request_id"] == response.headers.get("X-Request-ID")
    job_id = error["details"]["job_id"]

    job = succeeded(alice_http, job_id)
    assert job["output"] == numbered_words(21)


def test_chat_with_failing_model_answers_502_with_the_job_error(alice_http, fake_ollama):
    fake_ollama.mode = "error"
    response = alice_http.post("/api/chat/", json={"message": "hello there"})

    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == "model_error"
    assert error["request_id"]
    job_id = error["details"]["job_id"]

    job = alice_http.job(job_id)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "model_error"
    assert job["message_id"] is None

    # Its event stream ends in `error`, never in a normal `done`.
    events = alice_http.events(job_id)
    assert names(events) == ["start", "error"]
    assert events[-1].data["error"]["code"] == "model_error"


# --- 9. POST /api/chat/stream -------------------------------------------------------------


def test_chat_stream_relays_the_new_jobs_events(alice_http, fake_ollama):
    response = alice_http.post("/api/chat/stream", json={"message": "hello there"}, stream=True)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.headers["Cache-Control"] == "no-cache"
    job_id = response.headers["X-Job-ID"]
    events = sse_events(response)

    assert names(events) == ["start"] + ["token"] * 20 + ["done"]
    assert events[0].data["job_id"] == job_id
    job = succeeded(alice_http, job_id)
    assert text_of(events) == job["output"] == DEFAULT_REPLY
    assert events[-1].data["message_id"] == job["message_id"]
    assert_ids_increase(events)


# --- 10. routing --------------------------------------------------------------------------


def _routed(client, fake, workers, message: str, tier: str, **fields) -> None:
    created = submit(client, message, **fields)
    model = {"light": LIGHT_MODEL, "heavy": HEAVY_MODEL}[tier]
    assert (created["tier"], created["model"], created["route"]["tier"]) == (tier, model, tier)
    job = succeeded(client, created["id"])
    assert job["output"] == DEFAULT_REPLY

    ran_on = workers.light if tier == "light" else workers.heavy
    other = workers.heavy if tier == "light" else workers.light
    assert created["id"] in ran_on.jobs_run(), f"{tier} worker did not run {created['id']}"
    assert created["id"] not in other.jobs_run()
    assert fake_request_for(fake, message)["model"] == model


def test_short_greeting_runs_on_the_light_tier(alice_http, fake_ollama, workers):
    _routed(alice_http, fake_ollama, workers, "hi! how are you?", "light")


def test_code_prompt_runs_on_the_heavy_tier(alice_http, fake_ollama, workers):
    _routed(alice_http, fake_ollama, workers, CODE_PROMPT, "heavy")


def test_model_heavy_forces_the_heavy_tier(alice_http, fake_ollama, workers):
    _routed(alice_http, fake_ollama, workers, "hi there, friend", "heavy", model="heavy")


def test_light_model_name_forces_the_light_tier(alice_http, fake_ollama, workers):
    _routed(alice_http, fake_ollama, workers, CODE_PROMPT + "\n(light)", "light", model=LIGHT_MODEL)
