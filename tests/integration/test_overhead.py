"""The gateway's own overhead on every generated answer: X-Gateway-Overhead-Ms, Server-Timing
and the gateway_overhead_seconds{stage} histogram, on the live stack (gunicorn, Celery
workers, the fake Ollama)."""

from __future__ import annotations

import re
import time
import uuid

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from core import metrics_store
from tests.integration.openai_client import create_api_key
from tests.sse_client import sse_events, text_of

pytestmark = pytest.mark.live

STAGES_BEFORE_THE_MODEL = ("submit", "queue", "setup")


def timings(response: requests.Response) -> dict[str, float]:
    """Server-Timing's gw-* entries, by stage; the header and the timing must agree."""
    entries = re.findall(r"gw-(\w+);dur=([0-9.]+)", response.headers.get("Server-Timing", ""))
    stages = {stage: float(duration) for stage, duration in entries}
    total = float(response.headers["X-Gateway-Overhead-Ms"])
    assert total == pytest.approx(sum(stages.values()), abs=0.2), response.headers
    return stages


def unique(label: str) -> str:
    return f"{label} {uuid.uuid4().hex}"


def test_a_waited_answer_carries_the_overhead_of_each_stage(alice_http):
    response = alice_http.post("/api/chat/", json={"message": unique("hello"), "tools": False})

    assert response.status_code == 200, response.text
    stages = timings(response)
    assert tuple(stages) == STAGES_BEFORE_THE_MODEL
    # Each stage took some time, and none took the whole request: the model's own
    # 20 tokens are not in it.
    assert all(value > 0 for value in stages.values()), stages
    assert sum(stages.values()) < response.elapsed.total_seconds() * 1000


def test_a_streamed_answer_has_its_headers_before_the_first_token(alice_http, fake_ollama):
    fake_ollama.first_token_delay = 0.3
    response = alice_http.post(
        "/api/chat/stream", json={"message": unique("stream"), "tools": False}, stream=True
    )

    assert response.status_code == 200, response.text
    stages = timings(response)
    assert tuple(stages) == STAGES_BEFORE_THE_MODEL
    # The model's own 300 ms before its first token is not the gateway's.
    assert stages["setup"] < 300, stages
    events = sse_events(response)
    start = next(e for e in events if e.event == "start")
    assert set(start.data["overhead_ms"]) == {"queue", "setup"}
    assert stages["queue"] == pytest.approx(start.data["overhead_ms"]["queue"], abs=0.1)
    assert text_of(events) == "w0 w1 w2 w3 w4 w5 w6 w7 w8 w9" + "".join(
        f" w{i}" for i in range(10, 20)
    )


def test_openai_streaming_and_cached_answers_carry_it_too(live, alice_http):
    key = create_api_key(alice_http)["key"]
    body = {
        "model": "light",
        "messages": [{"role": "user", "content": unique("cache me")}],
        "stream": True,
    }
    headers = {"Authorization": f"Bearer {key}"}
    first = requests.post(
        f"{live.url}/v1/chat/completions", json=body, headers=headers, stream=True, timeout=30
    )
    assert first.status_code == 200, first.text
    assert first.headers["X-Cache"] == "MISS"
    assert tuple(timings(first)) == STAGES_BEFORE_THE_MODEL
    assert first.text.rstrip().endswith("data: [DONE]")

    again = requests.post(f"{live.url}/v1/chat/completions", json=body, headers=headers, timeout=30)
    assert again.headers["X-Cache"] == "HIT"
    cached = timings(again)
    # A cached answer never waited in a queue nor set up a model request.
    assert cached["queue"] == cached["setup"] == 0.0
    assert cached["submit"] > 0


def test_the_stages_feed_the_histograms(app, live, alice_http):
    # Earlier tests' relay observations may still be on their way (written within half a
    # second): let them land, then count from zero.
    time.sleep(2 * metrics_store.OVERHEAD_FLUSH_SECONDS)
    with app.app_context():
        metrics_store.reset()
    for n in range(2):
        response = alice_http.post(
            "/api/chat/stream", json={"message": unique(f"metric {n}"), "tools": False}, stream=True
        )
        assert response.status_code == 200
        sse_events(response)

    def counts() -> dict[str, int]:
        with app.app_context():
            overhead = metrics_store.read().overhead
        return {stage: overhead[stage].count if stage in overhead else 0 for stage in overhead}

    # Two answers: submit (API), queue and setup (worker), relay of the first token (API,
    # summed in the process and written within half a second).
    expected = {"submit": 2, "queue": 2, "setup": 2, "relay": 2}
    deadline = time.monotonic() + 5
    while counts() != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    assert counts() == expected

    scraped = requests.get(f"{live.url}/metrics", timeout=30)
    families = {f.name: f for f in text_string_to_metric_families(scraped.text)}
    counts = {
        sample.labels["stage"]: sample.value
        for sample in families["gateway_overhead_seconds"].samples
        if sample.name == "gateway_overhead_seconds_count"
    }
    assert counts == {"submit": 2.0, "queue": 2.0, "setup": 2.0, "relay": 2.0}
