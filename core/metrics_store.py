"""Metrics kept in Redis, so every API process and every worker adds to the same totals.

Counters are hash fields incremented in one pipelined round trip per request or job;
durations go into fixed histogram buckets (as Prometheus keeps them), from which the
JSON report estimates percentiles. Nothing here ever fails a request or a job: a
metric that cannot be written is dropped with a warning.
"""

from __future__ import annotations

import json
import logging
import threading
from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import redis
from flask import Flask, current_app

from core.redis import redis_store

log = logging.getLogger(__name__)
_buffers_lock = threading.Lock()

# Upper bounds in milliseconds: a 1-2-3-5-7 ladder keeps percentile estimates within
# about a third of a bucket, at every scale from a cache hit to a long generation.
DURATION_BUCKETS_MS: tuple[float, ...] = (
    1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700,
    1_000, 1_500, 2_000, 3_000, 5_000, 7_000, 10_000, 15_000, 20_000, 30_000, 60_000,
    120_000, 300_000,
)  # fmt: skip
RATE_BUCKETS: tuple[float, ...] = (
    1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700, 1_000,
)  # fmt: skip
INF = "+Inf"
SLOWEST_KEPT = 5

# The gateway's own overhead per answer (api/overhead.py): often below a millisecond.
OVERHEAD_BUCKETS_MS: tuple[float, ...] = (0.1, 0.25, 0.5, *DURATION_BUCKETS_MS)
OVERHEAD_STAGES = ("submit", "queue", "setup", "relay")
# The relay's observations are summed in each API process and written this often.
OVERHEAD_FLUSH_SECONDS = 0.5

# Job histograms: what they measure, and their buckets.
JOB_HISTOGRAMS = {
    "queue_wait_ms": DURATION_BUCKETS_MS,
    "ttft_ms": DURATION_BUCKETS_MS,
    "tokens_per_second": RATE_BUCKETS,
}


def _key(name: str) -> str:
    return redis_store.key("metrics", name)


def _bucket(value: float, bounds: Sequence[float]) -> str:
    index = bisect_left(bounds, value)
    return INF if index == len(bounds) else _label(bounds[index])


def _label(bound: float) -> str:
    return f"{bound:g}"


def _fields(series: str, value: float, bounds: Sequence[float]) -> tuple[str, str]:
    """The hash fields an observation adds to: its bucket's count, and the series' sum."""
    return f"{series}|{_bucket(value, bounds)}", f"{series}|sum"


def _observe(pipe, key: str, series: str, value: float, bounds: Sequence[float]) -> None:
    bucket, total = _fields(series, value, bounds)
    pipe.hincrby(key, bucket, 1)
    pipe.hincrbyfloat(key, total, value)


def _execute(pipe, what: str) -> None:
    try:
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("metrics for %s not recorded: %s", what, exc.__class__.__name__)


def record_request(
    *,
    route: str,
    method: str,
    status: int,
    duration_ms: float,
    path: str,
    request_id: str | None,
    at: str,
    overhead: dict[str, float] | None = None,
) -> None:
    series = f"{route}|{method}"
    pipe = redis_store.client.pipeline(transaction=False)
    if overhead:
        _observe_overhead(pipe, overhead)
    pipe.hincrby(_key("requests"), f"{series}|{status}", 1)
    _observe(pipe, _key("request_duration"), series, duration_ms, DURATION_BUCKETS_MS)
    slow = {
        "path": path,
        "method": method,
        "status": status,
        "duration_ms": round(duration_ms, 2),
        "time": at,
        "request_id": request_id,
    }
    pipe.zadd(_key("slowest"), {json.dumps(slow, sort_keys=True): duration_ms})
    pipe.zremrangebyrank(_key("slowest"), 0, -(SLOWEST_KEPT + 1))
    _execute(pipe, "a request")


def record_rate_limited(reason: str, tier: str | None) -> None:
    pipe = redis_store.client.pipeline(transaction=False)
    pipe.hincrby(_key("rate_limited"), f"{tier or '-'}|{reason}", 1)
    _execute(pipe, "a rate-limited request")


def _observe_overhead(pipe, stages: dict[str, float]) -> None:
    for stage, value in stages.items():
        _observe(pipe, _key("overhead"), stage, value, OVERHEAD_BUCKETS_MS)


class _OverheadBuffer:
    """Overhead observations summed in the process and written at most every
    OVERHEAD_FLUSH_SECONDS in one round trip.

    The relay's come one per streamed answer, thousands at once when many streams start
    together: a round trip each stalled the streams (10,000 streams at 2 tokens/s: relay
    p99 from 1.5 s to 5.6 s).
    """

    def __init__(self, app: Flask) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._sums: Counter[str] = Counter()
        self._scheduled = False

    def add(self, stages: dict[str, float]) -> None:
        with self._lock:
            for stage, value in stages.items():
                bucket, total = _fields(stage, value, OVERHEAD_BUCKETS_MS)
                self._counts[bucket] += 1
                self._sums[total] += value
            if self._scheduled:
                return
            self._scheduled = True
        timer = threading.Timer(OVERHEAD_FLUSH_SECONDS, self.flush)
        timer.daemon = True
        timer.start()

    def flush(self) -> None:
        with self._lock:
            counts, sums = dict(self._counts), dict(self._sums)
            self._counts.clear()
            self._sums.clear()
            self._scheduled = False
        with self._app.app_context():
            pipe = redis_store.client.pipeline(transaction=False)
            for name, count in counts.items():
                pipe.hincrby(_key("overhead"), name, count)
            for name, total in sums.items():
                pipe.hincrbyfloat(_key("overhead"), name, total)
            _execute(pipe, "the overhead")


def record_overhead(stages: dict[str, float]) -> None:
    """Observe overhead stages (milliseconds) measured by this process; they reach Redis
    within OVERHEAD_FLUSH_SECONDS."""
    app = current_app._get_current_object()
    with _buffers_lock:
        buffer = app.extensions.get("overhead_buffer")
        if buffer is None:
            buffer = app.extensions["overhead_buffer"] = _OverheadBuffer(app)
    buffer.add(stages)


def record_job(
    *,
    tier: str,
    model: str,
    status: str,
    cached: bool,
    prompt_tokens: int,
    completion_tokens: int,
    queue_wait_ms: float | None,
    ttft_ms: float | None,
    tokens_per_second: float | None,
    overhead: dict[str, float] | None = None,
) -> None:
    pipe = redis_store.client.pipeline(transaction=False)
    if overhead:  # the worker's stages, in the job's one round trip
        _observe_overhead(pipe, overhead)
    jobs = _key("jobs")
    pipe.hincrby(jobs, f"{tier}|{status}", 1)
    if cached:
        pipe.hincrby(jobs, f"{tier}|cached", 1)
    else:  # tokens the model server produced; a cached answer cost it none
        pipe.hincrby(_key("tokens"), f"{model}|prompt", prompt_tokens)
        pipe.hincrby(_key("tokens"), f"{model}|completion", completion_tokens)
    figures = {
        "queue_wait_ms": queue_wait_ms,
        "ttft_ms": ttft_ms,
        "tokens_per_second": tokens_per_second,
    }
    for kind, value in figures.items():
        if value is not None:
            _observe(pipe, _key("job_histograms"), f"{kind}|{tier}", value, JOB_HISTOGRAMS[kind])
    _execute(pipe, "a job")


@dataclass
class Histogram:
    """Bucket counts (non-cumulative, by upper bound) and the sum of observations."""

    bounds: Sequence[float]
    counts: dict[str, int] = field(default_factory=dict)
    total: float = 0.0

    @property
    def count(self) -> int:
        return sum(self.counts.values())

    def cumulative(self) -> list[tuple[str, int]]:
        """(upper bound label, observations at or below it), ending with +Inf."""
        running, out = 0, []
        for label in [*map(_label, self.bounds), INF]:
            running += self.counts.get(label, 0)
            out.append((label, running))
        return out

    def quantile(self, q: float) -> float | None:
        """Interpolated within its bucket, as Prometheus' histogram_quantile does."""
        count = self.count
        if count == 0:
            return None
        rank = q * count
        lower, below = 0.0, 0
        for bound in self.bounds:
            in_bucket = self.counts.get(_label(bound), 0)
            if below + in_bucket >= rank and in_bucket:
                return lower + (bound - lower) * (rank - below) / in_bucket
            lower, below = bound, below + in_bucket
        return float(self.bounds[-1])  # in the +Inf bucket: the highest known bound

    def summary(self) -> dict[str, float | int | None]:
        count = self.count

        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 2)

        return {
            "count": count,
            "avg": rounded(self.total / count) if count else None,
            "p50": rounded(self.quantile(0.5)),
            "p95": rounded(self.quantile(0.95)),
            "p99": rounded(self.quantile(0.99)),
        }


def _histograms(raw: dict[str, str], bounds_of) -> dict[str, Histogram]:
    """Group 'series|bucket' and 'series|sum' fields into one Histogram per series."""
    out: dict[str, Histogram] = {}
    for name, value in raw.items():
        series, _, bucket = name.rpartition("|")
        histogram = out.setdefault(series, Histogram(bounds_of(series)))
        if bucket == "sum":
            histogram.total = float(value)
        else:
            histogram.counts[bucket] = int(value)
    return out


def _counters(raw: dict[str, str]) -> dict[str, int]:
    return {name: int(float(value)) for name, value in raw.items()}


@dataclass
class Snapshot:
    """Everything recorded so far, read in one round trip."""

    requests: dict[str, int]  # "route|method|status" → count
    request_durations: dict[str, Histogram]  # "route|method" → histogram
    slowest: list[dict]
    jobs: dict[str, int]  # "tier|status" and "tier|cached" → count
    tokens: dict[str, int]  # "model|prompt" / "model|completion" → tokens
    job_histograms: dict[str, Histogram]  # "kind|tier" → histogram
    rate_limited: dict[str, int]  # "tier|reason" → count
    overhead: dict[str, Histogram]  # stage → histogram


def read() -> Snapshot:
    pipe = redis_store.client.pipeline(transaction=False)
    for name in ("requests", "request_duration", "jobs", "tokens", "job_histograms"):
        pipe.hgetall(_key(name))
    pipe.zrevrange(_key("slowest"), 0, SLOWEST_KEPT - 1)
    pipe.hgetall(_key("rate_limited"))
    pipe.hgetall(_key("overhead"))
    requests, durations, jobs, tokens, job_histograms, slowest, limited, overhead = pipe.execute()
    return Snapshot(
        requests=_counters(requests),
        request_durations=_histograms(durations, lambda _series: DURATION_BUCKETS_MS),
        slowest=[json.loads(item) for item in slowest],
        jobs=_counters(jobs),
        tokens=_counters(tokens),
        job_histograms=_histograms(
            job_histograms, lambda series: JOB_HISTOGRAMS[series.partition("|")[0]]
        ),
        rate_limited=_counters(limited),
        overhead=_histograms(overhead, lambda _stage: OVERHEAD_BUCKETS_MS),
    )


def reset() -> None:
    """Forget every metric (the usage log in PostgreSQL is untouched)."""
    names = ("requests", "request_duration", "slowest", "jobs", "tokens", "job_histograms")
    redis_store.client.delete(*(_key(name) for name in (*names, "rate_limited", "overhead")))
