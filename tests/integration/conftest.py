"""Real processes for the job pipeline: Celery workers on both queues, gunicorn, fake Ollama.

The workers and the gunicorn server inherit the per-run database, Redis prefix and the
short job limits set in tests/conftest.py; the model server is an in-process FakeOllama
that speaks Ollama's HTTP protocol on a real socket.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import openai
import pytest
import requests

from tests.conftest import PASSWORD
from tests.fakes.ollama import FakeOllama
from tests.helpers import ERROR_FIELDS, bearer, register_over_http
from tests.sse_client import sse_events
from tests.stack import Process, start_worker


@pytest.fixture(scope="session")
def fake_ollama() -> Iterator[FakeOllama]:
    with FakeOllama(token_delay=0.005) as fake:
        yield fake


@pytest.fixture(autouse=True)
def _fresh_fake(fake_ollama: FakeOllama) -> None:
    fake_ollama.reset()
    fake_ollama.token_delay = 0.005


@dataclass
class Worker:
    """One `celery worker` process consuming one queue."""

    queue: str
    concurrency: int
    log_path: Path
    env: dict[str, str]
    process: Process | None = None
    generation: int = 0

    @property
    def hostname(self) -> str:
        return f"{self.queue}{self.generation}@test"

    def start(self) -> None:
        self.generation += 1
        self.process = start_worker(
            self.queue,
            self.concurrency,
            self.log_path,
            self.env,
            hostname=self.hostname,
            name=f"worker {self.queue}",
            append=True,
            ready_timeout=60,
        )

    def kill(self) -> None:
        """SIGKILL: no warm shutdown, nothing acknowledged, as when a machine dies."""
        assert self.process is not None
        self.process.kill()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=20)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_records(self) -> list[dict]:
        records = []
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return records

    def jobs_run(self) -> set[str]:
        """Ids of the jobs this worker started, from its own log lines."""
        return {r["job_id"] for r in self.log_records() if r.get("job_id") and r.get("queue")}


@dataclass
class Workers:
    light: Worker
    heavy: Worker
    all: list[Worker] = field(default_factory=list)


@pytest.fixture(scope="session")
def workers(migrated_database, fake_ollama, tmp_path_factory) -> Iterator[Workers]:
    logs = tmp_path_factory.mktemp("workers")
    env = {**os.environ, "APP_ENV": "testing", "OLLAMA_URL": fake_ollama.url}
    # The heavy pool has one slot, so a second heavy job stays queued while one runs.
    light = Worker("light", 4, logs / "light.log", env)
    heavy = Worker("heavy", 1, logs / "heavy.log", env)
    pool = Workers(light=light, heavy=heavy, all=[light, heavy])
    try:
        for worker in pool.all:
            worker.start()
        yield pool
    finally:
        for worker in pool.all:
            worker.stop()


def http_error_of(response: requests.Response, status: int, code: str | None = None) -> dict:
    """The `error` object of an HTTP response, after checking the gateway's error shape
    (tests.helpers.error_of does the same for the test client's responses)."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers.get("Content-Type", "").startswith("application/json"), response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert {"code", "message", "request_id"} <= set(error) <= ERROR_FIELDS, error
    assert isinstance(error["message"], str) and error["message"], error
    assert error["request_id"] and error["request_id"] == response.headers.get("X-Request-ID")
    if code is not None:
        assert error["code"] == code, error
    return error


def wait_for_status(get_job, statuses: set[str], timeout: float = 20) -> dict:
    """Poll `get_job()` (returns the job JSON) until its status is one of `statuses`."""
    deadline = time.monotonic() + timeout
    while True:
        job = get_job()
        if job["status"] in statuses or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


@dataclass
class Client:
    """A registered user of the live server, calling it over HTTP."""

    base: str
    headers: dict[str, str]
    user_id: str

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return requests.request(method, self.base + path, headers=headers, timeout=30, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def delete(self, path: str, **kwargs) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def events(
        self, job_id: str, *, last_event_id: str | None = None, stop_after: int | None = None
    ):
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        response = self.get(f"/api/jobs/{job_id}/events", headers=headers, stream=True)
        assert response.status_code == 200, response.text
        return sse_events(response, stop_after=stop_after)

    def job(self, job_id: str) -> dict:
        return self.get(f"/api/jobs/{job_id}").json()


def _client(base: str, email: str) -> Client:
    account = register_over_http(base, email, PASSWORD)
    return Client(base, bearer(account["access_token"]), account["id"])


@pytest.fixture
def alice_http(live, workers) -> Client:
    return _client(live.url, "alice@example.com")


@pytest.fixture
def bob_http(live, workers) -> Client:
    return _client(live.url, "bob@example.com")


@pytest.fixture
def alice_key(alice_http) -> dict:
    """A new API key of alice's: {"id", "key", ...}."""
    from tests.integration.openai_client import create_api_key

    return create_api_key(alice_http)


@pytest.fixture
def alice_sdk(live, alice_key) -> Iterator[openai.OpenAI]:
    """The official openai client, pointed at the gateway's /v1 with alice's API key."""
    from tests.integration.openai_client import sdk

    client = sdk(live, alice_key["key"])
    yield client
    client.close()
