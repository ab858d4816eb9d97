"""Flower, started against the test broker, sees both queues' workers and finished tasks."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import requests

from tests.conftest import ROOT, free_port, stop_process
from tests.integration.conftest import wait_for_status

AUTH = ("ops", "flower-test-password")


@pytest.fixture
def flower(workers, tmp_path):
    port = free_port()
    log = (tmp_path / "flower.log").open("wb")
    # Configured as docker-compose.yml configures it: FLOWER_* variables, under /flower/.
    env = {
        **os.environ,
        "APP_ENV": "testing",
        "FLOWER_BASIC_AUTH": ":".join(AUTH),
        "FLOWER_ADDRESS": "127.0.0.1",
        "FLOWER_PORT": str(port),
        "FLOWER_URL_PREFIX": "flower",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "worker.celery_app", "flower"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/flower"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                # The compose healthcheck's request: answered without a login.
                health = requests.get(f"{url}/healthcheck", timeout=1)
                if health.status_code == 200 and health.text == "OK":
                    break
            except requests.RequestException:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((tmp_path / "flower.log").read_text())
            time.sleep(0.3)
        yield url
    finally:
        stop_process(process)


def test_flower_shows_both_workers_and_a_finished_task(flower, alice_http, workers):
    assert requests.get(f"{flower}/api/workers", timeout=10).status_code == 401

    job = alice_http.post("/api/jobs", json={"message": "hello flower"}).json()
    done = wait_for_status(lambda: alice_http.job(job["id"]), {"succeeded", "failed"})
    assert done["status"] == "succeeded"

    names: set[str] = set()
    tasks: dict = {}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        names = set(requests.get(f"{flower}/api/workers?refresh=1", auth=AUTH, timeout=15).json())
        tasks = requests.get(f"{flower}/api/tasks", auth=AUTH, timeout=10).json()
        finished = [
            t
            for t in tasks.values()
            if t.get("name") == "gateway.jobs.run_light"
            and job["id"] in (t.get("args") or "")
            and t.get("state") == "SUCCESS"
        ]
        if {workers.light.hostname, workers.heavy.hostname} <= names and finished:
            break
        time.sleep(0.5)
    assert {workers.light.hostname, workers.heavy.hostname} <= names, names
    assert finished, tasks
