"""The response cache and single flight, end to end over real processes.

A real gunicorn server, real Celery workers and a fake Ollama on a real socket. What is
checked is what a client sees (status codes, bodies, X-Cache headers, SSE events, the
conversation) and what reached the model server (how many generations a request cost).
Every test asks its own uuid-marked questions, so no two tests share a cache entry.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import select

from api import create_app
from config.settings import TestingConfig
from core.db import db
from core.models import UsageRecord
from pipeline.streams import stream_key
from tests.conftest import PASSWORD, start_gunicorn, stop_gunicorn
from tests.fakes.ollama import DEFAULT_MODELS, numbered_words
from tests.helpers import register_over_http
from tests.integration.conftest import Client, wait_for_status
from tests.sse_client import SseEvent, names, sse_events, text_of, tokens

pytestmark = pytest.mark.live

ENDED = {"succeeded", "failed", "cancelled"}
LIGHT_MODEL, HEAVY_MODEL = DEFAULT_MODELS
DEFAULT_REPLY = numbered_words(20)  # the fake model's answer unless told otherwise
DEFAULT_MAX_TOKENS = TestingConfig().DEFAULT_MAX_TOKENS


# --- helpers -----------------------------------------------------------------------------


def unique(label: str) -> str:
    return f"{label} marker {uuid.uuid4().hex}"


def requests_mentioning(fake, text: str) -> list[dict]:
    """The chat requests the model server received whose body contains `text`."""
    return [body for body in list(fake.requests) if text in json.dumps(body, ensure_ascii=False)]


class NumberedReplies:
    """A reply_fn for the fake model: every generation answers differently ("answer N ...")."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def __call__(self, request: dict) -> str:
        with self._lock:
            n = next(self._counter)
        return f"answer {n} from the model"


def chat(client: Client, body: dict, headers: dict | None = None) -> requests.Response:
    response = client.post("/api/chat/", json=body, headers=headers or {})
    assert response.status_code == 200, response.text
    return response


def submit(client: Client, body: dict, headers: dict | None = None) -> requests.Response:
    response = client.post("/api/jobs/", json=body, headers=headers or {})
    assert response.status_code == 202, response.text
    return response


def ended(client: Client, job_id: str, timeout: float = 20) -> dict:
    job = wait_for_status(lambda: client.job(job_id), ENDED, timeout=timeout)
    assert job["status"] in ENDED, f"job did not end in {timeout} s: {job}"
    return job


def succeeded(client: Client, job_id: str, timeout: float = 20) -> dict:
    job = ended(client, job_id, timeout)
    assert job["status"] == "succeeded", job
    return job


def conversation_messages(client: Client, conversation_id: str) -> list[dict]:
    response = client.get(f"/api/conversations/{conversation_id}")
    assert response.status_code == 200, response.text
    return response.json()["messages"]


def assert_hit(response: requests.Response) -> dict:
    assert response.headers.get("X-Cache") == "HIT", (response.headers, response.text)
    body = response.json()
    assert body["cached"] is True, body
    return body


def assert_miss(response: requests.Response) -> dict:
    assert response.headers.get("X-Cache") == "MISS", (response.headers, response.text)
    body = response.json()
    assert body["cached"] is False, body
    return body


def assert_replayed_answer(events: list[SseEvent], job: dict) -> None:
    """A job's stream tells the whole answer: start, its tokens, done with its message."""
    assert events, "no SSE events"
    assert names(events)[0] == "start", names(events)
    assert names(events)[-1] == "done", names(events)
    assert text_of(events) == job["output"], (events, job)
    assert events[-1].data["message_id"] == job["message_id"], (events[-1], job)


def wait_for_model_requests(fake, marker: str, count: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while len(requests_mentioning(fake, marker)) < count:
        assert time.monotonic() < deadline, f"the model never got {count} requests for {marker}"
        time.sleep(0.02)


def usage_rows(app, job_ids: list[str]) -> dict[str, UsageRecord]:
    with app.app_context():
        query = select(UsageRecord).where(UsageRecord.job_id.in_([uuid.UUID(j) for j in job_ids]))
        rows = db.session.scalars(query).all()
        db.session.expunge_all()
    return {str(row.job_id): row for row in rows}


# --- 1. POST /api/chat/: a repeated question is answered without the model ------------------


def test_identical_chat_is_answered_from_the_cache(alice_http, fake_ollama):
    marker = unique("what is a cache")
    first = chat(alice_http, {"message": marker})
    original = assert_miss(first)
    assert original["content"] == DEFAULT_REPLY

    second = chat(alice_http, {"message": marker})

    hit = assert_hit(second)
    assert hit["content"] == original["content"]
    assert (hit["model"], hit["tier"]) == (original["model"], original["tier"])
    assert hit["usage"] == original["usage"]
    assert hit["job_id"] != original["job_id"]
    assert hit["message_id"] and hit["message_id"] != original["message_id"]
    assert len(requests_mentioning(fake_ollama, marker)) == 1
    job = alice_http.job(hit["job_id"])
    assert (job["status"], job["cached"], job["output"]) == ("succeeded", True, hit["content"])


# --- 2. POST /api/jobs/ and POST /api/chat/stream: a hit is a finished job that replays -----


def test_job_hit_is_already_succeeded_and_its_stream_replays_the_chunks(alice_http, fake_ollama):
    marker = unique("replay me")
    first = submit(alice_http, {"message": marker})
    assert first.headers.get("X-Cache") == "MISS", first.headers
    assert first.json()["cached"] is False
    original = succeeded(alice_http, first.json()["id"])
    original_events = alice_http.events(original["id"])
    original_tokens = tokens(original_events)
    assert len(original_tokens) == 20 and "".join(original_tokens) == original["output"]

    response = submit(alice_http, {"message": marker})

    hit = assert_hit(response)
    assert hit["id"] != original["id"]
    assert hit["status"] == "succeeded"
    assert hit["output"] == original["output"]
    assert hit["usage"] == original["usage"]
    assert hit["message_id"] and hit["message_id"] != original["message_id"]
    assert alice_http.job(hit["id"])["status"] == "succeeded"

    events = alice_http.events(hit["id"])
    assert names(events) == ["start"] + ["token"] * len(original_tokens) + ["done"], names(events)
    assert tokens(events) == original_tokens
    assert events[0].data["cached"] is True
    assert events[-1].data["cached"] is True
    assert events[0].data["job_id"] == hit["id"]
    assert_replayed_answer(events, hit)
    assert events[-1].data["usage"] == {
        "prompt_tokens": hit["usage"]["prompt_tokens"],
        "completion_tokens": hit["usage"]["completion_tokens"],
    }

    streamed = alice_http.post("/api/chat/stream", json={"message": marker}, stream=True)
    assert streamed.status_code == 200, streamed.text
    assert streamed.headers["Content-Type"].startswith("text/event-stream")
    assert streamed.headers.get("X-Cache") == "HIT", streamed.headers
    job_id = streamed.headers["X-Job-ID"]
    stream_events = sse_events(streamed)
    assert names(stream_events) == ["start"] + ["token"] * 20 + ["done"], names(stream_events)
    assert tokens(stream_events) == original_tokens
    assert stream_events[0].data["cached"] is True
    streamed_job = alice_http.job(job_id)
    assert (streamed_job["status"], streamed_job["cached"]) == ("succeeded", True)
    assert_replayed_answer(stream_events, streamed_job)

    assert len(requests_mentioning(fake_ollama, marker)) == 1


# --- 3. the key: whatever changes the model's input is a miss; another user shares -----------


def test_only_identical_model_input_is_a_hit(alice_http, bob_http, fake_ollama):
    fake_ollama.reply_fn = NumberedReplies()
    marker = unique("key sensitivity")
    base = {"message": marker, "model": "light"}
    original = assert_miss(chat(alice_http, base))
    calls = 1

    answers: dict[str, str] = {}
    for name, change in {
        "heavy tier": {"model": "heavy"},
        "max_tokens": {"max_tokens": 3},
        "temperature": {"temperature": 0.3},
        "no tools": {"tools": False},
    }.items():
        body = assert_miss(chat(alice_http, {**base, **change}))
        calls += 1
        assert len(requests_mentioning(fake_ollama, marker)) == calls, name
        assert body["content"] != original["content"], name
        answers[name] = body["content"]

    # Each variant was cached under its own key.
    again = assert_hit(chat(alice_http, {**base, "max_tokens": 3}))
    assert again["content"] == answers["max_tokens"]
    heavy = assert_hit(chat(alice_http, {**base, "model": HEAVY_MODEL}))
    assert (heavy["content"], heavy["tier"]) == (answers["heavy tier"], "heavy")

    # The same model input spelled differently is the same request.
    for same in ({"model": LIGHT_MODEL}, {"max_tokens": DEFAULT_MAX_TOKENS}):
        body = assert_hit(chat(alice_http, {**base, **same}))
        assert body["content"] == original["content"], same

    # A conversation with history sends that history to the model: another request.
    earlier = chat(alice_http, {"message": unique("an earlier turn")}).json()
    calls_before = len(requests_mentioning(fake_ollama, marker))
    in_context = assert_miss(
        chat(alice_http, {**base, "conversation_id": earlier["conversation_id"]})
    )
    assert in_context["content"] != original["content"]
    assert len(requests_mentioning(fake_ollama, marker)) == calls_before + 1
    # An empty conversation sends nothing more: the same request.
    empty = alice_http.post("/api/conversations/", json={"title": "empty"})
    assert empty.status_code == 201, empty.text
    fresh = assert_hit(chat(alice_http, {**base, "conversation_id": empty.json()["id"]}))
    assert fresh["content"] == original["content"]
    assert fresh["conversation_id"] == empty.json()["id"]

    # Global scope: bob asking exactly the same gets alice's answer, in his own conversation.
    bobs = assert_hit(chat(bob_http, base))
    assert bobs["content"] == original["content"]
    assert bobs["conversation_id"] != original["conversation_id"]
    assert [m["content"] for m in conversation_messages(bob_http, bobs["conversation_id"])] == [
        marker,
        original["content"],
    ]
    assert len(requests_mentioning(fake_ollama, marker)) == calls_before + 1


# --- 4. Cache-Control: no-cache refreshes, no-store bypasses ---------------------------------


def test_no_cache_generates_anew_and_refreshes_the_cache(alice_http, fake_ollama):
    fake_ollama.reply_fn = NumberedReplies()
    marker = unique("refresh me")
    first = assert_miss(chat(alice_http, {"message": marker}))
    assert first["content"] == "answer 1 from the model"

    fresh = assert_miss(
        chat(alice_http, {"message": marker}, headers={"Cache-Control": "no-cache"})
    )

    assert fresh["content"] == "answer 2 from the model"
    assert len(requests_mentioning(fake_ollama, marker)) == 2
    after = assert_hit(chat(alice_http, {"message": marker}))
    assert after["content"] == fresh["content"]
    assert len(requests_mentioning(fake_ollama, marker)) == 2


def test_no_store_neither_reads_nor_writes_the_cache(alice_http, fake_ollama):
    fake_ollama.reply_fn = NumberedReplies()
    cached = unique("stored already")
    first = assert_miss(chat(alice_http, {"message": cached}))

    bypass = assert_miss(
        chat(alice_http, {"message": cached}, headers={"Cache-Control": "no-store"})
    )

    assert bypass["content"] != first["content"]
    assert len(requests_mentioning(fake_ollama, cached)) == 2
    # The cached answer is still the first one: no-store did not overwrite it.
    assert assert_hit(chat(alice_http, {"message": cached}))["content"] == first["content"]

    never = unique("never stored")
    streamed = alice_http.post(
        "/api/chat/stream",
        json={"message": never},
        headers={"Cache-Control": "no-store"},
        stream=True,
    )
    assert streamed.status_code == 200, streamed.text
    assert streamed.headers.get("X-Cache") == "MISS", streamed.headers
    events = sse_events(streamed)
    assert names(events)[-1] == "done", names(events)
    assert events[0].data.get("cached") is not True

    # Nothing was stored: the next plain request generates (and stores) its own answer.
    second = assert_miss(chat(alice_http, {"message": never}))
    assert second["content"] != text_of(events)
    assert len(requests_mentioning(fake_ollama, never)) == 2
    third = assert_hit(chat(alice_http, {"message": never}))
    assert third["content"] == second["content"]
    assert len(requests_mentioning(fake_ollama, never)) == 2


# --- 5. a hit continues the conversation like a generated answer ----------------------------


def test_a_hit_is_written_to_the_conversation_and_becomes_its_context(alice_http, fake_ollama):
    fake_ollama.reply_fn = NumberedReplies()
    marker = unique("remember this")
    original = assert_miss(chat(alice_http, {"message": marker}))

    hit = assert_hit(chat(alice_http, {"message": marker}))

    assert hit["conversation_id"] != original["conversation_id"]
    messages = conversation_messages(alice_http, hit["conversation_id"])
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", marker),
        ("assistant", original["content"]),
    ]
    assert messages[1]["id"] == hit["message_id"]
    assert (messages[1]["model"], messages[1]["tier"]) == (hit["model"], hit["tier"])
    listed = alice_http.get("/api/conversations/").json()
    assert listed["total"] == 2, listed
    assert listed["items"][0]["id"] == hit["conversation_id"]  # the most recently active

    follow_up = unique("and then")
    answer = assert_miss(
        chat(alice_http, {"message": follow_up, "conversation_id": hit["conversation_id"]})
    )

    sent = requests_mentioning(fake_ollama, follow_up)
    assert len(sent) == 1
    turns = [(m["role"], m["content"]) for m in sent[0]["messages"] if m["role"] != "system"]
    assert turns == [
        ("user", marker),
        ("assistant", original["content"]),
        ("user", follow_up),
    ]
    messages = conversation_messages(alice_http, hit["conversation_id"])
    assert [(m["role"], m["content"]) for m in messages][2:] == [
        ("user", follow_up),
        ("assistant", answer["content"]),
    ]


# --- 6. single flight: identical requests in progress share one generation -------------------


def test_identical_requests_in_flight_share_one_generation(app, alice_http, bob_http, fake_ollama):
    fake_ollama.token_delay = 0.08  # ~1.6 s of generation: every request arrives during it
    marker = unique("all at once")
    job_clients = [alice_http, alice_http, alice_http, bob_http, bob_http]
    chat_clients = [bob_http, alice_http]
    barrier = threading.Barrier(len(job_clients) + len(chat_clients))

    def post(client: Client, path: str) -> requests.Response:
        barrier.wait()
        return client.post(path, json={"message": marker})

    with ThreadPoolExecutor(max_workers=16) as pool:
        submitted = [pool.submit(post, client, "/api/jobs/") for client in job_clients]
        chatting = [pool.submit(post, client, "/api/chat/") for client in chat_clients]
        responses = [future.result(timeout=30) for future in submitted]
        for response in responses:
            assert response.status_code == 202, response.text
        job_ids = [response.json()["id"] for response in responses]
        # Follow every job's events while it is still waiting or generating.
        streams: list[Future] = [
            pool.submit(client.events, job_id)
            for client, job_id in zip(job_clients, job_ids, strict=True)
        ]
        jobs = [
            succeeded(client, job_id) for client, job_id in zip(job_clients, job_ids, strict=True)
        ]
        all_events = [stream.result(timeout=20) for stream in streams]
        chats = [future.result(timeout=30) for future in chatting]

    assert len(requests_mentioning(fake_ollama, marker)) == 1
    for response in chats:
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["content"] == DEFAULT_REPLY
        assert response.headers.get("X-Cache") == ("HIT" if body["cached"] else "MISS")
    answers = [*jobs, *(response.json() for response in chats)]
    assert len({answer["usage"]["total_tokens"] for answer in answers}) == 1
    assert sorted(answer["cached"] for answer in answers) == [False] + [True] * 6, answers
    assert {job["output"] for job in jobs} == {DEFAULT_REPLY}
    assert len({job["message_id"] for job in jobs}) == len(jobs)
    for client, job, events in zip(job_clients, jobs, all_events, strict=True):
        assert_replayed_answer(events, job)
        assert len(tokens(events)) == 20, names(events)
        if job["cached"]:
            assert events[0].data["cached"] is True, events[0]
            assert events[-1].data["cached"] is True, events[-1]
        messages = conversation_messages(client, job["conversation_id"])
        assert [(m["role"], m["content"]) for m in messages] == [
            ("user", marker),
            ("assistant", DEFAULT_REPLY),
        ]

    ids = [*job_ids, *(response.json()["job_id"] for response in chats)]
    rows = usage_rows(app, ids)
    assert sorted(rows) == sorted(ids)
    for answer, job_id in zip(answers, ids, strict=True):
        assert rows[job_id].cached is answer["cached"], (job_id, answer)
        assert rows[job_id].status == "succeeded"


def test_a_waiting_follower_can_be_cancelled(alice_http, fake_ollama):
    fake_ollama.token_delay = 0.08  # ~1.6 s
    marker = unique("cancel the follower")
    leader = submit(alice_http, {"message": marker}).json()
    running = wait_for_status(lambda: alice_http.job(leader["id"]), {"running", *ENDED}, 10)
    assert running["status"] == "running", running
    follower = submit(alice_http, {"message": marker}).json()
    other = submit(alice_http, {"message": marker}).json()
    assert alice_http.job(follower["id"])["status"] == "queued"

    response = alice_http.delete(f"/api/jobs/{follower['id']}")

    assert response.status_code == 202, response.text
    assert response.json()["status"] == "cancelled"
    assert names(alice_http.events(follower["id"])) == ["cancelled"]
    led = succeeded(alice_http, leader["id"])
    shared = succeeded(alice_http, other["id"])
    assert (shared["cached"], shared["output"]) == (True, led["output"])
    cancelled = alice_http.job(follower["id"])
    assert (cancelled["status"], cancelled["output"], cancelled["cached"]) == (
        "cancelled",
        None,
        False,
    )
    assert names(alice_http.events(follower["id"])) == ["cancelled"]
    assert len(requests_mentioning(fake_ollama, marker)) == 1


# --- 7. when the leader does not succeed, its followers generate on their own ---------------


def test_followers_generate_themselves_when_the_leader_is_cancelled(
    alice_http, bob_http, fake_ollama
):
    fake_ollama.token_delay = 0.1  # ~2 s per generation
    marker = unique("leader cancelled")
    leader = submit(alice_http, {"message": marker}).json()
    wait_for_model_requests(fake_ollama, marker, 1)
    followers = [
        (alice_http, submit(alice_http, {"message": marker}).json()),
        (bob_http, submit(bob_http, {"message": marker}).json()),
    ]
    with ThreadPoolExecutor(max_workers=len(followers)) as pool:
        streams = [pool.submit(client.events, job["id"]) for client, job in followers]
        time.sleep(0.3)  # a follower wrongly enqueued would reach the model by now
        for client, job in followers:
            assert client.job(job["id"])["status"] == "queued"
        assert len(requests_mentioning(fake_ollama, marker)) == 1

        response = alice_http.delete(f"/api/jobs/{leader['id']}")
        assert response.status_code == 202, response.text
        assert ended(alice_http, leader["id"])["status"] == "cancelled"

        done = [succeeded(client, job["id"]) for client, job in followers]
        all_events = [stream.result(timeout=20) for stream in streams]

    for job, events in zip(done, all_events, strict=True):
        assert (job["output"], job["cached"]) == (DEFAULT_REPLY, False), job
        assert_replayed_answer(events, job)
    assert len(requests_mentioning(fake_ollama, marker)) == 3
    assert alice_http.job(leader["id"])["status"] == "cancelled"
    assert names(alice_http.events(leader["id"]))[-1] == "cancelled"


def test_a_follower_generates_when_its_queued_leader_is_cancelled(alice_http, fake_ollama):
    fake_ollama.token_delay = 0.1
    busy = submit(alice_http, {"message": unique("busy"), "model": "heavy"}).json()
    running = wait_for_status(lambda: alice_http.job(busy["id"]), {"running", *ENDED}, 10)
    assert running["status"] == "running", running  # the heavy pool's one slot is taken
    marker = unique("queued leader")
    leader = submit(alice_http, {"message": marker, "model": "heavy"}).json()
    follower = submit(alice_http, {"message": marker, "model": "heavy"}).json()
    assert alice_http.job(leader["id"])["status"] == "queued"
    assert alice_http.job(follower["id"])["status"] == "queued"

    response = alice_http.delete(f"/api/jobs/{leader['id']}")

    assert response.status_code == 202, response.text
    assert response.json()["status"] == "cancelled"
    fake_ollama.token_delay = 0.005  # let the busy job end, so the heavy slot frees
    done = succeeded(alice_http, follower["id"])
    assert (done["output"], done["cached"]) == (DEFAULT_REPLY, False)
    assert_replayed_answer(alice_http.events(follower["id"]), done)
    assert succeeded(alice_http, busy["id"])["output"] == DEFAULT_REPLY
    cancelled = alice_http.job(leader["id"])
    assert (cancelled["status"], cancelled["attempts"]) == ("cancelled", 0)
    assert len(requests_mentioning(fake_ollama, marker)) == 1  # the follower's own


def test_followers_generate_themselves_when_the_leader_fails(alice_http, bob_http, fake_ollama):
    fake_ollama.token_delay = 0.1
    fake_ollama.fail_after = 10  # the leader fails ~1 s in
    fake_ollama.mode = "error_mid_stream"
    marker = unique("leader fails")
    leader = submit(alice_http, {"message": marker}).json()
    wait_for_model_requests(fake_ollama, marker, 1)
    fake_ollama.mode = "ok"  # read once per request: only the leader's generation fails
    followers = [
        (alice_http, submit(alice_http, {"message": marker}).json()),
        (bob_http, submit(bob_http, {"message": marker}).json()),
    ]
    for client, job in followers:
        assert client.job(job["id"])["status"] == "queued"

    failed = ended(alice_http, leader["id"])
    assert failed["status"] == "failed", failed
    done = [succeeded(client, job["id"]) for client, job in followers]

    for (client, _), job in zip(followers, done, strict=True):
        assert (job["output"], job["cached"]) == (DEFAULT_REPLY, False), job
        assert_replayed_answer(client.events(job["id"]), job)
    assert len(requests_mentioning(fake_ollama, marker)) == 3
    # The followers' own answers are cached.
    assert assert_hit(chat(alice_http, {"message": marker}))["content"] == DEFAULT_REPLY
    assert len(requests_mentioning(fake_ollama, marker)) == 3


# --- 8. only successful answers are cached ---------------------------------------------------


def test_a_failed_generation_is_not_cached(alice_http, fake_ollama):
    marker = unique("fail first")
    fake_ollama.mode = "error"
    try:
        response = alice_http.post("/api/chat/", json={"message": marker})
    finally:
        fake_ollama.mode = "ok"
    assert response.status_code == 502, response.text
    assert response.json()["error"]["code"] == "model_error"
    calls = len(requests_mentioning(fake_ollama, marker))
    assert calls >= 1

    retry = assert_miss(chat(alice_http, {"message": marker}))

    assert retry["content"] == DEFAULT_REPLY
    assert len(requests_mentioning(fake_ollama, marker)) == calls + 1
    assert assert_hit(chat(alice_http, {"message": marker}))["content"] == DEFAULT_REPLY
    assert len(requests_mentioning(fake_ollama, marker)) == calls + 1


# --- 9. usage rows and the daily token quota -------------------------------------------------


def test_hits_are_logged_as_cached_usage_and_spend_no_daily_quota(
    monkeypatch, app, alice_http, fake_ollama
):
    marker = unique("count the tokens")
    original = assert_miss(chat(alice_http, {"message": marker}))
    spent = original["usage"]["total_tokens"]
    assert spent > 0

    # An API process with a quota just above what alice has used (the live server has none;
    # hits need no worker, so an in-process app sharing the database and Redis serves them).
    monkeypatch.setenv("DAILY_TOKEN_QUOTA", str(spent + 1))
    quota_app = create_app(TestingConfig())
    try:
        client = quota_app.test_client()
        hit_ids = []
        for _ in range(3):
            response = client.post(
                "/api/chat/", json={"message": marker}, headers=alice_http.headers
            )
            assert response.status_code == 200, response.get_json()
            assert response.headers.get("X-Cache") == "HIT"
            body = response.get_json()
            assert body["cached"] is True and body["usage"] == original["usage"]
            hit_ids.append(body["job_id"])

        rows = usage_rows(app, [original["job_id"], *hit_ids])
        assert rows[original["job_id"]].cached is False
        for job_id in hit_ids:
            row = rows[job_id]
            assert row.cached is True and row.status == "succeeded"
            assert row.prompt_tokens + row.completion_tokens == spent
            assert str(row.user_id) == alice_http.user_id

        # The quota is real: one more generated answer uses it up, and alice is refused.
        extra = assert_miss(chat(alice_http, {"message": unique("one more")}))
        refused = client.post(
            "/api/jobs/", json={"message": unique("over quota")}, headers=alice_http.headers
        )
        assert refused.status_code == 429, refused.get_json()
        error = refused.get_json()["error"]
        assert error["code"] == "daily_token_quota_exceeded"
        assert error["details"]["used"] == spent + extra["usage"]["total_tokens"], error
        # Over the quota, an answer already in the cache is still served: it costs nothing.
        still = client.post("/api/chat/", json={"message": marker}, headers=alice_http.headers)
        assert still.status_code == 200, still.get_json()
        assert still.headers.get("X-Cache") == "HIT"
    finally:
        with quota_app.app_context():
            db.session.remove()
            db.engine.dispose()


# --- 10. CACHE_SCOPE=user: answers are never shared between accounts -------------------------


def test_user_scope_shares_answers_only_within_an_account(app, workers, fake_ollama, tmp_path):
    server = start_gunicorn(tmp_path / "gunicorn.log", {"CACHE_SCOPE": "user"}, workers=1)
    try:
        alice, bob = (
            Client(server.url, {"Authorization": f"Bearer {a['access_token']}"}, a["id"])
            for a in (
                register_over_http(server.url, email, PASSWORD)
                for email in ("alice@example.com", "bob@example.com")
            )
        )
        marker = unique("mine alone")
        first = assert_miss(chat(alice, {"message": marker}))
        assert assert_hit(chat(alice, {"message": marker}))["content"] == first["content"]

        bobs = assert_miss(chat(bob, {"message": marker}))
        assert len(requests_mentioning(fake_ollama, marker)) == 2
        assert assert_hit(chat(bob, {"message": marker}))["content"] == bobs["content"]
        assert len(requests_mentioning(fake_ollama, marker)) == 2
    finally:
        stop_gunicorn(server)


# --- 11. CACHE_TTL_SECONDS=0: no cache and no single flight ----------------------------------


def test_a_zero_ttl_turns_the_cache_and_single_flight_off(app, workers, fake_ollama, tmp_path):
    server = start_gunicorn(tmp_path / "gunicorn.log", {"CACHE_TTL_SECONDS": "0"}, workers=1)
    try:
        account = register_over_http(server.url, "alice@example.com", PASSWORD)
        alice = Client(
            server.url, {"Authorization": f"Bearer {account['access_token']}"}, account["id"]
        )
        marker = unique("never cached")
        for _ in range(2):
            assert assert_miss(chat(alice, {"message": marker}))["content"] == DEFAULT_REPLY
        assert len(requests_mentioning(fake_ollama, marker)) == 2

        fake_ollama.token_delay = 0.05  # ~1 s: the three requests overlap
        together = unique("no single flight")
        with ThreadPoolExecutor(max_workers=3) as pool:
            responses = list(pool.map(lambda _: chat(alice, {"message": together}), range(3)))
        for response in responses:
            assert_miss(response)
        assert len(requests_mentioning(fake_ollama, together)) == 3
    finally:
        stop_gunicorn(server)


# --- 12. known defect: a rebuilt stream forgets that the answer was cached -------------------


def test_a_hit_whose_stream_expired_still_says_cached(app, redis_client, alice_http, fake_ollama):
    marker = unique("expire my stream")
    assert_miss(chat(alice_http, {"message": marker}))
    hit = assert_hit(submit(alice_http, {"message": marker}))
    assert alice_http.events(hit["id"])[0].data["cached"] is True
    # The stream expires STREAM_TTL_SECONDS after the end; the job stays in PostgreSQL.
    assert redis_client.delete(stream_key(app.config["REDIS_KEY_PREFIX"], hit["id"])) == 1

    rebuilt = alice_http.events(hit["id"])

    assert names(rebuilt) == ["start", "token", "done"], names(rebuilt)
    assert text_of(rebuilt) == hit["output"]
    assert alice_http.job(hit["id"])["cached"] is True
    assert rebuilt[0].data.get("cached") is True, rebuilt[0]
    assert rebuilt[-1].data.get("cached") is True, rebuilt[-1]
