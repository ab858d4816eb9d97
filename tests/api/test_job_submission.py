"""Job submission paths that need no worker: an unreachable queue."""

from __future__ import annotations

from api import create_app
from config.settings import TestingConfig
from tests.conftest import register_and_login
from tests.helpers import error_of


def test_an_unreachable_queue_is_503_and_the_job_is_recorded_as_failed(monkeypatch, app):
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")
    client = create_app(TestingConfig()).test_client()
    account = register_and_login(client, "queue@example.com")

    response = client.post("/api/jobs", json={"message": "hello"}, headers=account.headers)

    error_of(response, 503, "queue_unavailable")
    jobs = client.get("/api/jobs", headers=account.headers).get_json()
    assert jobs["total"] == 1  # nothing lost: the attempt is on record, and ended
    assert jobs["items"][0]["status"] == "failed"
    assert jobs["items"][0]["error"]["code"] == "queue_unavailable"
    events = client.get(f"/api/jobs/{jobs['items'][0]['id']}/events", headers=account.headers)
    assert b"event: error" in events.data
