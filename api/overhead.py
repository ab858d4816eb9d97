"""The gateway's own overhead on an answer, stage by stage (what LiteLLM reports as
x-litellm-overhead-duration-ms).

    submit  request received → job stored and queued            (the API)
    queue   job stored → claimed by a worker                     (created_at → started_at)
    setup   claimed → model request about to be sent             (the worker)
    relay   first token written to Redis → written to the client (the API)

The first three are known before the first token: every generated answer's response
carries their sum as `X-Gateway-Overhead-Ms` and each as `Server-Timing` (a streamed
answer's headers wait for the job's `start` event, which comes right before the model
request; the client gets nothing earlier anyway). The relay of the first token is known
only while the body streams, so it goes to the histogram alone. All four feed
`gateway_overhead_seconds{stage}`: submit and relay from the API, queue and setup from
the worker. `queue` and `relay` compare two clocks (API host and worker host; Redis and
API host), as the existing queue-wait figure does.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from typing import Any

from flask import Flask, g

from core import metrics_store
from pipeline.events import Event, EventName

HEADER = "X-Gateway-Overhead-Ms"
# Stages known before the first token, in the order they happen.
HEADER_STAGES = ("submit", "queue", "setup")


@dataclass
class Overhead:
    """One request's overhead figures, in milliseconds; None while unknown."""

    submit: float | None = None
    queue: float | None = None
    setup: float | None = None

    def headers(self) -> dict[str, str]:
        known = {stage: getattr(self, stage) for stage in HEADER_STAGES}
        known = {stage: value for stage, value in known.items() if value is not None}
        if not known:
            return {}
        timing = ", ".join(f"gw-{stage};dur={value:.1f}" for stage, value in known.items())
        return {HEADER: f"{sum(known.values()):.1f}", "Server-Timing": timing}


def current() -> Overhead:
    overhead = g.get("overhead")
    if overhead is None:
        overhead = g.overhead = Overhead()
    return overhead


def submitted(*, cached: bool) -> None:
    """The job is stored and queued, or answered from the cache (which neither waits in a
    queue nor sets up a model request): the submit stage ends."""
    started = g.get("request_started")
    if started is None:
        return
    overhead = current()
    overhead.submit = (time.perf_counter() - started) * 1000
    if cached:
        overhead.queue = overhead.setup = 0.0
    # Observed with the request's own metrics, in their one round trip (api/metrics).


def started(data: dict[str, Any]) -> None:
    """Take the worker's stages from a job's `start` event (a cached answer has none)."""
    figures = data.get("overhead_ms") or {}
    overhead = current()
    overhead.queue = figures.get("queue", 0.0)
    overhead.setup = figures.get("setup", 0.0)


def relayed(event: Event) -> None:
    """The answer's first token went out to the client: its relay delay is recorded."""
    now_ms = time.time() * 1000
    started = g.get("request_started")
    joined_ms = now_ms - (time.perf_counter() - started) * 1000 if started else now_ms
    written_ms, _, _ = event.id.partition("-")
    # A token rebuilt from PostgreSQL (ids 0-N), or written before this reader came (a
    # late reader replays it): no relay delay of the gateway's to measure.
    if not written_ms.isdigit() or int(written_ms) < joined_ms:
        return
    metrics_store.record_overhead({"relay": max(now_ms - int(written_ms), 0.0)})


def until_start(events: Iterable[Event | None]) -> Iterator[Event | None]:
    """`events` with those up to the job's `start` event read already, so that the
    response's headers can carry the overhead. Stops reading early at a token or the end
    (the stream was rebuilt, or expired and replayed) and at the first heartbeat: a job
    that waits in a long queue gets its headers, without the figures, rather than none.
    """
    events = iter(events)
    head: list[Event | None] = []
    for event in events:
        head.append(event)
        if event is not None and event.name == EventName.RESET:
            continue  # a new attempt announces itself, then starts
        if event is not None and event.name == EventName.START and not event.id.startswith("0-"):
            started(event.data)  # a live start (replays from PostgreSQL have ids 0-N)
        break
    return chain(head, events)


def init_app(app: Flask) -> None:
    @app.after_request
    def add_headers(response):
        overhead = g.get("overhead")
        if overhead is not None:
            response.headers.update(overhead.headers())
        return response
