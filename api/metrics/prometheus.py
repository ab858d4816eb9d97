"""GET /metrics: the metrics in Prometheus' text format, for scrapers.

The figures live in Redis, so a scrape of any API process shows the whole deployment:
a custom collector turns the current snapshot into metric families at scrape time.

Who may read it: with METRICS_TOKEN set, whoever sends it as a bearer token, from
anywhere. Without one, only a caller on this host: a loopback peer (127.0.0.0/8, ::1)
whose request no proxy forwarded. "Private addresses" are not enough: in a container
network or a cloud subnet they include every neighbour.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterator

from flask import Flask, Response, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from api.errors import error_response
from api.metrics import report
from config.settings import get_settings
from core import metrics_store

ENDPOINT = "prometheus_metrics"


def _add(family: HistogramMetricFamily, labels: list[str], histogram, scale: float) -> None:
    buckets = [
        (label if label == metrics_store.INF else f"{float(label) * scale:g}", count)
        for label, count in histogram.cumulative()
    ]
    family.add_metric(labels, buckets, histogram.total * scale)


def _counter(name: str, doc: str, labels: list[str], counts: dict[str, int]) -> Metric:
    """A counter family from 'label|label|…' → count fields."""
    family = CounterMetricFamily(name, doc, labels=labels)
    for series, count in counts.items():
        family.add_metric(series.rsplit("|", len(labels) - 1), count)
    return family


class SnapshotCollector:
    """Yields metric families from one snapshot of the Redis metrics and the live state."""

    def __init__(self, snapshot: metrics_store.Snapshot, live: report.LiveState):
        self.snapshot, self.live = snapshot, live

    def collect(self) -> Iterator[Metric]:
        snapshot = self.snapshot
        yield _counter(
            "gateway_http_requests",
            "HTTP requests answered",
            ["route", "method", "status"],
            snapshot.requests,
        )

        durations = HistogramMetricFamily(
            "gateway_http_request_duration_seconds",
            "Time to the response headers",
            labels=["route", "method"],
        )
        for series, histogram in snapshot.request_durations.items():
            _add(durations, series.rsplit("|", 1), histogram, 0.001)
        yield durations

        finished = CounterMetricFamily(
            "gateway_jobs_finished", "Jobs ended, by outcome", labels=["tier", "status"]
        )
        cached = CounterMetricFamily(
            "gateway_jobs_cached", "Jobs answered without a generation", labels=["tier"]
        )
        for name, count in snapshot.jobs.items():
            tier, _, status = name.partition("|")
            if status == "cached":
                cached.add_metric([tier], count)
            else:
                finished.add_metric([tier, status], count)
        yield finished
        yield cached

        in_flight = GaugeMetricFamily(
            "gateway_jobs_in_flight", "Jobs queued or running now", labels=["tier", "status"]
        )
        for (tier, status), count in sorted(self.live.in_flight.items()):
            in_flight.add_metric([tier, status], count)
        yield in_flight

        depth = GaugeMetricFamily(
            "gateway_queue_depth", "Messages waiting on a Celery queue", labels=["queue"]
        )
        for queue_name, count in sorted(self.live.queue_depth.items()):
            if count is not None:  # the broker did not answer: no sample beats a false 0
                depth.add_metric([queue_name], count)
        yield depth

        job_families = {
            "queue_wait_ms": (
                HistogramMetricFamily(
                    "gateway_job_queue_wait_seconds", "From submission to start", labels=["tier"]
                ),
                0.001,
            ),
            "ttft_ms": (
                HistogramMetricFamily(
                    "gateway_job_ttft_seconds", "From start to the first token", labels=["tier"]
                ),
                0.001,
            ),
            "tokens_per_second": (
                HistogramMetricFamily(
                    "gateway_job_tokens_per_second",
                    "Completion tokens per second of generation",
                    labels=["tier"],
                ),
                1.0,
            ),
        }
        for series, histogram in snapshot.job_histograms.items():
            kind, _, tier = series.partition("|")
            family, scale = job_families[kind]
            _add(family, [tier], histogram, scale)
        for family, _scale in job_families.values():
            yield family

        overhead = HistogramMetricFamily(
            "gateway_overhead_seconds",
            "The gateway's own time per answer, by stage: submit (request to queued), queue "
            "(queued to claimed), setup (claimed to model request), relay (first token "
            "written to sent)",
            labels=["stage"],
        )
        for stage, histogram in sorted(snapshot.overhead.items()):
            _add(overhead, [stage], histogram, 0.001)
        yield overhead

        yield _counter(
            "gateway_tokens",
            "Tokens the model servers processed",
            ["model", "kind"],
            snapshot.tokens,
        )
        yield _counter(
            "gateway_rate_limited",
            "Requests refused with 429 (tier '-' when refused before routing)",
            ["tier", "reason"],
            snapshot.rate_limited,
        )


# Headers by which a proxy says for whom it forwards a request.
FORWARDING_HEADERS = ("X-Forwarded-For", "X-Real-IP", "Forwarded")


def _is_loopback(value: str | None) -> bool:
    try:
        address = ipaddress.ip_address(value or "")
    except ValueError:
        return False
    # A dual-stack socket reports an IPv4 peer as ::ffff:127.0.0.1.
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def _local_caller() -> bool:
    """Whether the request comes from this host itself, not through a proxy.

    The peer is the connection's own address, before ProxyFix put the forwarded client's
    address in its place (PROXY_FIX_HOPS): a forwarded address is only as true as the
    proxy chain, and a wrong hop count would let a client's own X-Forwarded-For through.
    A forwarded request is never local, even from a loopback peer: a proxy on this host
    (nginx in front of 127.0.0.1:8000) connects from loopback on every client's behalf.
    """
    original = request.environ.get("werkzeug.proxy_fix.orig") or {}
    peer = original.get("REMOTE_ADDR", request.environ.get("REMOTE_ADDR"))
    if any(name in request.headers for name in FORWARDING_HEADERS):
        return False
    return _is_loopback(peer) and _is_loopback(request.remote_addr)


def _refusal() -> Response | None:
    token = get_settings().observability.metrics_token
    if token:
        auth = request.headers.get("Authorization", "")
        scheme, _, given = auth.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode()):
            return None
        return error_response(
            401,
            "Send the metrics token as 'Authorization: Bearer <METRICS_TOKEN>'.",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    if _local_caller():
        return None
    return error_response(
        403,
        "Without METRICS_TOKEN, metrics are served to this host's loopback only, not through "
        "a proxy; set METRICS_TOKEN and send it as a bearer token to scrape from elsewhere.",
    )


def init_app(app: Flask) -> None:
    @app.route("/metrics", methods=["GET"], endpoint=ENDPOINT)
    def prometheus_metrics():
        refusal = _refusal()
        if refusal is not None:
            return refusal
        registry = CollectorRegistry(auto_describe=False)
        registry.register(SnapshotCollector(metrics_store.read(), report.live_state()))
        # content_type, not mimetype: the constant has its charset already, and Werkzeug
        # would add a second one, which Prometheus 3 refuses.
        return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
