"""`make dev` says where everything is, keeps serving when a process dies, and Ctrl-C stops
all of it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from config import dev_secrets
from tests.e2e.conftest import register_and_key
from tests.helpers import alive, descendants

pytestmark = pytest.mark.real_llm


class HealthWatch(threading.Thread):
    """Asks the API's /health every 0.1 s until stopped; counts what was not a 200."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.asked, self.failures = url, 0, []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.1):
            self.asked += 1
            try:
                status = requests.get(self.url, timeout=5).status_code
            except requests.RequestException as exc:
                status = repr(exc)
            if status != 200:
                self.failures.append(status)

    def stop(self) -> None:
        self.stopping.set()
        self.join()


def test_make_dev_says_where_everything_is_and_its_first_request_works(dev_stack):
    log = dev_stack.log()
    banner = log[log.index("LLM Gateway is ready") :]
    assert f"API            {dev_stack.url}" in banner
    assert f"Swagger UI     {dev_stack.url}/docs" in banner
    assert f"{dev_stack.llm_url}/v1  llama.cpp llama-server, SmolLM2-135M-Instruct" in banner
    # Where Flower's password is, not the password: it stays out of terminals and logs.
    flower = re.search(r"Flower         (\S+)   user (\S+), password: see (\S+) in (\S+)", banner)
    assert flower, banner
    url, user, variable, path = flower.groups()
    password = dev_secrets.parse(Path(path).read_text())[variable].partition(":")[2]
    assert path == dev_stack.env["DEV_SECRETS_FILE"]
    assert password and password not in log
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, auth=(user, password), timeout=10).status_code == 200
    assert requests.get(f"{dev_stack.url}/docs", timeout=10).status_code == 200

    # The request it suggests, pasted into a shell as printed.
    commands = banner[banner.index("Try it") : banner.index("Ctrl-C stops")].splitlines()[1:]
    script = "\n".join(line.removeprefix("  ") for line in commands)
    script = script.replace("you@example.com", "first-request@example.com")
    result = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=180, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "event: start" in result.stdout and "event: done" in result.stdout, result.stdout


def chat(base: str, headers: dict, message: str, model: str) -> requests.Response:
    return requests.post(
        f"{base}/api/chat/",
        json={"message": message, "model": model, "max_tokens": 24},
        headers=headers,
        timeout=120,
    )


@pytest.mark.timeout(300)
def test_a_killed_model_server_and_worker_come_back_while_the_api_keeps_answering(dev_stack):
    base = dev_stack.url
    headers, _key = register_and_key(base, "supervised@example.com")
    before = dev_stack.pids()
    watch = HealthWatch(f"{base}/health")
    watch.start()
    try:
        os.kill(before["llm"], signal.SIGKILL)
        os.kill(before["worker-light"], signal.SIGKILL)
        # Sent at once, while the model server is down: the heavy worker's job finds
        # nothing listening (or a server still loading) and keeps trying until it answers.
        during = chat(base, headers, "What is the capital of Italy?", "heavy")
        after = dev_stack.wait_running(
            {"llm", "worker-light"}, not_pids={before["llm"], before["worker-light"]}
        )
        # After the restart, the new light worker serves. (Not sent while it is down: a
        # message handed to a worker in the instant it dies is lost to Celery's Redis
        # transport, a gap the reconciler does not close yet.)
        late = chat(base, headers, "Name a planet.", "light")
    finally:
        watch.stop()

    for response in (during, late):
        assert response.status_code == 200, response.text
        assert response.json()["content"].strip()
    assert during.json()["tier"] == "heavy" and late.json()["tier"] == "light"
    # The heavy job did meet the model server down, and waited for it.
    assert "model server not available" in dev_stack.log()
    # The others were not touched; the API answered all along.
    for name in ("web", "worker-heavy", "flower"):
        assert after[name] == before[name], name
    assert watch.asked > 10 and watch.failures == [], watch.failures
    # The supervisor said who died and how, in make dev's output.
    log = dev_stack.log()
    assert "exited: llm (terminated by SIGKILL; not expected)" in log
    assert "exited: worker-light (terminated by SIGKILL; not expected)" in log
    assert (
        "supervisor"
        in next(
            line for line in log.splitlines() if "exited: llm (terminated by SIGKILL" in line
        ).split("|")[0]
    )


def test_ctrl_c_stops_every_process_and_leaves_none_behind(dev_stack):
    # Last in the package: it ends the shared stack.
    tree = descendants(dev_stack.process.pid)
    assert len(tree) >= 7, tree  # supervisord, its five programs, gunicorn's worker
    started = time.monotonic()
    code = dev_stack.interrupt()
    assert code == 0
    assert time.monotonic() - started < 45
    deadline = time.monotonic() + 5  # the last ones may still be on their way out
    while (survivors := {pid for pid in tree if alive(pid)}) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not survivors, survivors
    log = dev_stack.log()
    assert "make dev: stopped (SIGINT" in log
    # Each one stopped on its SIGTERM; none had to be killed.
    assert re.findall(r"stopped: (\S+) \(exit status 0\)", log) != []
    assert "with SIGKILL" not in log, log[-3000:]
