"""One `make dev` stack (scripts/dev.py) for the end-to-end tests, with the real model.

It runs exactly what a developer runs: migrations, supervisord with gunicorn, a Celery
worker per queue, Flower and llama.cpp's server with SmolLM2-135M-Instruct. The tests
share it (package scope); the last one stops it with Ctrl-C.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT
from tests.helpers import bearer_over_http
from tests.stack import Process, free_port

sys.path.insert(0, str(ROOT / "scripts"))
from dev import READY_LINE
from dev_supervisor import running_pids


class DevStack:
    """`python scripts/dev.py` in its own session, as a terminal would run `make dev`."""

    def __init__(self, work: Path):
        self.api_port, self.llm_port, self.flower_port = free_port(), free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.api_port}"
        self.llm_url = f"http://127.0.0.1:{self.llm_port}"
        self.run_dir = work / "run"
        self.log_path = work / "dev.log"
        self.env = {
            **os.environ,
            "APP_ENV": "testing",
            "GUNICORN_BIND": f"127.0.0.1:{self.api_port}",
            "WEB_CONCURRENCY": "1",
            "LOCAL_LLM_PORT": str(self.llm_port),
            "FLOWER_PORT": str(self.flower_port),
            "DEV_RUN_DIR": str(self.run_dir),
            # The generated secrets (Flower's login) go here, not into the checkout.
            "DEV_SECRETS_FILE": str(work / "dev-secrets"),
            # Nothing else answers: the stack must start its own model server.
            "OLLAMA_URL": "",
            "OPENAI_BASE_URL": "",
            "SEARCH_BACKEND": "ddgs",  # the real one (offline here: it reports unavailable)
            # make dev's own concurrency (the model server gets one slot per job).
            "WORKER_CONCURRENCY_LIGHT": "4",
            "WORKER_CONCURRENCY_HEAVY": "2",
            "LLM_READ_TIMEOUT": "60",
            "LLM_CONNECT_RETRY_SECONDS": "30",
            "JOB_SOFT_TIME_LIMIT": "120",
            "JOB_TIME_LIMIT": "150",
            "BROKER_VISIBILITY_TIMEOUT": "300",
            "CHAT_WAIT_SECONDS": "90",
        }
        self.process = Process(
            "the dev stack",
            [sys.executable, "scripts/dev.py"],
            self.env,
            self.log_path,
            own_group=True,  # its own process group, as a terminal gives it
        ).start()

    def log(self) -> str:
        return self.process.log_text()

    def wait_ready(self, timeout: float = 180) -> None:
        self.process.wait_for_log(re.escape(READY_LINE), timeout, interval=0.5, tail_lines=80)

    def pids(self) -> dict[str, int]:
        """Name → pid of each running process, as supervisorctl lists them."""
        return running_pids(self.run_dir / "supervisord.conf")

    def wait_running(self, names: set[str], *, not_pids: set[int], timeout: float = 90) -> dict:
        """Wait until each of `names` is RUNNING under a pid not in `not_pids`."""
        deadline = time.monotonic() + timeout
        while True:
            pids = self.pids()
            if all(name in pids and pids[name] not in not_pids for name in names):
                return pids
            if time.monotonic() > deadline:
                raise AssertionError(f"not back: {pids}\n{self.log()[-4000:]}")
            time.sleep(0.5)

    def interrupt(self, timeout: float = 60) -> int:
        """Ctrl-C: SIGINT to the whole process group, as a terminal sends it."""
        self.process.signal(signal.SIGINT)
        return self.process.wait(timeout)

    def stop(self) -> None:
        """SIGTERM to the whole process group, SIGKILL for what is left after 60 s."""
        self.process.stop(timeout=60)


@pytest.fixture(scope="package")
def dev_stack(migrated_database, tmp_path_factory) -> Iterator[DevStack]:
    stack = DevStack(tmp_path_factory.mktemp("dev"))
    try:
        stack.wait_ready()
        yield stack
    finally:
        stack.stop()


def register_and_key(base: str, email: str) -> tuple[dict[str, str], str]:
    """A new user's bearer headers and an API key of theirs."""
    headers = bearer_over_http(base, email)
    key = requests.post(
        f"{base}/api/user/api-keys", json={"name": "e2e"}, headers=headers, timeout=10
    ).json()["key"]
    return headers, key
