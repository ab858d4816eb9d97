"""The usage log through real processes: every ended job leaves exactly one usage row.

Jobs run on real Celery workers against the fake Ollama, submitted over HTTP to gunicorn;
the rows are read from PostgreSQL directly (through the `app` fixture's context).
"""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
import requests
from sqlalchemy import select

from core.db import db
from core.models import UsageRecord
from tests.integration.conftest import Client, wait_for_status

pytestmark = pytest.mark.live

ENDED = {"succeeded", "failed", "cancelled"}
TIMINGS = ("queue_wait_ms", "ttft_ms", "duration_ms")
COLUMNS = (
    "job_id",
    "user_id",
    "api_key_id",
    "model",
    "tier",
    "status",
    "prompt_tokens",
    "completion_tokens",
    *TIMINGS,
    "cached",
    "created_at",
)


def unique(label: str) -> str:
    return f"{label} marker {uuid.uuid4().hex}"


def submit(client: Client, body: dict) -> dict:
    response = client.post("/api/jobs/", json=body)
    assert response.status_code == 202, response.text
    return response.json()


def wait_ended(client: Client, job_id: str, timeout: float = 20) -> dict:
    job = wait_for_status(lambda: client.job(job_id), ENDED, timeout=timeout)
    assert job["status"] in ENDED, job
    return job


def usage_rows(app, *, job_id: str | None = None, user_id: str | None = None) -> list[dict]:
    query = select(UsageRecord)
    if job_id is not None:
        query = query.where(UsageRecord.job_id == uuid.UUID(job_id))
    if user_id is not None:
        query = query.where(UsageRecord.user_id == uuid.UUID(user_id))
    with app.app_context():
        records = db.session.scalars(query).all()
        return [{name: getattr(record, name) for name in COLUMNS} for record in records]


def only_row(app, job_id: str) -> dict:
    rows = usage_rows(app, job_id=job_id)
    assert len(rows) == 1, rows
    return rows[0]


def assert_row_matches_job(row: dict, job: dict, client: Client, api_key_id=None) -> None:
    """The row says what the job says: owner, key, model, outcome, tokens and timings."""
    assert row["job_id"] == uuid.UUID(job["id"])
    assert row["user_id"] == uuid.UUID(client.user_id)
    assert row["api_key_id"] == (uuid.UUID(api_key_id) if api_key_id else None)
    assert (row["model"], row["tier"], row["status"]) == (job["model"], job["tier"], job["status"])
    usage = job["usage"] or {"prompt_tokens": 0, "completion_tokens": 0}
    assert row["prompt_tokens"] == usage["prompt_tokens"]
    assert row["completion_tokens"] == usage["completion_tokens"]
    for name in TIMINGS:
        expected = job["timings"][name]
        if expected is None:
            assert row[name] is None, (name, row)
        else:
            assert row[name] is not None, (name, row)
            assert abs(row[name] - expected) <= 0.15, (name, row[name], expected)
    assert row["cached"] is False
    created = datetime.fromisoformat(job["timings"]["created_at"])
    assert row["created_at"] >= created, (row["created_at"], created)


def test_a_succeeded_job_has_one_usage_row_with_its_tokens_and_timings(app, alice_http):
    job = submit(alice_http, {"message": unique("count me")})
    done = wait_ended(alice_http, job["id"])
    assert done["status"] == "succeeded", done
    assert done["usage"]["prompt_tokens"] > 0
    assert done["usage"]["completion_tokens"] > 0

    row = only_row(app, job["id"])

    assert_row_matches_job(row, done, alice_http)
    for name in TIMINGS:
        assert row[name] >= 0, row
    assert len(usage_rows(app, user_id=alice_http.user_id)) == 1


def test_a_job_submitted_with_an_api_key_records_the_key(app, alice_http):
    created = alice_http.post("/api/user/api-keys", json={"name": "ci"})
    assert created.status_code == 201, created.text
    key = created.json()
    response = requests.post(
        f"{alice_http.base}/api/jobs/",
        json={"message": unique("by key"), "model": "heavy"},
        headers={"X-API-Key": key["key"]},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]

    done = wait_ended(alice_http, job_id)
    assert done["status"] == "succeeded", done

    row = only_row(app, job_id)
    assert_row_matches_job(row, done, alice_http, api_key_id=key["id"])
    assert row["tier"] == "heavy"


def test_a_failed_job_has_a_failed_usage_row(app, alice_http, fake_ollama):
    fake_ollama.mode = "error"
    try:
        job = submit(alice_http, {"message": unique("fail me")})
        ended = wait_ended(alice_http, job["id"])
    finally:
        fake_ollama.mode = "ok"
    assert ended["status"] == "failed", ended
    assert ended["error"]["code"].startswith("model_"), ended

    row = only_row(app, job["id"])

    assert row["status"] == "failed"
    assert_row_matches_job(row, ended, alice_http)


def test_a_job_cancelled_while_queued_has_a_cancelled_row_without_tokens(
    app, alice_http, fake_ollama
):
    fake_ollama.token_delay = 0.2
    fake_ollama.reply_tokens = 20  # ~4 s on the single heavy slot
    busy = submit(alice_http, {"message": unique("busy"), "model": "heavy"})
    running = wait_for_status(lambda: alice_http.job(busy["id"]), {"running", *ENDED}, 10)
    assert running["status"] == "running", running

    waiting = submit(alice_http, {"message": unique("never run"), "model": "heavy"})
    assert alice_http.job(waiting["id"])["status"] == "queued"
    response = alice_http.delete(f"/api/jobs/{waiting['id']}")
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "cancelled"

    row = only_row(app, waiting["id"])
    assert row["status"] == "cancelled"
    assert (row["prompt_tokens"], row["completion_tokens"]) == (0, 0)
    assert (row["queue_wait_ms"], row["ttft_ms"], row["duration_ms"]) == (None, None, None)
    assert_row_matches_job(row, alice_http.job(waiting["id"]), alice_http)

    finished = wait_ended(alice_http, busy["id"])
    assert finished["status"] == "succeeded", finished
    assert_row_matches_job(only_row(app, busy["id"]), finished, alice_http)
    # A later heavy job runs after the cancelled job's message was delivered and dropped:
    # the cancelled job still has its one row, unchanged.
    fake_ollama.token_delay = 0.005
    later = submit(alice_http, {"message": unique("later"), "model": "heavy"})
    assert wait_ended(alice_http, later["id"])["status"] == "succeeded"
    assert only_row(app, waiting["id"]) == row
    assert len(usage_rows(app, user_id=alice_http.user_id)) == 3
