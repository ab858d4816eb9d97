"""A job's whole life through real processes: gunicorn, Celery workers, Redis, PostgreSQL.

Every assertion is about what a client sees over HTTP: the job as polled, its SSE events,
the listing, error responses. The fake model server tells what the model was asked.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid

import pytest
import redis
import requests

from tests.fakes.ollama import DEFAULT_MODELS, numbered_words
from tests.integration.conftest import Client, http_error_of, wait_for_status
from tests.sse_client import SseEvent, iter_sse, text_of

pytestmark = pytest.mark.live

ENDED = {"succeeded", "failed", "cancelled"}
LIGHT_MODEL, HEAVY_MODEL = DEFAULT_MODELS
LLM_READ_TIMEOUT = float(os.environ["LLM_READ_TIMEOUT"])
SOFT_TIME_LIMIT = float(os.environ["JOB_SOFT_TIME_LIMIT"])
MAX_MESSAGE_CHARS = 32_000


# --- helpers -----------------------------------------------------------------------------


def unique(label: str) -> str:
    return f"{label} marker {uuid.uuid4().hex}"


def submit(client: Client, body: dict, headers: dict | None = None) -> dict:
    response = client.post("/api/jobs/", json=body, headers=headers or {})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] in {"queued", "running", *ENDED}
    return job


def requests_mentioning(fake, text: str) -> list[dict]:
    """The chat requests the model server received whose body contains `text`."""
    return [body for body in list(fake.requests) if text in json.dumps(body, ensure_ascii=False)]


class Follower(threading.Thread):
    """Follows a job's SSE stream in the background, keeping every event as it arrives."""

    def __init__(self, client: Client, job_id: str):
        super().__init__(daemon=True, name=f"sse-{job_id}")
        self.client, self.job_id = client, job_id
        self.events: list[SseEvent] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            response = self.client.get(f"/api/jobs/{self.job_id}/events", stream=True)
            assert response.status_code == 200, response.text
            for event in iter_sse(response):
                self.events.append(event)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def tokens(self) -> int:
        return sum(1 for event in list(self.events) if event.event == "token")

    def wait_tokens(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.tokens() < count:
            assert self.error is None, self.error
            assert time.monotonic() < deadline, f"only {self.tokens()} tokens: {self.events}"
            time.sleep(0.05)


def assert_failed_stream(events: list[SseEvent], code: str) -> None:
    names = [event.event for event in events]
    assert names, "no SSE events"
    assert names[-1] == "error", names
    assert "done" not in names, names
    assert events[-1].data["error"]["code"] == code, events[-1].data
    assert events[-1].data["error"]["message"]


def job_total(client: Client) -> int:
    response = client.get("/api/jobs/")
    assert response.status_code == 200, response.text
    return response.json()["total"]


def queued_messages() -> dict[str, int]:
    client = redis.Redis.from_url(os.environ["TEST_REDIS_URL"])
    prefix = os.environ["TEST_REDIS_KEY_PREFIX"]
    try:
        return {q: client.llen(f"{prefix}celery:{q}") for q in ("light", "heavy")}
    finally:
        client.close()


def assert_serves_normally(client: Client, fake, model: str = "auto") -> None:
    """After a failure the same worker pool still runs an ordinary job to the end."""
    fake.mode = "ok"
    fake.token_delay = 0.005
    fake.reply_tokens = 20
    job = submit(client, {"message": unique("follow-up"), "model": model})
    done = wait_for_status(lambda: client.job(job["id"]), ENDED, timeout=20)
    assert done["status"] == "succeeded", done
    assert done["output"] == numbered_words(20)
    assert done["error"] is None


# --- 1. cancelling a queued job ----------------------------------------------------------


def test_cancel_queued_job_never_runs(alice_http, fake_ollama):
    fake_ollama.token_delay = 0.15
    fake_ollama.reply_tokens = 30  # ~4.5 s, well inside the soft time limit
    busy = submit(alice_http, {"message": unique("busy"), "model": "heavy"})
    running = wait_for_status(lambda: alice_http.job(busy["id"]), {"running", *ENDED}, 10)
    assert running["status"] == "running", running

    marker = unique("never run")
    waiting = submit(alice_http, {"message": marker, "model": "heavy"})
    assert waiting["tier"] == "heavy"
    assert alice_http.job(waiting["id"])["status"] == "queued"
    # The probe used by the "nothing enqueued" checks sees a real queued message.
    assert queued_messages() == {"light": 0, "heavy": 1}

    response = alice_http.delete(f"/api/jobs/{waiting['id']}")
    assert response.status_code == 202, response.text
    assert response.json()["id"] == waiting["id"]
    assert response.json()["status"] == "cancelled"

    events = alice_http.events(waiting["id"])
    assert [event.event for event in events] == ["cancelled"], events

    finished = wait_for_status(lambda: alice_http.job(busy["id"]), ENDED, timeout=20)
    assert finished["status"] == "succeeded", finished
    # The heavy queue is FIFO with one slot: once a later job has run, the cancelled job's
    # message has been delivered too, and must have been dropped.
    fake_ollama.token_delay = 0.005
    later = submit(alice_http, {"message": unique("later"), "model": "heavy"})
    later_done = wait_for_status(lambda: alice_http.job(later["id"]), ENDED, timeout=20)
    assert later_done["status"] == "succeeded", later_done

    cancelled = alice_http.job(waiting["id"])
    assert cancelled["status"] == "cancelled"
    assert cancelled["attempts"] == 0
    assert cancelled["output"] is None
    assert cancelled["timings"]["started_at"] is None
    assert requests_mentioning(fake_ollama, marker) == []
    assert [event.event for event in alice_http.events(waiting["id"])] == ["cancelled"]

    http_error_of(alice_http.delete(f"/api/jobs/{waiting['id']}"), 409, "conflict")
    http_error_of(alice_http.delete(f"/api/jobs/{busy['id']}"), 409, "conflict")


# --- 2. cancelling a running job ---------------------------------------------------------


def test_cancel_running_job_keeps_partial_output(alice_http, fake_ollama):
    fake_ollama.token_delay = 0.2
    fake_ollama.reply_tokens = 30  # ~6 s in full
    full = numbered_words(30)
    job = submit(alice_http, {"message": unique("cancel me")})

    first = alice_http.events(job["id"], stop_after=4)  # start + 3 tokens
    assert [event.event for event in first] == ["start", "token", "token", "token"], first

    asked = time.monotonic()
    response = alice_http.delete(f"/api/jobs/{job['id']}")
    assert response.status_code == 202, response.text
    assert response.json()["status"] in {"running", "cancelled"}
    cancelled = wait_for_status(lambda: alice_http.job(job["id"]), ENDED, timeout=10)
    elapsed = time.monotonic() - asked
    assert cancelled["status"] == "cancelled", cancelled
    assert elapsed < 3.0, f"cancelled {elapsed:.2f} s after the DELETE"

    output = cancelled["output"]
    assert output, cancelled
    assert full.startswith(output)
    assert len(output) < len(full)
    assert cancelled["error"] is None
    assert cancelled["attempts"] == 1

    events = alice_http.events(job["id"])
    names = [event.event for event in events]
    assert names[-1] == "cancelled", names
    assert "done" not in names and "error" not in names
    assert text_of(events) == output

    http_error_of(alice_http.delete(f"/api/jobs/{job['id']}"), 409, "conflict")


# --- 3. a worker dies in the middle of a generation --------------------------------------


def test_worker_killed_mid_generation_is_redelivered(alice_http, fake_ollama, workers):
    fake_ollama.token_delay = 0.15
    fake_ollama.reply_tokens = 40  # ~6 s per attempt
    full = numbered_words(40)
    heavy = workers.heavy
    try:
        job = submit(alice_http, {"message": unique("survive a crash"), "model": "heavy"})
        follower = Follower(alice_http, job["id"])
        follower.start()
        follower.wait_tokens(4, timeout=15)

        heavy.kill()
        killed_at = time.monotonic()
        assert alice_http.job(job["id"])["status"] == "running"
        heavy.start()  # a new process, with a new hostname

        finished = wait_for_status(lambda: alice_http.job(job["id"]), ENDED, timeout=45)
        assert finished["status"] == "succeeded", (finished, time.monotonic() - killed_at)
        assert finished["attempts"] == 2
        assert finished["output"] == full
        assert finished["error"] is None

        follower.join(timeout=15)
        assert not follower.is_alive(), follower.events
        assert follower.error is None, follower.error
        events = follower.events
        names = [event.event for event in events]
        assert names[-1] == "done", names
        assert names.count("reset") == 1, names
        assert names.count("start") == 2, names
        assert text_of(events) == full  # the first attempt's tokens were discarded, once
        after_reset = names[names.index("reset") :]
        assert after_reset.count("token") == 40

        # A late reader gets the same story.
        assert text_of(alice_http.events(job["id"])) == full

        runs = [
            record
            for record in heavy.log_records()
            if record.get("job_id") == job["id"] and record.get("queue") == "heavy"
        ]
        assert {record.get("worker") for record in runs} >= {heavy.hostname}, runs
    finally:
        if heavy.process is None or heavy.process.poll() is not None:
            heavy.start()


# --- 4. idempotency ----------------------------------------------------------------------


def test_idempotency_key_returns_the_same_job(alice_http, bob_http, fake_ollama):
    marker = unique("idempotent")
    body = {"message": marker}
    key = {"Idempotency-Key": f"key-{uuid.uuid4().hex}"}

    first = submit(alice_http, body, key)
    second = alice_http.post("/api/jobs/", json=body, headers=key)
    assert second.status_code in {200, 201, 202}, second.text
    assert second.json()["id"] == first["id"]
    assert job_total(alice_http) == 1

    done = wait_for_status(lambda: alice_http.job(first["id"]), ENDED)
    assert done["status"] == "succeeded", done
    third = alice_http.post("/api/jobs/", json=body, headers=key)
    assert third.json()["id"] == first["id"]
    assert third.json()["status"] == "succeeded"
    assert job_total(alice_http) == 1
    assert len(requests_mentioning(fake_ollama, marker)) == 1

    other = submit(alice_http, body, {"Idempotency-Key": f"key-{uuid.uuid4().hex}"})
    assert other["id"] != first["id"]
    assert job_total(alice_http) == 2

    bobs = submit(bob_http, body, key)
    assert bobs["id"] != first["id"]
    assert job_total(bob_http) == 1
    assert job_total(alice_http) == 2

    http_error_of(
        alice_http.post("/api/jobs/", json=body, headers={"Idempotency-Key": "k" * 201}), 422
    )
    assert job_total(alice_http) == 2

    # New jobs, but the same request: answered from the response cache, not generated.
    for job_id in (other["id"], bobs["id"]):
        client = alice_http if job_id == other["id"] else bob_http
        ended = wait_for_status(lambda c=client, j=job_id: c.job(j), ENDED)
        assert (ended["status"], ended["cached"]) == ("succeeded", True)
    assert len(requests_mentioning(fake_ollama, marker)) == 1


def test_idempotency_key_under_concurrent_retries(alice_http, fake_ollama):
    marker = unique("parallel retries")
    key = {"Idempotency-Key": f"key-{uuid.uuid4().hex}"}
    results: list[requests.Response] = []
    barrier = threading.Barrier(6)

    def post() -> None:
        barrier.wait()
        results.append(alice_http.post("/api/jobs/", json={"message": marker}, headers=key))

    threads = [threading.Thread(target=post) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(results) == 6
    assert {r.status_code for r in results} <= {200, 201, 202}, [r.text for r in results]
    ids = {r.json()["id"] for r in results}
    assert len(ids) == 1, ids
    assert job_total(alice_http) == 1
    job_id = ids.pop()
    assert wait_for_status(lambda: alice_http.job(job_id), ENDED)["status"] == "succeeded"
    assert len(requests_mentioning(fake_ollama, marker)) == 1
    conversations = alice_http.get("/api/conversations/").json()
    assert conversations["total"] == 1, conversations


# --- 5. one user never reaches another's jobs --------------------------------------------


def test_other_users_jobs_are_not_found(alice_http, bob_http, fake_ollama):
    secret = unique("alice secret")
    done = submit(alice_http, {"message": secret})
    finished = wait_for_status(lambda: alice_http.job(done["id"]), ENDED)
    assert finished["status"] == "succeeded", finished

    fake_ollama.token_delay = 0.1
    fake_ollama.reply_tokens = 30  # ~3 s: still running while bob tries
    running = submit(alice_http, {"message": unique("alice running")})
    assert (
        wait_for_status(lambda: alice_http.job(running["id"]), {"running", *ENDED}, 10)["status"]
        == "running"
    )

    private = [secret, finished["output"], alice_http.user_id, "alice@example.com"]
    for job_id in (done["id"], running["id"]):
        for response in (
            bob_http.get(f"/api/jobs/{job_id}"),
            bob_http.get(f"/api/jobs/{job_id}/events", stream=True),
            bob_http.delete(f"/api/jobs/{job_id}"),
        ):
            http_error_of(response, 404, "not_found")
            for value in private:
                assert value not in response.text

    listing = bob_http.get("/api/jobs/").json()
    assert listing["total"] == 0 and listing["items"] == [], listing

    # bob's DELETE did not cancel alice's job.
    ended = wait_for_status(lambda: alice_http.job(running["id"]), ENDED, timeout=15)
    assert ended["status"] == "succeeded", ended

    http_error_of(alice_http.get(f"/api/jobs/{uuid.uuid4()}"), 404, "not_found")
    http_error_of(alice_http.get(f"/api/jobs/{uuid.uuid4()}/events"), 404, "not_found")
    http_error_of(alice_http.delete(f"/api/jobs/{uuid.uuid4()}"), 404, "not_found")
    for bad in ("not-a-uuid", "1234", f"{done['id']}x"):
        http_error_of(alice_http.get(f"/api/jobs/{bad}"), 404, "not_found")
        http_error_of(alice_http.delete(f"/api/jobs/{bad}"), 404, "not_found")
        http_error_of(alice_http.get(f"/api/jobs/{bad}/events"), 404, "not_found")


# --- 6. bad input is refused before anything happens -------------------------------------

BAD_BODIES = {
    "missing message": ({"model": "auto"}, "message"),
    "empty message": ({"message": ""}, "message"),
    "whitespace message": ({"message": " \n\t  "}, "message"),
    "message too long": ({"message": "a" * (MAX_MESSAGE_CHARS + 1)}, "message"),
    "message a number": ({"message": 42}, "message"),
    "message a list": ({"message": ["hi"]}, "message"),
    "message null": ({"message": None}, "message"),
    "tools a string": ({"message": "hi", "tools": "yes"}, "tools"),
    "tools an odd string": ({"message": "hi", "tools": "sometimes"}, "tools"),
    "max_tokens zero": ({"message": "hi", "max_tokens": 0}, "max_tokens"),
    "max_tokens huge": ({"message": "hi", "max_tokens": 10**6}, "max_tokens"),
    "max_tokens a float": ({"message": "hi", "max_tokens": 1.5}, "max_tokens"),
    "max_tokens a string": ({"message": "hi", "max_tokens": "5"}, "max_tokens"),
    "temperature 3": ({"message": "hi", "temperature": 3}, "temperature"),
    "temperature negative": ({"message": "hi", "temperature": -0.1}, "temperature"),
    "unknown field": ({"message": "hi", "stream": True}, "stream"),
    "conversation_id malformed": ({"message": "hi", "conversation_id": "nope"}, "conversation_id"),
    "empty model": ({"message": "hi", "model": ""}, "model"),
}


def post_refused(client: Client, status: int, code: str | None = None, **kwargs) -> tuple:
    """POST a job that must be refused; (error, response)."""
    response = client.post("/api/jobs/", **kwargs)
    try:
        return http_error_of(response, status, code), response
    finally:
        if response.status_code == 202:  # wrongly accepted: let it end, not leak into others
            wait_for_status(lambda: client.job(response.json()["id"]), ENDED)


def assert_nothing_happened(client: Client, fake) -> None:
    assert job_total(client) == 0
    assert client.get("/api/conversations/").json()["total"] == 0
    assert queued_messages() == {"light": 0, "heavy": 0}
    time.sleep(0.2)  # a job enqueued by mistake would reach the model server by now
    assert fake.requests == []


@pytest.mark.parametrize("case", BAD_BODIES, ids=list(BAD_BODIES))
def test_invalid_job_bodies_are_refused(alice_http, fake_ollama, case):
    body, field = BAD_BODIES[case]
    error, _ = post_refused(alice_http, 422, "validation_error", json=body)
    assert field in error["details"]["json"], error
    assert_nothing_happened(alice_http, fake_ollama)


def test_unknown_model_is_refused_with_the_choices(alice_http, fake_ollama):
    error, _ = post_refused(
        alice_http, 422, "validation_error", json={"message": "hi", "model": "gpt-9"}
    )
    assert "gpt-9" in error["message"]
    listed = " ".join(error["details"]["json"]["model"])
    for choice in ("auto", "light", "heavy", LIGHT_MODEL, HEAVY_MODEL):
        assert choice in listed, listed
    assert_nothing_happened(alice_http, fake_ollama)


def test_foreign_or_unknown_conversation_is_not_found(alice_http, bob_http, fake_ollama):
    created = bob_http.post("/api/conversations/", json={"title": "bob's"})
    assert created.status_code == 201, created.text
    for conversation_id in (created.json()["id"], str(uuid.uuid4())):
        _, response = post_refused(
            alice_http, 404, "not_found", json={"message": "hi", "conversation_id": conversation_id}
        )
        assert "bob's" not in response.text
    assert_nothing_happened(alice_http, fake_ollama)
    bobs = bob_http.get(f"/api/conversations/{created.json()['id']}").json()
    assert bobs["messages"] == [], bobs


def test_non_json_bodies_are_refused(alice_http, fake_ollama):
    for data, content_type in (
        ("message=hi", "application/x-www-form-urlencoded"),
        ("hi", "text/plain"),
        ('{"message": "hi"}', "text/plain"),
    ):
        post_refused(
            alice_http,
            415,
            "unsupported_media_type",
            data=data,
            headers={"Content-Type": content_type},
        )
    for raw in ("{not json", '"just a string"', "[1, 2]"):
        response = alice_http.post(
            "/api/jobs/", data=raw, headers={"Content-Type": "application/json"}
        )
        assert 400 <= response.status_code < 500 and response.status_code != 404, response.text
        http_error_of(response, response.status_code)
    assert_nothing_happened(alice_http, fake_ollama)


# --- 7. listing --------------------------------------------------------------------------


def test_listing_is_paginated_newest_first_and_filtered(alice_http, fake_ollama):
    first = submit(alice_http, {"message": unique("first")})
    assert wait_for_status(lambda: alice_http.job(first["id"]), ENDED)["status"] == "succeeded"
    fake_ollama.mode = "error"
    second = submit(alice_http, {"message": unique("second")})
    assert wait_for_status(lambda: alice_http.job(second["id"]), ENDED)["status"] == "failed"
    fake_ollama.mode = "ok"
    third = submit(alice_http, {"message": unique("third")})
    assert wait_for_status(lambda: alice_http.job(third["id"]), ENDED)["status"] == "succeeded"

    listing = alice_http.get("/api/jobs/").json()
    assert set(listing) == {"items", "total", "page", "page_size"}
    assert listing["total"] == 3 and listing["page"] == 1 and listing["page_size"] == 20
    assert [job["id"] for job in listing["items"]] == [third["id"], second["id"], first["id"]]

    page1 = alice_http.get("/api/jobs/", params={"page_size": 2}).json()
    page2 = alice_http.get("/api/jobs/", params={"page_size": 2, "page": 2}).json()
    assert [job["id"] for job in page1["items"]] == [third["id"], second["id"]]
    assert [job["id"] for job in page2["items"]] == [first["id"]]
    assert page1["total"] == page2["total"] == 3
    assert (page2["page"], page2["page_size"]) == (2, 2)

    succeeded = alice_http.get("/api/jobs/", params={"status": "succeeded"}).json()
    assert [job["id"] for job in succeeded["items"]] == [third["id"], first["id"]]
    assert succeeded["total"] == 2
    failed = alice_http.get("/api/jobs/", params={"status": "failed"}).json()
    assert [job["id"] for job in failed["items"]] == [second["id"]]
    assert failed["items"][0]["error"]["code"] == "model_error"
    assert alice_http.get("/api/jobs/", params={"status": "queued"}).json()["total"] == 0

    for params in ({"status": "bogus"}, {"colour": "red"}, {"page": 0}, {"page_size": 101}):
        http_error_of(alice_http.get("/api/jobs/", params=params), 422, "validation_error")


# --- 8. failures end with a code, and the worker carries on ------------------------------

MODE_FAILURES = {
    "error": "model_error",
    "hang": "model_timeout",
    "hang_mid_stream": "model_timeout",
    "malformed": None,  # model_bad_response or model_error
    "disconnect_mid_stream": None,  # some model_* code
}


@pytest.mark.parametrize("mode", MODE_FAILURES, ids=list(MODE_FAILURES))
def test_model_server_faults_fail_the_job(alice_http, fake_ollama, mode):
    expected = MODE_FAILURES[mode]
    try:
        fake_ollama.mode = mode
        started = time.monotonic()
        job = submit(alice_http, {"message": unique(f"fault {mode}")})
        ended = wait_for_status(
            lambda: alice_http.job(job["id"]), ENDED, timeout=LLM_READ_TIMEOUT + 12
        )
        elapsed = time.monotonic() - started
        assert ended["status"] == "failed", ended
        code = ended["error"]["code"]
        if expected:
            assert code == expected, ended
        else:
            assert code.startswith("model_"), ended
        assert ended["error"]["message"]
        assert ended["finish_reason"] is None
        assert ended["message_id"] is None

        events = alice_http.events(job["id"])
        assert_failed_stream(events, code)
        assert text_of(events) == (ended["output"] or "")

        if mode in {"hang", "hang_mid_stream"}:
            assert elapsed < LLM_READ_TIMEOUT + 6, elapsed
        if mode == "hang_mid_stream":
            partial = ended["output"]
            assert partial, ended
            assert numbered_words(20).startswith(partial) and partial != numbered_words(20)
        if mode in {"malformed", "disconnect_mid_stream"} and ended["output"]:
            assert ended["output"] != numbered_words(20)
    finally:
        fake_ollama.mode = "ok"
    assert_serves_normally(alice_http, fake_ollama)


def test_model_missing_on_the_server(alice_http, fake_ollama):
    try:
        fake_ollama.models = [LIGHT_MODEL]
        job = submit(alice_http, {"message": unique("no such model"), "model": "heavy"})
        assert job["model"] == HEAVY_MODEL
        ended = wait_for_status(lambda: alice_http.job(job["id"]), ENDED)
        assert ended["status"] == "failed", ended
        assert ended["error"]["code"] == "model_not_found"
        assert_failed_stream(alice_http.events(job["id"]), "model_not_found")
    finally:
        fake_ollama.models = list(DEFAULT_MODELS)
    assert_serves_normally(alice_http, fake_ollama, model="heavy")


def test_model_server_down(alice_http, fake_ollama):
    port = fake_ollama.port
    try:
        fake_ollama.stop()
        job = submit(alice_http, {"message": unique("server down")})
        ended = wait_for_status(lambda: alice_http.job(job["id"]), ENDED)
        assert ended["status"] == "failed", ended
        assert ended["error"]["code"] == "model_unavailable"
        assert ended["output"] is None
        assert_failed_stream(alice_http.events(job["id"]), "model_unavailable")
    finally:
        fake_ollama.start()
    assert fake_ollama.port == port
    assert_serves_normally(alice_http, fake_ollama)


# --- 9. the soft time limit --------------------------------------------------------------


def test_job_past_its_time_limit_fails(alice_http, fake_ollama):
    fake_ollama.token_delay = 0.5
    fake_ollama.reply_tokens = 40  # 20 s of tokens, far past the 8 s limit
    started = time.monotonic()
    job = submit(alice_http, {"message": unique("too slow")})
    ended = wait_for_status(lambda: alice_http.job(job["id"]), ENDED, timeout=25)
    elapsed = time.monotonic() - started
    assert ended["status"] == "failed", ended
    assert ended["error"]["code"] == "time_limit_exceeded"
    assert SOFT_TIME_LIMIT - 1 <= elapsed <= SOFT_TIME_LIMIT + 6, elapsed
    assert ended["output"] != numbered_words(40)

    events = alice_http.events(job["id"])
    assert_failed_stream(events, "time_limit_exceeded")
    assert_serves_normally(alice_http, fake_ollama)
