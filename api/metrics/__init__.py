"""Request and job metrics: recorded in Redis, read as JSON (/api/metrics) or Prometheus.

The request hook runs in every API process and the job recorder in every worker; all
of them add to the same Redis counters, so any process reports the whole deployment.
"""

from __future__ import annotations

import time

from flask import Flask, g, request

from api.metrics import prometheus
from core import metrics_store

# Probes and scrapes would drown the traffic they watch.
UNRECORDED_ENDPOINTS = frozenset({"health.get_health", prometheus.ENDPOINT})
UNMATCHED_ROUTE = "(unmatched)"  # 404s: random paths must not become series of their own


def tag_request(*, tier: str) -> None:
    """Note the tier a request was routed to, for the rate-limited count by tier."""
    g.metrics_tier = tier


def init_app(app: Flask) -> None:
    prometheus.init_app(app)

    @app.after_request
    def record_request(response):
        if request.endpoint in UNRECORDED_ENDPOINTS:
            return response
        started = g.get("request_started")
        duration_ms = (time.perf_counter() - started) * 1000 if started else 0.0
        status = response.status_code
        route = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE
        overhead = g.get("overhead")  # api/overhead.py: a submitted job's first stage
        submit = overhead.submit if overhead is not None else None
        metrics_store.record_request(
            overhead={"submit": submit} if submit is not None else None,
            route=route,
            method=request.method,
            status=status,
            duration_ms=duration_ms,
            path=request.path,
            request_id=g.get("request_id"),
            at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        if status == 429:
            metrics_store.record_rate_limited(
                g.get("error_code") or "rate_limited", g.get("metrics_tier")
            )
        return response
