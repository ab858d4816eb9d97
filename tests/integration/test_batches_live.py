"""Batches end to end over real processes: gunicorn, Celery workers, a fake Ollama.

What is checked is what a client sees (the batch, its counts, its JSONL results), what
reached the model server (which prompts, how many times, in what order) and, where the
order of events matters, the jobs' own timestamps in PostgreSQL. Every request carries a
uuid, so no two tests share a prompt (batch requests bypass the response cache anyway).
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime

import pytest
import requests
from sqlalchemy import select

from core.db import db
from core.models import Job, UsageRecord
from pipeline import queue
from tests.conftest import start_gunicorn, stop_gunicorn
from tests.fakes.ollama import DEFAULT_MODELS, numbered_words
from tests.helpers import batch_counts
from tests.integration.conftest import Client, wait_for_status

pytestmark = pytest.mark.live

BATCHES = "/api/batches"
ENDED_BATCH = {"completed", "cancelled", "failed"}
ENDED_JOB = {"succeeded", "failed", "cancelled"}
LIGHT_MODEL, HEAVY_MODEL = DEFAULT_MODELS
DEFAULT_REPLY = numbered_words(20)  # the fake model's answer unless told otherwise
LIGHT_CONCURRENCY = 4  # the light worker's pool (tests/integration/conftest.py)
LIGHT_TEXT = "hello there, how are you?"
HEAVY_TEXT = (
    "Prove that the square root of 2 is irrational, step by step, "
    "and compare the trade-offs of two proofs."
)


# --- helpers -----------------------------------------------------------------------------


def unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex}"


def line(custom_id: str, content: str, model: str = "light") -> dict:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": content}]},
    }


def jsonl(entries: list[dict]) -> str:
    return "".join(json.dumps(entry) + "\n" for entry in entries)


def submit_jsonl(client: Client, prompts: dict[str, str], model: str = "light") -> dict:
    """POST a JSONL batch of {custom_id: prompt}; the batch (202)."""
    text = jsonl([line(custom_id, prompt, model) for custom_id, prompt in prompts.items()])
    response = client.post(
        BATCHES, data=text.encode(), headers={"Content-Type": "application/jsonl"}
    )
    assert response.status_code == 202, response.text
    return response.json()


def batch_of(client: Client, batch_id: str) -> dict:
    response = client.get(f"{BATCHES}/{batch_id}")
    assert response.status_code == 200, response.text
    return response.json()


def ended(client: Client, batch_id: str, timeout: float = 30) -> dict:
    batch = wait_for_status(lambda: batch_of(client, batch_id), ENDED_BATCH, timeout=timeout)
    assert batch["status"] in ENDED_BATCH, f"batch did not end in {timeout} s: {batch}"
    return batch


def results_of(client: Client, batch_id: str) -> dict[str, dict]:
    """The batch's results by custom_id, checking each custom_id appears once."""
    response = client.get(f"{BATCHES}/{batch_id}/results")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/jsonl")
    lines = [json.loads(raw) for raw in response.text.splitlines()]
    by_id = {result["custom_id"]: result for result in lines}
    assert len(by_id) == len(lines), [result["custom_id"] for result in lines]
    return by_id


def requests_mentioning(fake, text: str) -> list[dict]:
    """The chat requests the model server received whose body contains `text`."""
    return [body for body in list(fake.requests) if text in json.dumps(body, ensure_ascii=False)]


def wait_for_model_requests(fake, marker: str, count: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while len(requests_mentioning(fake, marker)) < count:
        assert time.monotonic() < deadline, f"the model never got {count} requests for {marker}"
        time.sleep(0.02)


def assert_answered(result: dict, body: dict) -> None:
    """A succeeded result: the fake's default reply, and usage as the fake counted it."""
    assert result["status"] == "succeeded", result
    assert result["error"] is None
    response = result["response"]
    prompt = sum(len(m["content"].split()) for m in body["messages"])
    assert response["content"] == DEFAULT_REPLY
    assert response["finish_reason"] == "stop"
    assert response["usage"] == {
        "prompt_tokens": prompt,
        "completion_tokens": 20,
        "total_tokens": prompt + 20,
    }


def job_id_of(result: dict) -> str:
    return str(uuid.UUID(result["id"].removeprefix("batch_req_")))


def batch_jobs(app, batch_id: str) -> list[Job]:
    with app.app_context():
        query = select(Job).where(Job.batch_id == uuid.UUID(batch_id))
        rows = list(db.session.scalars(query))
        db.session.expunge_all()
    return rows


def usage_by_job(app, batch_id: str) -> dict[str, UsageRecord]:
    with app.app_context():
        query = (
            select(UsageRecord)
            .join(Job, Job.id == UsageRecord.job_id)
            .where(Job.batch_id == uuid.UUID(batch_id))
        )
        rows = list(db.session.scalars(query))
        db.session.expunge_all()
    return {str(row.job_id): row for row in rows}


def wait_for_empty_queues(app, timeout: float = 20) -> None:
    """Until the workers have taken every message (ended requests are skipped quickly)."""
    deadline = time.monotonic() + timeout
    with app.app_context():
        while any(queue.queue_depths().values()):
            assert time.monotonic() < deadline, queue.queue_depths()
            time.sleep(0.05)


def skipped_on(worker, job_ids: set[str]) -> set[str]:
    """The jobs among `job_ids` that `worker` took from its queue and skipped as ended."""
    found = set()
    for record in worker.log_records():
        message = record.get("message", "")
        for job_id in job_ids:
            if f"job {job_id} skipped" in message:
                found.add(job_id)
    return found


def wait_until_skipped(worker, job_ids: set[str], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while skipped_on(worker, job_ids) != job_ids:
        assert time.monotonic() < deadline, job_ids - skipped_on(worker, job_ids)
        time.sleep(0.05)


# --- 1. a batch from submission to results -------------------------------------------------


def test_a_json_batch_runs_on_both_tiers_and_its_results_name_every_request(
    app, alice_http, fake_ollama
):
    prompts = {
        "light-1": unique(LIGHT_TEXT),
        "light-2": unique(LIGHT_TEXT),
        "light-3": unique(LIGHT_TEXT),
        "heavy-1": unique(HEAVY_TEXT),
    }
    body = {
        "requests": [{"custom_id": c, "message": m} for c, m in prompts.items()],
        "metadata": {"run": "nightly"},
    }
    response = alice_http.post(BATCHES, json=body)
    assert response.status_code == 202, response.text
    submitted = response.json()

    batch = ended(alice_http, submitted["id"])

    assert batch["status"] == "completed", batch
    assert batch["completed_at"] is not None and batch["cancelled_at"] is None
    assert batch["request_counts"] == batch_counts(4, completed=4)
    assert batch["metadata"] == {"run": "nightly"}
    results = results_of(alice_http, submitted["id"])
    assert set(results) == set(prompts)
    for custom_id, prompt in prompts.items():
        (sent,) = requests_mentioning(fake_ollama, prompt)  # each reached the model once
        assert_answered(results[custom_id], sent)
        tier = "heavy" if custom_id.startswith("heavy") else "light"
        assert results[custom_id]["response"]["tier"] == tier
        assert results[custom_id]["response"]["model"] == sent["model"]
        assert sent["model"] == (HEAVY_MODEL if tier == "heavy" else LIGHT_MODEL)
    # Each request has its usage row, as any job: the tokens the results report.
    usage = usage_by_job(app, submitted["id"])
    assert set(usage) == {job_id_of(result) for result in results.values()}
    for result in results.values():
        row = usage[job_id_of(result)]
        assert row.status == "succeeded"
        assert row.prompt_tokens == result["response"]["usage"]["prompt_tokens"]
        assert row.completion_tokens == result["response"]["usage"]["completion_tokens"]


def test_a_jsonl_batch_with_a_request_failing_at_the_model_completes_with_one_failure(
    alice_http, fake_ollama
):
    fake_ollama.models = [LIGHT_MODEL]  # the heavy model is gone from the model server
    prompts = {f"ok-{n}": unique(LIGHT_TEXT) for n in range(3)}
    doomed = unique(LIGHT_TEXT)

    text = jsonl([line(c, p) for c, p in prompts.items()] + [line("doomed", doomed, model="heavy")])
    response = alice_http.post(
        BATCHES, data=text.encode(), headers={"Content-Type": "application/x-ndjson"}
    )
    assert response.status_code == 202, response.text
    batch = ended(alice_http, response.json()["id"])

    assert batch["status"] == "completed", batch
    assert batch["input_format"] == "jsonl"
    assert batch["request_counts"] == batch_counts(4, completed=3, failed=1)
    results = results_of(alice_http, batch["id"])
    assert set(results) == {*prompts, "doomed"}
    for custom_id, prompt in prompts.items():
        (sent,) = requests_mentioning(fake_ollama, prompt)
        assert_answered(results[custom_id], sent)
    failed = results["doomed"]
    assert failed["status"] == "failed"
    assert failed["response"] is None
    assert failed["error"]["code"] == "model_not_found"
    assert HEAVY_MODEL in failed["error"]["message"]
    assert len(requests_mentioning(fake_ollama, doomed)) == 1  # tried once, not retried


# --- 2. cancelling a running batch ---------------------------------------------------------


def test_cancel_mid_run_stops_queued_requests_and_lets_running_ones_finish(
    app, alice_http, fake_ollama, workers
):
    fake_ollama.token_delay = 0.1  # ~2 s per request
    marker = uuid.uuid4().hex
    prompts = {f"req-{n:02d}": f"{LIGHT_TEXT} {marker} {uuid.uuid4().hex}" for n in range(10)}
    submitted = submit_jsonl(alice_http, prompts)
    wait_for_model_requests(fake_ollama, marker, LIGHT_CONCURRENCY)

    response = alice_http.post(f"{BATCHES}/{submitted['id']}/cancel")

    assert response.status_code == 202, response.text
    cancelling = response.json()
    assert cancelling["status"] == "cancelling"
    assert cancelling["request_counts"] == batch_counts(10, cancelled=6, pending=4)
    # Results so far stay readable while it winds down: the cancelled ones.
    so_far = results_of(alice_http, submitted["id"])
    assert {r["status"] for r in so_far.values()} == {"cancelled"} and len(so_far) == 6

    batch = ended(alice_http, submitted["id"])

    assert batch["status"] == "cancelled", batch
    assert batch["cancelling_at"] and batch["cancelled_at"] and not batch["completed_at"]
    assert batch["request_counts"] == batch_counts(10, completed=4, cancelled=6)
    results = results_of(alice_http, submitted["id"])
    assert set(results) == set(prompts)
    ran = {c for c, result in results.items() if result["status"] == "succeeded"}
    never_ran = {c for c, result in results.items() if result["status"] == "cancelled"}
    assert len(ran) == 4 and len(never_ran) == 6
    for custom_id in ran:  # finished whole, not cut off
        (sent,) = requests_mentioning(fake_ollama, prompts[custom_id])
        assert_answered(results[custom_id], sent)
    for custom_id in never_ran:
        assert results[custom_id]["error"]["code"] == "cancelled"
    usage = usage_by_job(app, submitted["id"])
    assert {job_id: row.status for job_id, row in usage.items()} == {
        job_id_of(result): result["status"] for result in results.values()
    }
    # The worker takes the cancelled requests' messages and drops them: none reach the model.
    wait_until_skipped(workers.light, {job_id_of(results[c]) for c in never_ran})
    assert len(requests_mentioning(fake_ollama, marker)) == 4
    for custom_id in never_ran:
        assert requests_mentioning(fake_ollama, prompts[custom_id]) == []


# --- 3. interactive jobs go first ------------------------------------------------------------


def test_an_interactive_job_starts_before_a_queued_batch_drains(app, alice_http, fake_ollama):
    fake_ollama.reply_tokens = 5
    fake_ollama.token_delay = 0.02  # ~0.1 s per request: 200 take several seconds on 4 slots
    marker = uuid.uuid4().hex
    size = 200
    prompts = {f"req-{n:03d}": f"{LIGHT_TEXT} {marker} {n}" for n in range(size)}
    submitted = submit_jsonl(alice_http, prompts)
    wait_for_model_requests(fake_ollama, marker, 2 * LIGHT_CONCURRENCY)

    before = len(fake_ollama.requests)
    interactive = unique(LIGHT_TEXT)
    response = alice_http.post("/api/jobs", json={"message": interactive, "model": "light"})
    assert response.status_code == 202, response.text
    job = wait_for_status(lambda: alice_http.job(response.json()["id"]), ENDED_JOB, timeout=30)
    assert job["status"] == "succeeded", job

    received = list(fake_ollama.requests)
    position = next(
        n for n, body in enumerate(received) if interactive in json.dumps(body, ensure_ascii=False)
    )
    overtaking = [b for b in received[before:position] if marker in json.dumps(b)]
    # Without priorities it would wait for the whole batch (~190 requests); with them it
    # takes the first slot that frees, behind at most what was already taken.
    assert len(overtaking) <= 3 * LIGHT_CONCURRENCY, len(overtaking)

    # The same from the jobs' timestamps: most of the batch had not started yet.
    started = datetime.fromisoformat(job["timings"]["started_at"])
    jobs = batch_jobs(app, submitted["id"])
    assert len(jobs) == size
    not_yet = [j for j in jobs if j.started_at is None or j.started_at > started]
    assert len(not_yet) >= size // 2, len(not_yet)

    cancelled = alice_http.post(f"{BATCHES}/{submitted['id']}/cancel")
    assert cancelled.status_code == 202, cancelled.text
    assert ended(alice_http, submitted["id"])["status"] == "cancelled"
    wait_for_empty_queues(app)


# --- 4. restarts: the batch lives in PostgreSQL ------------------------------------------------


def test_a_batch_survives_a_worker_restart_with_every_result_once(
    app, alice_http, fake_ollama, workers
):
    fake_ollama.token_delay = 0.05  # ~1 s per request
    marker = uuid.uuid4().hex
    prompts = {f"req-{n:02d}": f"{LIGHT_TEXT} {marker} {uuid.uuid4().hex}" for n in range(12)}
    light = workers.light
    try:
        submitted = submit_jsonl(alice_http, prompts)
        wait_for_model_requests(fake_ollama, marker, LIGHT_CONCURRENCY)

        light.stop()  # warm shutdown: the running requests finish, the rest stay queued

        paused = batch_of(alice_http, submitted["id"])
        assert paused["status"] == "in_progress", paused
        assert paused["request_counts"]["pending"] > 0, paused
        reached = len(requests_mentioning(fake_ollama, marker))
        assert reached < len(prompts)
        time.sleep(0.5)
        assert len(requests_mentioning(fake_ollama, marker)) == reached  # nothing runs

        light.start()
        batch = ended(alice_http, submitted["id"], timeout=40)
    finally:
        if light.process is None or light.process.poll() is not None:
            light.start()

    assert batch["status"] == "completed", batch
    assert batch["request_counts"] == batch_counts(12, completed=12)
    results = results_of(alice_http, submitted["id"])
    assert set(results) == set(prompts)
    for custom_id, prompt in prompts.items():
        (sent,) = requests_mentioning(fake_ollama, prompt)  # generated once, not twice
        assert_answered(results[custom_id], sent)
    assert {job.attempts for job in batch_jobs(app, submitted["id"])} == {1}


def test_a_batch_submitted_to_one_api_server_is_read_from_another(
    alice_http, fake_ollama, tmp_path
):
    fake_ollama.token_delay = 0.02
    prompts = {f"req-{n}": unique(LIGHT_TEXT) for n in range(6)}
    text = jsonl([line(c, p) for c, p in prompts.items()])
    second = start_gunicorn(tmp_path / "second-gunicorn.log", workers=1)
    try:
        response = requests.post(
            f"{second.url}{BATCHES}",
            files={"file": ("batch.jsonl", text.encode(), "application/jsonl")},
            headers=alice_http.headers,
            timeout=30,
        )
        assert response.status_code == 202, response.text
        submitted = response.json()
    finally:
        stop_gunicorn(second)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{second.url}/health", timeout=2)

    batch = ended(alice_http, submitted["id"])

    assert batch["status"] == "completed", batch
    assert batch["id"] == submitted["id"] and batch["created_at"] == submitted["created_at"]
    assert batch["input_format"] == "jsonl"
    assert batch["request_counts"] == batch_counts(6, completed=6)
    results = results_of(alice_http, submitted["id"])
    assert set(results) == set(prompts)
    for custom_id, prompt in prompts.items():
        (sent,) = requests_mentioning(fake_ollama, prompt)
        assert_answered(results[custom_id], sent)
