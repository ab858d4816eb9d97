"""Batches through the Flask test client: submission, validation, reading, cancelling, CLI.

No worker runs here: a batch's requests stay queued unless the API itself ends them (a
cancel), or a test plays the worker's part by claiming and finishing a job through the
same service calls a worker makes (`jobs_repo.claim`, `lifecycle.finish`).

Batch jobs are created without a response-cache key (`cache_key` is None: neither read
nor written), so nothing here or in the live tests is linked through the cache.
"""

from __future__ import annotations

import io
import json
import uuid

import pytest
from sqlalchemy import func, select

from api import create_app
from api.services import batches as batches_service
from config.settings import TestingConfig
from core.db import db
from core.models import Batch, Conversation, Job, UsageRecord
from core.models.base import utcnow
from core.repositories import jobs as jobs_repo
from pipeline import lifecycle, queue
from tests.conftest import register_and_login
from tests.helpers import app_with, batch_counts, error_of, queued_messages

pytestmark = pytest.mark.usefixtures("clean_after")

BATCHES = "/api/batches"
JOBS = "/api/jobs"
CONFIG = TestingConfig()
LIGHT_MODEL, HEAVY_MODEL = CONFIG.MODEL_LIGHT, CONFIG.MODEL_HEAVY
# What the classifier routes to each tier (checked in the tests that rely on it).
LIGHT_TEXT = "hello there, how are you?"
HEAVY_TEXT = (
    "Prove that the square root of 2 is irrational, step by step, "
    "and compare the trade-offs of two proofs."
)
BATCH_FIELDS = {
    "id",
    "object",
    "status",
    "input_format",
    "metadata",
    "request_counts",
    "created_at",
    "in_progress_at",
    "completed_at",
    "cancelling_at",
    "cancelled_at",
    "failed_at",
    "links",
}
RESULT_FIELDS = {"id", "custom_id", "status", "response", "error"}


# --- helpers -----------------------------------------------------------------------------


def unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex}"


def item(custom_id: str, message: str | None = None, **fields) -> dict:
    """One request of the JSON form."""
    return {"custom_id": custom_id, "message": message or unique(LIGHT_TEXT), **fields}


def line(custom_id: str, content: str | None = None, model: str = "light", **body) -> dict:
    """One line of OpenAI's batch file format."""
    messages = [{"role": "user", "content": content or unique(LIGHT_TEXT)}]
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": model, "messages": messages, **body},
    }


def jsonl(*entries) -> str:
    """JSON Lines: dicts are dumped, strings are taken as they are (bad or blank lines)."""
    return "".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in entries)


def post_json(client, account, requests: list, **extra):
    return client.post(BATCHES, json={"requests": requests, **extra}, headers=account.headers)


def post_jsonl(client, account, text: str, content_type: str = "application/jsonl"):
    return client.post(
        BATCHES, data=text.encode(), content_type=content_type, headers=account.headers
    )


def post_upload(client, account, data: bytes, field: str = "file"):
    return client.post(
        BATCHES,
        data={field: (io.BytesIO(data), "batch.jsonl")},
        content_type="multipart/form-data",
        headers=account.headers,
    )


def accepted(response) -> dict:
    assert response.status_code == 202, response.get_data(as_text=True)
    batch = response.get_json()
    assert set(batch) == BATCH_FIELDS, batch
    return batch


def submit_json(client, account, n: int = 3, **extra) -> dict:
    return accepted(post_json(client, account, [item(f"req-{i}") for i in range(n)], **extra))


def get_batch(client, account, batch_id: str) -> dict:
    response = client.get(f"{BATCHES}/{batch_id}", headers=account.headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def results_of(client, account, batch_id: str) -> list[dict]:
    response = client.get(f"{BATCHES}/{batch_id}/results", headers=account.headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/jsonl"
    text = response.get_data(as_text=True)
    assert text == "" or text.endswith("\n")
    lines = [json.loads(raw) for raw in text.splitlines()]
    for result in lines:
        assert set(result) == RESULT_FIELDS, result
    return lines


def cancel(client, account, batch_id: str):
    return client.post(f"{BATCHES}/{batch_id}/cancel", headers=account.headers)


def stored_jobs(app, batch_id: str | None = None) -> list[Job]:
    """The batch's jobs (all jobs when None), in submission order, detached."""
    with app.app_context():
        query = select(Job).order_by(Job.created_at, Job.custom_id)
        if batch_id is not None:
            query = query.where(Job.batch_id == uuid.UUID(batch_id))
        rows = list(db.session.scalars(query))
        db.session.expunge_all()
    return rows


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def usage_rows(app) -> dict[uuid.UUID, UsageRecord]:
    with app.app_context():
        rows = list(db.session.scalars(select(UsageRecord)))
        db.session.expunge_all()
    return {row.job_id: row for row in rows}


def assert_nothing_stored(app, redis_client) -> None:
    assert count(app, Batch) == 0
    assert count(app, Job) == 0
    assert queued_messages(app, redis_client) == []


def start(app, job_id: uuid.UUID) -> None:
    """What a worker does when it takes a job: queued → running."""
    with app.app_context():
        assert jobs_repo.claim(job_id, utcnow()).attempts == 1
        db.session.commit()


def finish(app, job_id: uuid.UUID, status: str, **fields) -> None:
    """What a worker does when a job ends (the batch is settled from there)."""
    with app.app_context():
        job = db.session.get(Job, job_id)
        lifecycle.finish(job, status, **fields)


def succeed(app, job_id: uuid.UUID, text: str = "the answer") -> None:
    start(app, job_id)
    finish(
        app,
        job_id,
        "succeeded",
        output=text,
        finish_reason="stop",
        prompt_tokens=7,
        completion_tokens=3,
        first_token_at=utcnow(),
    )


# --- 1. creating a batch -------------------------------------------------------------------


def test_a_json_batch_is_202_and_each_request_is_a_queued_job(app, client, alice, redis_client):
    light, heavy, chosen = unique(LIGHT_TEXT), unique(HEAVY_TEXT), unique(LIGHT_TEXT)
    requests = [
        item("light-one", light),
        item("heavy-one", heavy),
        item("chosen", chosen, model="heavy", tools=False, max_tokens=50, temperature=0.5),
    ]

    response = post_json(client, alice, requests, metadata={"project": "docs", "run": "7"})

    batch = accepted(response)
    assert batch["object"] == "batch"
    assert batch["status"] == "in_progress"
    assert batch["input_format"] == "json"
    assert batch["metadata"] == {"project": "docs", "run": "7"}
    assert batch["request_counts"] == batch_counts(3, pending=3)
    assert batch["created_at"] and batch["in_progress_at"]
    for name in ("completed_at", "cancelling_at", "cancelled_at", "failed_at"):
        assert batch[name] is None, name
    path = f"{BATCHES}/{batch['id']}"
    assert batch["links"] == {
        "self": path,
        "results": f"{path}/results",
        "cancel": f"{path}/cancel",
    }
    assert get_batch(client, alice, batch["id"]) == batch

    jobs = {job.custom_id: job for job in stored_jobs(app, batch["id"])}
    assert set(jobs) == {"light-one", "heavy-one", "chosen"}
    for job in jobs.values():
        assert job.status == "queued"
        assert str(job.user_id) == alice.id
        assert job.conversation_id is None and job.user_message_id is None
        assert job.cache_key is None  # batch requests bypass the response cache
        assert job.idempotency_key is None
    # The classifier routes the requests that leave the model to it.
    assert (jobs["light-one"].tier, jobs["light-one"].model) == ("light", LIGHT_MODEL)
    assert (jobs["heavy-one"].tier, jobs["heavy-one"].model) == ("heavy", HEAVY_MODEL)
    assert (jobs["chosen"].tier, jobs["chosen"].model) == ("heavy", HEAVY_MODEL)
    assert jobs["light-one"].input == {
        "messages": [{"role": "user", "content": light}],
        "params": {"tools": True, "max_tokens": CONFIG.DEFAULT_MAX_TOKENS, "temperature": None},
    }
    assert jobs["chosen"].input["params"] == {"tools": False, "max_tokens": 50, "temperature": 0.5}
    assert count(app, Conversation) == 0  # batch requests keep no conversation

    # Each job is on its tier's queue, behind every interactive job (priority 9).
    messages = queued_messages(app, redis_client)
    by_job = {m["job_id"]: m for m in messages}
    assert len(messages) == 3 and set(by_job) == {str(job.id) for job in jobs.values()}
    for job in jobs.values():
        message = by_job[str(job.id)]
        assert message["queue"] == job.tier
        assert message["task"] == queue.TASK_BY_TIER[job.tier]
        assert message["priority"] == queue.BATCH_PRIORITY == 9
        assert message["step"] == 9


def test_an_interactive_job_is_queued_ahead_of_batch_requests(app, client, alice, redis_client):
    batch = accepted(post_json(client, alice, [item("a", model="light")]))
    submitted = client.post(
        JOBS, json={"message": unique(LIGHT_TEXT), "model": "light"}, headers=alice.headers
    )
    assert submitted.status_code == 202, submitted.get_json()

    (batch_job,) = stored_jobs(app, batch["id"])
    by_job = {m["job_id"]: m for m in queued_messages(app, redis_client)}
    interactive = by_job[submitted.get_json()["id"]]
    assert (interactive["queue"], interactive["step"]) == ("light", 0)
    assert by_job[str(batch_job.id)]["step"] == 9
    # On Redis the lowest step is served first.
    assert interactive["step"] < by_job[str(batch_job.id)]["step"]


@pytest.mark.parametrize("content_type", ["application/jsonl", "application/x-ndjson"])
def test_a_jsonl_body_is_a_batch_in_openais_line_format(app, client, alice, content_type):
    system = {"role": "system", "content": "Answer in French."}
    first, second, third = unique(LIGHT_TEXT), unique(HEAVY_TEXT), unique(LIGHT_TEXT)
    text = jsonl(
        line("by-name", first, model=LIGHT_MODEL, max_tokens=64, temperature=0.2),
        "",  # blank lines are skipped
        {
            **line("auto", second, model="auto"),
            "body": {
                "model": "auto",
                "messages": [system, {"role": "user", "content": second}],
                "max_completion_tokens": 32,
            },
        },
        "   ",
        line("heavy", third, model="heavy"),
    )

    batch = accepted(post_jsonl(client, alice, text, content_type))

    assert batch["input_format"] == "jsonl"
    assert batch["metadata"] is None
    assert batch["request_counts"] == batch_counts(3, pending=3)
    jobs = {job.custom_id: job for job in stored_jobs(app, batch["id"])}
    assert set(jobs) == {"by-name", "auto", "heavy"}
    assert all(job.status == "queued" and job.conversation_id is None for job in jobs.values())
    assert (jobs["by-name"].tier, jobs["by-name"].model) == ("light", LIGHT_MODEL)
    assert (jobs["auto"].tier, jobs["auto"].model) == ("heavy", HEAVY_MODEL)  # the classifier
    assert (jobs["heavy"].tier, jobs["heavy"].model) == ("heavy", HEAVY_MODEL)
    assert jobs["by-name"].input == {
        "messages": [{"role": "user", "content": first}],
        # OpenAI clients bring their own tools: the gateway's web search is off.
        "params": {"tools": False, "max_tokens": 64, "temperature": 0.2},
    }
    assert jobs["auto"].input["messages"] == [system, {"role": "user", "content": second}]
    assert jobs["auto"].input["params"]["max_tokens"] == 32
    assert count(app, Conversation) == 0


def test_a_jsonl_file_can_be_uploaded_in_the_form_field_file(app, client, alice):
    text = jsonl(line("one"), line("two", model="heavy"))

    batch = accepted(post_upload(client, alice, text.encode()))

    assert batch["input_format"] == "jsonl"
    assert batch["request_counts"] == batch_counts(2, pending=2)
    jobs = stored_jobs(app, batch["id"])
    assert [(job.custom_id, job.tier) for job in jobs] == [("one", "light"), ("two", "heavy")]


def test_an_upload_without_the_file_field_is_400_and_stores_nothing(
    app, client, alice, redis_client
):
    text = jsonl(line("one"))

    error = error_of(
        post_upload(client, alice, text.encode(), field="upload"), 400, "invalid_batch"
    )

    assert "file" in error["message"]
    assert_nothing_stored(app, redis_client)


def test_a_file_that_is_not_utf8_is_400(app, client, alice, redis_client):
    data = json.dumps(line("one", "caf\u00e9"), ensure_ascii=False).encode("latin-1")
    assert b"caf\xe9" in data

    error = error_of(post_upload(client, alice, data), 400, "invalid_batch")

    assert "UTF-8" in error["message"]
    assert_nothing_stored(app, redis_client)


def test_a_batch_needs_a_login(client):
    response = client.post(BATCHES, json={"requests": [item("a")]})

    error_of(response, 401)


def test_a_batch_sent_with_an_api_key_records_the_key(app, client, alice):
    created = client.post("/api/user/api-keys", json={"name": "cron"}, headers=alice.headers)
    assert created.status_code == 201, created.get_json()
    key = {"X-API-Key": created.get_json()["key"]}

    response = client.post(BATCHES, json={"requests": [item("a")]}, headers=key)

    batch = accepted(response)
    with app.app_context():
        stored = db.session.get(Batch, uuid.UUID(batch["id"]))
        assert str(stored.api_key_id) == created.get_json()["id"]
    (job,) = stored_jobs(app, batch["id"])
    assert str(job.api_key_id) == created.get_json()["id"]


# --- 2. a bad batch is refused whole -------------------------------------------------------


def test_a_jsonl_batch_with_bad_lines_is_400_listing_each_and_stores_nothing(
    app, client, alice, redis_client
):
    wrong_url = {**line("wrong-url"), "url": "/v1/completions"}
    wrong_method = {**line("wrong-method"), "method": "GET"}
    no_body = {k: v for k, v in line("no-body").items() if k != "body"}
    text = jsonl(
        line("ok-1"),  # 1
        line("ok-1"),  # 2: repeats line 1
        line("blank", "   "),  # 3
        line("unknown-model", model="gpt-4o"),  # 4
        line("streamed", stream=True),  # 5
        wrong_url,  # 6
        wrong_method,  # 7
        '{"custom_id": "broken", "method": ',  # 8: not JSON
        no_body,  # 9
        "",  # 10: blank, skipped (but counted as a line number)
        line("ok-2"),  # 11
        line("x" * 65),  # 12: custom_id too long
        line(""),  # 13: custom_id empty
    )

    error = error_of(post_jsonl(client, alice, text), 400, "invalid_batch")

    details = error["details"]
    assert details["total"] == 12 and details["invalid"] == 10
    problems = {problem["line"]: problem["errors"] for problem in details["lines"]}
    assert list(problems) == [2, 3, 4, 5, 6, 7, 8, 9, 12, 13]
    assert problems[2] == {"custom_id": ["Repeats line 1."]}
    assert set(problems[3]) == {"body"} and "messages" in problems[3]["body"]
    assert set(problems[4]) == {"model"} and "gpt-4o" in problems[4]["model"][0]
    assert problems[5] == {"body": {"stream": ["A batch request cannot stream."]}}
    assert set(problems[6]) == {"url"}
    assert set(problems[7]) == {"method"}
    assert problems[8] == {"_line": ["Not valid JSON."]}
    assert problems[9] == {"body": ["Missing data for required field."]}
    assert set(problems[12]) == {"custom_id"}
    assert set(problems[13]) == {"custom_id"}
    assert "lines 2, 3, 4, 5, 6, 7, 8, 9, 12, 13" in error["message"]
    assert_nothing_stored(app, redis_client)


def test_a_bad_uploaded_file_is_refused_the_same_way(app, client, alice, redis_client):
    text = jsonl(line("a"), "not json at all", line("a"))

    error = error_of(post_upload(client, alice, text.encode()), 400, "invalid_batch")

    assert [(p["line"], p["errors"]) for p in error["details"]["lines"]] == [
        (2, {"_line": ["Not valid JSON."]}),
        (3, {"custom_id": ["Repeats line 1."]}),
    ]
    assert_nothing_stored(app, redis_client)


def test_a_json_batch_with_bad_requests_is_400_listing_each_and_stores_nothing(
    app, client, alice, redis_client
):
    requests = [
        item("a"),  # 1
        item("a"),  # 2: repeats 1
        item("blank", "   "),  # 3
        item("unknown-model", model="gpt-4o"),  # 4
        {"message": unique(LIGHT_TEXT)},  # 5: no custom_id
        item("streamed", stream=True),  # 6: not a field of the JSON form
        "just a string",  # 7
        item("zero", max_tokens=0),  # 8
        item("ok"),  # 9
    ]

    error = error_of(post_json(client, alice, requests), 400, "invalid_batch")

    details = error["details"]
    assert details["total"] == 9 and details["invalid"] == 7
    problems = {problem["line"]: problem["errors"] for problem in details["lines"]}
    assert list(problems) == [2, 3, 4, 5, 6, 7, 8]
    assert problems[2] == {"custom_id": ["Repeats line 1."]}
    assert problems[3] == {"message": ["Must not be blank."]}
    assert set(problems[4]) == {"model"} and "gpt-4o" in problems[4]["model"][0]
    assert set(problems[5]) == {"custom_id"}
    assert set(problems[6]) == {"stream"}
    assert set(problems[7]) == {"_schema"}
    assert set(problems[8]) == {"max_tokens"}
    assert_nothing_stored(app, redis_client)


def test_custom_ids_are_compared_after_trimming(app, client, alice, redis_client):
    error = error_of(post_json(client, alice, [item("a"), item("  a ")]), 400, "invalid_batch")

    assert error["details"]["lines"] == [{"line": 2, "errors": {"custom_id": ["Repeats line 1."]}}]
    assert_nothing_stored(app, redis_client)


def test_at_most_a_hundred_bad_lines_are_listed(app, client, alice, redis_client):
    text = jsonl(*["{oops"] * 150)

    error = error_of(post_jsonl(client, alice, text), 400, "invalid_batch")

    details = error["details"]
    assert (details["invalid"], details["total"]) == (150, 150)
    assert [p["line"] for p in details["lines"]] == list(range(1, 101))
    assert "(and 50 more)" in error["message"]
    assert_nothing_stored(app, redis_client)


@pytest.mark.parametrize(
    "send",
    [
        lambda client, alice: post_json(client, alice, []),
        lambda client, alice: post_jsonl(client, alice, ""),
        lambda client, alice: post_jsonl(client, alice, "\n  \n\n"),
        lambda client, alice: post_upload(client, alice, b""),
    ],
    ids=["json", "jsonl-empty", "jsonl-blank-lines", "upload-empty"],
)
def test_an_empty_batch_is_400(app, client, alice, redis_client, send):
    error = error_of(send(client, alice), 400, "invalid_batch")

    assert "at least one request" in error["message"]
    assert_nothing_stored(app, redis_client)


def test_a_body_that_is_not_json_is_400_as_on_other_endpoints(app, client, alice, redis_client):
    response = client.post(
        BATCHES, data='{"requests": [', content_type="application/json", headers=alice.headers
    )

    error = error_of(response, 400, "bad_request")
    assert "not valid JSON" in error["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "requests"),
        ({"requests": "not a list"}, "requests"),
        ({"requests": [item("a")], "extra": 1}, "extra"),
        ({"requests": [item("a")], "metadata": {"k": 1}}, "metadata"),
        ({"requests": [item("a")], "metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
    ],
    ids=["no-requests", "requests-not-a-list", "unknown-field", "metadata-value", "metadata-size"],
)
def test_a_malformed_json_envelope_is_422(app, client, alice, redis_client, body, field):
    response = client.post(BATCHES, json=body, headers=alice.headers)

    error = error_of(response, 422, "validation_error")
    assert field in error["details"]["json"]
    assert_nothing_stored(app, redis_client)


def test_over_batch_max_requests_is_400_and_at_the_limit_is_accepted(
    monkeypatch, app, alice, redis_client
):
    client = app_with(monkeypatch, BATCH_MAX_REQUESTS=3).test_client()

    too_many_json = post_json(client, alice, [item(f"r{i}") for i in range(4)])
    too_many_jsonl = post_jsonl(client, alice, jsonl(*[line(f"r{i}") for i in range(4)]))

    for response in (too_many_json, too_many_jsonl):
        error = error_of(response, 400, "invalid_batch")
        assert error["details"] == {"total": 4, "limit": 3}
        assert "at most 3" in error["message"]
    assert_nothing_stored(app, redis_client)

    at_limit = accepted(post_jsonl(client, alice, jsonl(*[line(f"r{i}") for i in range(3)])))
    assert at_limit["request_counts"]["total"] == 3


def test_over_batch_max_requests_counts_lines_that_are_not_json(
    monkeypatch, app, alice, redis_client
):
    client = app_with(monkeypatch, BATCH_MAX_REQUESTS=2).test_client()

    response = post_jsonl(client, alice, jsonl(line("a"), "{bad", line("b")))

    assert error_of(response, 400, "invalid_batch")["details"] == {"total": 3, "limit": 2}
    assert_nothing_stored(app, redis_client)


# --- 3. body size and content types --------------------------------------------------------


def _padded_batch(size: int) -> tuple[dict, str]:
    """A JSON envelope and a JSONL text of one request, each about `size` bytes long."""
    content = "y" * size
    return {"requests": [item("big", content)]}, jsonl(line("big", content))


def test_batches_take_bodies_up_to_batch_max_bytes_and_others_keep_their_limit(
    monkeypatch, app, alice
):
    client = app_with(monkeypatch, MAX_CONTENT_LENGTH=2000, BATCH_MAX_BYTES=6000).test_client()
    envelope, text = _padded_batch(3000)

    accepted(client.post(BATCHES, json=envelope, headers=alice.headers))
    accepted(post_jsonl(client, alice, text))
    accepted(post_upload(client, alice, text.encode()))
    job = client.post(JOBS, json={"message": "y" * 3000}, headers=alice.headers)

    error_of(job, 413, "payload_too_large")
    assert count(app, Batch) == 3


@pytest.mark.parametrize("form", ["json", "jsonl", "upload"])
def test_a_batch_over_batch_max_bytes_is_413_and_stores_nothing(
    monkeypatch, app, alice, redis_client, form
):
    client = app_with(monkeypatch, MAX_CONTENT_LENGTH=2000, BATCH_MAX_BYTES=6000).test_client()
    envelope, text = _padded_batch(7000)
    send = {
        "json": lambda: client.post(BATCHES, json=envelope, headers=alice.headers),
        "jsonl": lambda: post_jsonl(client, alice, text),
        "upload": lambda: post_upload(client, alice, text.encode()),
    }[form]

    error_of(send(), 413, "payload_too_large")

    assert_nothing_stored(app, redis_client)


def test_the_413_of_a_batch_names_the_batch_limit(monkeypatch, app, alice):
    client = app_with(monkeypatch, MAX_CONTENT_LENGTH=2000, BATCH_MAX_BYTES=6000).test_client()
    _, text = _padded_batch(7000)

    error = error_of(post_jsonl(client, alice, text), 413, "payload_too_large")

    assert "6000" in error["message"], error["message"]


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        (JOBS, "application/jsonl"),
        (JOBS, "application/x-ndjson"),
        (JOBS, "multipart/form-data; boundary=xyz"),
        ("/api/conversations", "application/jsonl"),
        ("/api/chat", "multipart/form-data; boundary=xyz"),
        ("/v1/chat/completions", "application/jsonl"),
        (BATCHES, "text/plain"),
        (BATCHES, "text/csv"),
    ],
)
def test_other_content_types_are_still_415(client, alice, path, content_type):
    body = jsonl(line("a")) if "multipart" not in content_type else "--xyz--\r\n"

    response = client.post(path, data=body, content_type=content_type, headers=alice.headers)

    assert response.status_code == 415, response.get_data(as_text=True)
    if not path.startswith("/v1/"):  # the OpenAI-compatible API has OpenAI's error shape
        error_of(response, 415, "unsupported_media_type")


# --- 4. reading batches: owner only, paginated ---------------------------------------------


def test_another_users_batch_is_404_to_read_its_results_and_to_cancel(app, client, alice, bob):
    batch = submit_json(client, alice, 2)
    path = f"{BATCHES}/{batch['id']}"

    error_of(client.get(path, headers=bob.headers), 404, "not_found")
    error_of(client.get(f"{path}/results", headers=bob.headers), 404, "not_found")
    error_of(client.post(f"{path}/cancel", headers=bob.headers), 404, "not_found")

    assert get_batch(client, alice, batch["id"])["status"] == "in_progress"
    assert all(job.status == "queued" for job in stored_jobs(app, batch["id"]))


def test_an_unknown_batch_is_404(client, alice):
    path = f"{BATCHES}/{uuid.uuid4()}"

    error_of(client.get(path, headers=alice.headers), 404, "not_found")
    error_of(client.get(f"{path}/results", headers=alice.headers), 404, "not_found")
    error_of(client.post(f"{path}/cancel", headers=alice.headers), 404, "not_found")
    error_of(client.get(f"{BATCHES}/not-a-uuid", headers=alice.headers), 404)


def test_the_batch_list_is_the_users_own_newest_first_and_paginated(client, alice, bob):
    ids = [submit_json(client, alice, n + 1, metadata={"n": str(n)})["id"] for n in range(3)]
    bobs = submit_json(client, bob, 1)["id"]

    first = client.get(f"{BATCHES}?page_size=2", headers=alice.headers)
    second = client.get(f"{BATCHES}?page_size=2&page=2", headers=alice.headers)
    others = client.get(BATCHES, headers=bob.headers)

    assert first.status_code == second.status_code == others.status_code == 200
    page1, page2 = first.get_json(), second.get_json()
    assert (page1["total"], page1["page"], page1["page_size"]) == (3, 1, 2)
    assert (page2["total"], page2["page"], page2["page_size"]) == (3, 2, 2)
    listed = page1["items"] + page2["items"]
    assert [batch["id"] for batch in listed] == ids[::-1]
    for batch in listed:
        assert set(batch) == BATCH_FIELDS
    assert [batch["request_counts"] for batch in listed] == [
        batch_counts(3, pending=3),
        batch_counts(2, pending=2),
        batch_counts(1, pending=1),
    ]
    assert listed[0]["metadata"] == {"n": "2"}
    assert [batch["id"] for batch in others.get_json()["items"]] == [bobs]


@pytest.mark.parametrize("query", ["page_size=0", "page=0", "status=queued"])
def test_a_bad_list_query_is_422(client, alice, query):
    error_of(client.get(f"{BATCHES}?{query}", headers=alice.headers), 422, "validation_error")


# --- 5. ending a batch: its requests end, then the batch --------------------------------


def test_the_batch_completes_when_its_last_request_ends(app, client, alice):
    batch = submit_json(client, alice, 3)
    first, second, third = stored_jobs(app, batch["id"])

    succeed(app, first.id, "first answer")
    start(app, second.id)
    after_one = get_batch(client, alice, batch["id"])
    assert after_one["status"] == "in_progress"
    assert after_one["request_counts"] == batch_counts(3, completed=1, pending=2)
    assert [r["custom_id"] for r in results_of(client, alice, batch["id"])] == ["req-0"]

    finish(app, second.id, "failed", error_code="model_error", error_message="It broke.")
    succeed(app, third.id, "third answer")

    ended = get_batch(client, alice, batch["id"])
    assert ended["status"] == "completed"
    assert ended["completed_at"] is not None
    assert ended["cancelled_at"] is None and ended["failed_at"] is None
    assert ended["request_counts"] == batch_counts(3, completed=2, failed=1)
    results = results_of(client, alice, batch["id"])
    assert [(r["custom_id"], r["status"]) for r in results] == [
        ("req-0", "succeeded"),
        ("req-1", "failed"),
        ("req-2", "succeeded"),
    ]
    assert results[0]["id"] == f"batch_req_{first.id.hex}"
    assert results[0]["response"] == {
        "content": "first answer",
        "model": first.model,
        "tier": first.tier,
        "finish_reason": "stop",
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }
    assert results[0]["error"] is None
    assert results[1]["response"] is None
    assert results[1]["error"] == {"code": "model_error", "message": "It broke."}
    error_of(cancel(client, alice, batch["id"]), 409, "conflict")


def test_results_are_in_submission_order_not_custom_id_order(app, client, alice):
    custom_ids = [f"id-{n:02d}" for n in range(40, 0, -1)]  # descending
    batch = accepted(post_json(client, alice, [item(c) for c in custom_ids]))
    assert cancel(client, alice, batch["id"]).status_code == 202

    results = results_of(client, alice, batch["id"])

    assert [result["custom_id"] for result in results] == custom_ids


def test_cancelling_a_batch_that_nothing_runs_cancels_every_request(
    app, client, alice, redis_client
):
    batch = submit_json(client, alice, 3)

    response = cancel(client, alice, batch["id"])

    assert response.status_code == 202, response.get_json()
    cancelled = response.get_json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancelling_at"] is not None and cancelled["cancelled_at"] is not None
    assert cancelled["completed_at"] is None
    assert cancelled["request_counts"] == batch_counts(3, cancelled=3)
    assert get_batch(client, alice, batch["id"]) == cancelled
    jobs = stored_jobs(app, batch["id"])
    assert all(job.status == "cancelled" and job.finished_at for job in jobs)
    assert all(job.started_at is None for job in jobs)
    rows = usage_rows(app)
    assert set(rows) == {job.id for job in jobs}
    assert {row.status for row in rows.values()} == {"cancelled"}
    assert all(str(row.user_id) == alice.id for row in rows.values())
    results = results_of(client, alice, batch["id"])
    assert [(r["custom_id"], r["status"]) for r in results] == [
        ("req-0", "cancelled"),
        ("req-1", "cancelled"),
        ("req-2", "cancelled"),
    ]
    for result in results:
        assert result["response"] is None
        assert result["error"]["code"] == "cancelled" and result["error"]["message"]

    again = cancel(client, alice, batch["id"])

    assert "cancelled" in error_of(again, 409, "conflict")["message"]
    assert len(usage_rows(app)) == 3  # no second usage row


def test_cancelling_lets_running_requests_finish_then_the_batch_is_cancelled(app, client, alice):
    batch = submit_json(client, alice, 3)
    running, *queued = stored_jobs(app, batch["id"])
    start(app, running.id)

    response = cancel(client, alice, batch["id"])

    assert response.status_code == 202, response.get_json()
    cancelling = response.get_json()
    assert cancelling["status"] == "cancelling"
    assert cancelling["cancelling_at"] is not None and cancelling["cancelled_at"] is None
    assert cancelling["request_counts"] == batch_counts(3, cancelled=2, pending=1)
    by_id = {job.id: job for job in stored_jobs(app, batch["id"])}
    assert by_id[running.id].status == "running"
    assert {by_id[job.id].status for job in queued} == {"cancelled"}
    assert set(usage_rows(app)) == {job.id for job in queued}
    assert [r["status"] for r in results_of(client, alice, batch["id"])] == ["cancelled"] * 2

    # Cancelling again while it winds down changes nothing.
    again = cancel(client, alice, batch["id"])
    assert again.status_code == 202, again.get_json()
    assert again.get_json()["status"] == "cancelling"
    assert again.get_json()["cancelling_at"] == cancelling["cancelling_at"]

    finish(
        app,
        running.id,
        "succeeded",
        output="finished anyway",
        finish_reason="stop",
        prompt_tokens=2,
        completion_tokens=2,
    )

    ended = get_batch(client, alice, batch["id"])
    assert ended["status"] == "cancelled"
    assert ended["cancelled_at"] is not None and ended["completed_at"] is None
    assert ended["request_counts"] == batch_counts(3, completed=1, cancelled=2)
    results = results_of(client, alice, batch["id"])
    assert [(r["custom_id"], r["status"]) for r in results] == [
        ("req-0", "succeeded"),
        ("req-1", "cancelled"),
        ("req-2", "cancelled"),
    ]
    assert results[0]["response"]["content"] == "finished anyway"
    error_of(cancel(client, alice, batch["id"]), 409, "conflict")


def test_a_cancel_racing_the_last_request_leaves_the_completed_batch_alone(
    monkeypatch, app, client, alice
):
    batch = submit_json(client, alice, 1)
    (job,) = stored_jobs(app, batch["id"])
    start(app, job.id)
    read_batch = batches_service.get

    def read_then_the_worker_finishes(user_id, batch_id):
        found = read_batch(user_id, batch_id)  # the cancel has read the batch: in progress
        # Meanwhile a worker ends the last request (its own session): the batch completes.
        finish(app, job.id, "succeeded", output="done", prompt_tokens=1, completion_tokens=1)
        return found

    monkeypatch.setattr(batches_service, "get", read_then_the_worker_finishes)

    cancel(client, alice, batch["id"])

    monkeypatch.undo()
    ended = get_batch(client, alice, batch["id"])
    assert ended["request_counts"] == batch_counts(1, completed=1)
    assert (ended["status"], ended["cancelled_at"]) == ("completed", None), ended


def test_cancelling_a_batch_request_as_a_job_ends_the_batch_when_it_is_the_last(app, client, alice):
    batch = submit_json(client, alice, 2)
    first, second = stored_jobs(app, batch["id"])
    succeed(app, first.id)

    response = client.delete(f"{JOBS}/{second.id}", headers=alice.headers)

    assert response.status_code == 202, response.get_json()
    ended = get_batch(client, alice, batch["id"])
    assert ended["status"] == "completed"
    assert ended["request_counts"] == batch_counts(2, completed=1, cancelled=1)


def test_a_batch_whose_queue_is_unreachable_is_failed(monkeypatch, app, redis_client):
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")
    client = create_app(TestingConfig()).test_client()
    account = register_and_login(client, "queue@example.com")

    batch = submit_json(client, account, 2)

    assert batch["status"] == "failed"
    assert batch["failed_at"] is not None
    assert batch["request_counts"] == batch_counts(2, failed=2)
    results = results_of(client, account, batch["id"])
    assert [r["error"]["code"] for r in results] == ["queue_unavailable"] * 2
    error_of(cancel(client, account, batch["id"]), 409, "conflict")


def test_batch_requests_failed_for_an_unreachable_queue_have_usage_rows(monkeypatch, app):
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")
    client = create_app(TestingConfig()).test_client()
    account = register_and_login(client, "queue@example.com")

    batch = submit_json(client, account, 2)

    jobs = stored_jobs(app, batch["id"])
    assert set(usage_rows(app)) == {job.id for job in jobs}


def test_deleting_an_ended_batch_removes_it_and_its_results_and_keeps_usage(app, client, alice):
    batch = submit_json(client, alice, 2)
    first, second = stored_jobs(app, batch["id"])
    succeed(app, first.id)
    succeed(app, second.id)
    assert get_batch(client, alice, batch["id"])["status"] == "completed"

    response = client.delete(f"{BATCHES}/{batch['id']}", headers=alice.headers)

    assert response.status_code == 204
    error_of(client.get(f"{BATCHES}/{batch['id']}", headers=alice.headers), 404, "not_found")
    results = client.get(f"{BATCHES}/{batch['id']}/results", headers=alice.headers)
    error_of(results, 404, "not_found")
    assert (count(app, Batch), count(app, Job)) == (0, 0)
    # The usage log still counts what the batch generated, without the job it came from.
    rows = usage_rows(app)
    assert set(rows) == {None} and count(app, UsageRecord) == 2
    again = client.delete(f"{BATCHES}/{batch['id']}", headers=alice.headers)
    error_of(again, 404, "not_found")


def test_a_batch_that_has_not_ended_cannot_be_deleted(app, client, alice):
    in_progress = submit_json(client, alice, 1)
    cancelling = submit_json(client, alice, 2)
    first, _second = stored_jobs(app, cancelling["id"])
    start(app, first.id)
    cancel(client, alice, cancelling["id"])  # the running request goes on

    for batch, status in ((in_progress, "in_progress"), (cancelling, "cancelling")):
        response = client.delete(f"{BATCHES}/{batch['id']}", headers=alice.headers)
        error = error_of(response, 409, "conflict")
        assert status in error["message"] and "/cancel" in error["message"]
    assert count(app, Batch) == 2


# --- 6. limits: batch requests do not use the in-flight allowance ------------------------


def test_a_batch_goes_in_past_max_jobs_in_flight_and_leaves_interactive_room(
    monkeypatch, app, alice
):
    client = app_with(monkeypatch, MAX_JOBS_IN_FLIGHT=2).test_client()

    batch = submit_json(client, alice, 5)
    interactive = [
        client.post(JOBS, json={"message": unique(LIGHT_TEXT)}, headers=alice.headers)
        for _ in range(2)
    ]
    over = client.post(JOBS, json={"message": unique(LIGHT_TEXT)}, headers=alice.headers)
    second_batch = submit_json(client, alice, 3)

    assert batch["request_counts"]["pending"] == 5
    assert [r.status_code for r in interactive] == [202, 202]
    # The cap counts the two interactive jobs, not the batch's eight requests.
    assert error_of(over, 429, "too_many_jobs_in_flight")["details"] == {
        "in_flight": 2,
        "limit": 2,
    }
    assert second_batch["status"] == "in_progress"
    assert count(app, Job) == 10


def test_a_batch_is_refused_when_the_daily_token_quota_is_used_up(
    monkeypatch, app, alice, redis_client
):
    client = app_with(monkeypatch, DAILY_TOKEN_QUOTA=100).test_client()
    with app.app_context():
        db.session.add(
            UsageRecord(
                user_id=uuid.UUID(alice.id),
                model=LIGHT_MODEL,
                tier="light",
                status="succeeded",
                prompt_tokens=60,
                completion_tokens=40,
                created_at=utcnow(),
            )
        )
        db.session.commit()

    response = post_json(client, alice, [item("a")])

    error_of(response, 429, "daily_token_quota_exceeded")
    assert_nothing_stored(app, redis_client)


# --- 7. flask batch submit | status | results ----------------------------------------------


def _cli(app, *args):
    return app.test_cli_runner().invoke(args=["batch", *args])


def test_the_cli_submits_a_jsonl_file_and_reads_its_status_and_results(
    app, client, alice, tmp_path
):
    path = tmp_path / "batch.jsonl"
    path.write_text(jsonl(line("first"), "", line("second", model="heavy")), encoding="utf-8")

    submitted = _cli(app, "submit", str(path), "--user", "Alice@Example.com ")

    assert submitted.exit_code == 0, submitted.output
    batch = json.loads(submitted.stdout)
    assert set(batch) == BATCH_FIELDS
    assert batch["status"] == "in_progress"
    assert batch["input_format"] == "jsonl"
    assert batch["request_counts"] == batch_counts(2, pending=2)
    assert batch["links"]["results"] == f"{BATCHES}/{batch['id']}/results"
    jobs = stored_jobs(app, batch["id"])
    assert [(job.custom_id, job.tier) for job in jobs] == [("first", "light"), ("second", "heavy")]
    assert all(str(job.user_id) == alice.id and job.api_key_id is None for job in jobs)
    # The batch is the user's, as if submitted over the API.
    assert get_batch(client, alice, batch["id"])["id"] == batch["id"]

    status = _cli(app, "status", batch["id"], "--user", alice.email)
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["request_counts"] == batch_counts(2, pending=2)
    nothing_yet = _cli(app, "results", batch["id"], "--user", alice.email)
    assert nothing_yet.exit_code == 0, nothing_yet.output
    assert nothing_yet.stdout == ""

    succeed(app, jobs[0].id, "from the cli")
    assert cancel(client, alice, batch["id"]).status_code == 202

    status = _cli(app, "status", batch["id"], "--user", alice.email)
    results = _cli(app, "results", batch["id"], "--user", alice.email)

    assert json.loads(status.stdout)["status"] == "cancelled"
    assert json.loads(status.stdout)["request_counts"] == batch_counts(2, completed=1, cancelled=1)
    assert results.exit_code == 0, results.output
    lines = [json.loads(raw) for raw in results.stdout.splitlines()]
    assert lines == results_of(client, alice, batch["id"])
    assert [(r["custom_id"], r["status"]) for r in lines] == [
        ("first", "succeeded"),
        ("second", "cancelled"),
    ]
    assert lines[0]["response"]["content"] == "from the cli"


def test_the_cli_refuses_an_unknown_user(app, tmp_path, alice, redis_client):
    path = tmp_path / "batch.jsonl"
    path.write_text(jsonl(line("a")), encoding="utf-8")

    submitted = _cli(app, "submit", str(path), "--user", "nobody@example.com")
    status = _cli(app, "status", str(uuid.uuid4()), "--user", "nobody@example.com")

    for result in (submitted, status):
        assert result.exit_code == 1
        assert "No active account 'nobody@example.com'" in result.output
    assert_nothing_stored(app, redis_client)


def test_the_cli_lists_the_bad_lines_of_a_file_and_stores_nothing(
    app, tmp_path, alice, redis_client
):
    path = tmp_path / "batch.jsonl"
    path.write_text(jsonl(line("a"), "{oops", line("a"), line("b", stream=True)), encoding="utf-8")

    result = _cli(app, "submit", str(path), "--user", alice.email)

    assert result.exit_code == 1
    assert "3 of 4 batch requests are invalid (lines 2, 3, 4)" in result.output
    details = json.loads(result.output[result.output.index("{") :])
    assert [problem["line"] for problem in details["lines"]] == [2, 3, 4]
    assert details["lines"][0]["errors"] == {"_line": ["Not valid JSON."]}
    assert_nothing_stored(app, redis_client)


def test_the_cli_shows_only_the_users_own_batches(app, client, alice, bob):
    batch = submit_json(client, alice, 1)

    status = _cli(app, "status", batch["id"], "--user", bob.email)
    results = _cli(app, "results", batch["id"], "--user", bob.email)
    missing = _cli(app, "submit", "no-such-file.jsonl", "--user", alice.email)

    for result in (status, results):
        assert result.exit_code == 1
        assert "Batch not found." in result.output
    assert missing.exit_code == 2  # click's usage error: the file does not exist
