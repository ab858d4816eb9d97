"""The metrics report: what /api/metrics answers and /metrics exposes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from core import metrics_store
from core.models.base import utcnow
from core.repositories import jobs as jobs_repo
from core.statuses import ACTIVE_STATUSES, JOB_STATUSES, TERMINAL_STATUSES, TIERS
from pipeline import queue
from pipeline.queue import tier_models

IN_FLIGHT_STATUSES = ACTIVE_STATUSES


@dataclass
class LiveState:
    """What is true right now, rather than counted: queue lengths and jobs in flight."""

    queue_depth: dict[str, int | None]  # None: the broker did not answer
    in_flight: dict[tuple[str, str], int]  # (tier, status) → jobs


def live_state() -> LiveState:
    return LiveState(
        queue_depth=queue.queue_depths(), in_flight=jobs_repo.count_in_flight_by_tier()
    )


def _request_section(snapshot: metrics_store.Snapshot) -> dict:
    by_route: Counter[str] = Counter()
    by_status: Counter[str] = Counter()
    for name, count in snapshot.requests.items():
        route, method, status = name.rsplit("|", 2)
        by_route[f"{method} {route}"] += count
        by_status[status] += count
    combined = metrics_store.Histogram(metrics_store.DURATION_BUCKETS_MS)
    for histogram in snapshot.request_durations.values():
        combined.total += histogram.total
        for bucket, count in histogram.counts.items():
            combined.counts[bucket] = combined.counts.get(bucket, 0) + count
    durations = combined.summary()
    durations.pop("count")
    return {
        "total": sum(by_route.values()),
        "by_route": dict(by_route.most_common()),
        "by_status": dict(sorted(by_status.items())),
        "duration_ms": durations,
        "slowest": snapshot.slowest,
    }


def _tier_section(snapshot: metrics_store.Snapshot, live: LiveState, tier: str, model: str) -> dict:
    jobs = {status: snapshot.jobs.get(f"{tier}|{status}", 0) for status in JOB_STATUSES}
    for status in IN_FLIGHT_STATUSES:
        # Queued and running are states, not events: read from PostgreSQL as they are now.
        jobs[status] = live.in_flight.get((tier, status), 0)
    finished = sum(snapshot.jobs.get(f"{tier}|{status}", 0) for status in TERMINAL_STATUSES)
    cache_hits = snapshot.jobs.get(f"{tier}|cached", 0)

    def timing(kind: str) -> dict:
        empty = metrics_store.Histogram(metrics_store.JOB_HISTOGRAMS[kind])
        return snapshot.job_histograms.get(f"{kind}|{tier}", empty).summary()

    return {
        "model": model,
        "queue_depth": live.queue_depth.get(tier),
        "jobs": jobs,
        "queue_wait_ms": timing("queue_wait_ms"),
        "ttft_ms": timing("ttft_ms"),
        "tokens_per_second": timing("tokens_per_second"),
        "cache_hits": cache_hits,
        "cache_hit_ratio": round(cache_hits / finished, 4) if finished else None,
        "rate_limited": sum(
            count for name, count in snapshot.rate_limited.items() if name.startswith(f"{tier}|")
        ),
    }


def _overhead(snapshot: metrics_store.Snapshot, stage: str) -> dict:
    empty = metrics_store.Histogram(metrics_store.OVERHEAD_BUCKETS_MS)
    return snapshot.overhead.get(stage, empty).summary()


def build(snapshot: metrics_store.Snapshot, live: LiveState) -> dict:
    """The JSON report: requests, per-tier jobs, tokens by model and rate limiting."""
    models = tier_models()
    by_reason: Counter[str] = Counter()
    for name, count in snapshot.rate_limited.items():
        by_reason[name.partition("|")[2]] += count
    tokens: dict[str, dict[str, int]] = {}
    for name, count in snapshot.tokens.items():
        model, _, kind = name.rpartition("|")
        tokens.setdefault(model, {"prompt": 0, "completion": 0})[kind] = count
    return {
        "generated_at": utcnow().isoformat(),
        "requests": _request_section(snapshot),
        "tiers": {tier: _tier_section(snapshot, live, tier, models[tier]) for tier in TIERS},
        "tokens_by_model": tokens,
        "rate_limited": {"total": sum(by_reason.values()), "by_reason": dict(by_reason)},
        # The gateway's own time per answer, by stage (api/overhead.py), in milliseconds.
        "overhead_ms": {
            stage: _overhead(snapshot, stage) for stage in metrics_store.OVERHEAD_STAGES
        },
    }


def current() -> dict:
    return build(metrics_store.read(), live_state())
