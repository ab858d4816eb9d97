"""Metrics through the Flask test client: GET /api/metrics (JSON, admins) and GET /metrics.

Everything is counted in Redis, which the `app` fixture cleans before each test, so the
metrics start at zero; the requests the account fixtures make are counted too, so tests
that count exactly either do without those fixtures or reset the metrics after them.
No worker runs here: submitted jobs stay queued unless the API itself ends them.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core import metrics_store
from core.models import JOB_STATUSES
from tests.conftest import register_and_login
from tests.helpers import add_usage, app_with, bearer, error_of

pytestmark = pytest.mark.usefixtures("clean_after")

METRICS = "/api/metrics"
PROMETHEUS = "/metrics"
ME = "/api/user/me"
CONVERSATIONS = "/api/conversations/"
JOBS = "/api/jobs"
EXTERNAL = {"REMOTE_ADDR": "8.8.8.8"}
PERCENTILES = {"avg", "p50", "p95", "p99"}
OBSERVED = {"count", *PERCENTILES}


# --- helpers -----------------------------------------------------------------------------


def reset_metrics(app) -> None:
    """Forget what the fixtures' own requests recorded."""
    with app.app_context():
        metrics_store.reset()


def metrics_of(client, admin) -> dict:
    response = client.get(METRICS, headers=admin.headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def scrape(client, **kwargs) -> dict[str, list]:
    """GET /metrics, parsed: sample name → [(labels, value)]."""
    response = client.get(PROMETHEUS, **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def values(samples: dict[str, list], name: str, **labels) -> list[float]:
    return [
        value
        for sample_labels, value in samples.get(name, [])
        if all(sample_labels.get(k) == v for k, v in labels.items())
    ]


def the_value(samples: dict[str, list], name: str, **labels) -> float:
    found = values(samples, name, **labels)
    assert len(found) == 1, (name, labels, samples.get(name))
    return found[0]


def requests_by_series(samples: dict[str, list]) -> dict[tuple[str, str, str], int]:
    return {
        (labels["method"], labels["route"], labels["status"]): int(value)
        for labels, value in samples.get("gateway_http_requests_total", [])
    }


def submit(client, account, message: str, model: str = "light"):
    return client.post(JOBS, json={"message": message, "model": model}, headers=account.headers)


# --- who may read them -------------------------------------------------------------------


def test_an_admin_gets_the_report_in_the_documented_shape(app, client, admin):
    body = metrics_of(client, admin)

    assert set(body) == {"generated_at", "requests", "tiers", "tokens_by_model", "rate_limited"}
    generated = datetime.fromisoformat(body["generated_at"])
    assert abs((datetime.now(UTC) - generated).total_seconds()) < 60

    requests = body["requests"]
    assert set(requests) == {"total", "by_route", "by_status", "duration_ms", "slowest"}
    assert set(requests["duration_ms"]) == PERCENTILES
    assert isinstance(requests["slowest"], list)
    for entry in requests["slowest"]:
        assert set(entry) == {"path", "method", "status", "duration_ms", "time", "request_id"}

    assert set(body["tiers"]) == {"light", "heavy"}
    config = app.config
    for tier, model in (("light", config["MODEL_LIGHT"]), ("heavy", config["MODEL_HEAVY"])):
        section = body["tiers"][tier]
        assert set(section) == {
            "model",
            "queue_depth",
            "jobs",
            "queue_wait_ms",
            "ttft_ms",
            "tokens_per_second",
            "cache_hits",
            "cache_hit_ratio",
            "rate_limited",
        }
        assert section["model"] == model
        assert section["jobs"] == dict.fromkeys(JOB_STATUSES, 0)
        assert section["queue_depth"] == 0
        for timing in ("queue_wait_ms", "ttft_ms", "tokens_per_second"):
            assert section[timing] == {"count": 0, **dict.fromkeys(PERCENTILES)}
            assert set(section[timing]) == OBSERVED
        assert (section["cache_hits"], section["cache_hit_ratio"], section["rate_limited"]) == (
            0,
            None,
            0,
        )

    assert body["tokens_by_model"] == {}
    assert body["rate_limited"] == {"total": 0, "by_reason": {}}


def test_a_normal_user_is_403_and_a_stranger_is_401(client, alice):
    error_of(client.get(METRICS, headers=alice.headers), 403, "forbidden")
    error_of(client.get(METRICS), 401, "unauthorized")
    error_of(client.get(METRICS, headers=bearer("not-a-token")), 401)


def test_an_admins_api_key_reads_them_too(client, admin):
    created = client.post("/api/user/api-keys", json={"name": "grafana"}, headers=admin.headers)
    assert created.status_code == 201, created.get_json()

    response = client.get(METRICS, headers={"X-API-Key": created.get_json()["key"]})

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["requests"]["by_route"]["POST /api/user/api-keys"] == 1


# --- requests ----------------------------------------------------------------------------


def test_requests_are_counted_from_zero_by_route_template_method_and_status(client):
    carol = register_and_login(client, "carol@example.com")  # POST register 201, login 200
    bad = client.post("/api/auth/login", json={"email": carol.email, "password": "wrong pass"})
    assert bad.status_code == 401
    for _ in range(3):
        assert client.get(ME, headers=carol.headers).status_code == 200
    assert client.get(ME).status_code == 401
    unknown_job = client.get(f"{JOBS}/{uuid.uuid4()}", headers=carol.headers)
    assert unknown_job.status_code == 404  # a known route: counted under its template
    for path in ("/no/such/path", f"/api/nothing-{uuid.uuid4().hex}"):
        assert client.get(path).status_code == 404
    # Probes and scrapes are not counted.
    for _ in range(2):
        assert client.get("/health").status_code == 200
    assert client.get(PROMETHEUS).status_code == 200

    samples = scrape(client)

    assert requests_by_series(samples) == {
        ("POST", "/api/auth/register", "201"): 1,
        ("POST", "/api/auth/login", "200"): 1,
        ("POST", "/api/auth/login", "401"): 1,
        ("GET", "/api/user/me", "200"): 3,
        ("GET", "/api/user/me", "401"): 1,
        ("GET", "/api/jobs/<uuid:job_id>", "404"): 1,
        ("GET", "(unmatched)", "404"): 2,
    }


def test_the_metrics_reset_command_zeroes_the_counters(app, client, alice):
    for _ in range(2):
        assert client.get(ME, headers=alice.headers).status_code == 200
    assert requests_by_series(scrape(client))[("GET", "/api/user/me", "200")] == 2

    result = app.test_cli_runner().invoke(args=["metrics-reset"])

    assert result.exit_code == 0, result.output
    assert "Metrics reset" in result.output
    assert requests_by_series(scrape(client)) == {}
    assert client.get(ME, headers=alice.headers).status_code == 200
    assert requests_by_series(scrape(client)) == {("GET", "/api/user/me", "200"): 1}


def test_the_report_counts_routes_and_statuses(app, client, admin, alice):
    reset_metrics(app)
    for _ in range(3):
        assert client.get(ME, headers=alice.headers).status_code == 200
    assert client.get(CONVERSATIONS, headers=alice.headers).status_code == 200
    job = submit(client, alice, "count this job")
    assert job.status_code == 202, job.get_json()
    assert client.get(f"{JOBS}/{job.get_json()['id']}", headers=alice.headers).status_code == 200
    assert client.get(f"/api/missing/{uuid.uuid4()}").status_code == 404
    assert client.get("/health").status_code == 200
    error_of(client.get(METRICS, headers=alice.headers), 403)

    requests = metrics_of(client, admin)["requests"]

    assert requests["by_route"] == {
        "GET /api/user/me": 3,
        "GET /api/conversations/": 1,
        "POST /api/jobs/": 1,
        "GET /api/jobs/<uuid:job_id>": 1,
        "GET (unmatched)": 1,
        "GET /api/metrics/": 1,
    }
    assert requests["by_status"] == {"200": 5, "202": 1, "403": 1, "404": 1}
    assert requests["total"] == 8
    # The report does not count itself; the next one does.
    again = metrics_of(client, admin)["requests"]
    assert again["total"] == 9
    assert again["by_route"]["GET /api/metrics/"] == 2
    assert again["by_status"]["200"] == 6


def test_durations_summarise_every_counted_request(app, client, admin, alice):
    reset_metrics(app)
    for _ in range(4):
        assert client.get(ME, headers=alice.headers).status_code == 200

    durations = metrics_of(client, admin)["requests"]["duration_ms"]

    assert set(durations) == PERCENTILES
    assert all(isinstance(durations[name], float) for name in PERCENTILES), durations
    assert 0 < durations["p50"] <= durations["p95"] <= durations["p99"]
    assert 0 < durations["avg"] < 5_000


def test_the_slowest_requests_are_kept_with_their_request_ids(
    app, client, admin, alice, monkeypatch
):
    from api.services import conversations

    listing = conversations.list_page

    def slow_list_page(*args, **kwargs):
        time.sleep(0.3)
        return listing(*args, **kwargs)

    monkeypatch.setattr(conversations, "list_page", slow_list_page)
    reset_metrics(app)
    ids = {}
    for _ in range(6):
        response = client.get(ME, headers=alice.headers)
        assert response.status_code == 200
        ids[response.headers["X-Request-ID"]] = ("GET", ME, 200)
    missing = client.get("/api/missing")
    ids[missing.headers["X-Request-ID"]] = ("GET", "/api/missing", 404)
    slow = client.get(CONVERSATIONS, headers={**alice.headers, "X-Request-ID": "the-slow-one"})
    assert slow.status_code == 200
    assert slow.headers["X-Request-ID"] == "the-slow-one"
    ids["the-slow-one"] = ("GET", CONVERSATIONS, 200)
    before = datetime.now(UTC).replace(microsecond=0)

    slowest = metrics_of(client, admin)["requests"]["slowest"]

    assert len(slowest) == 5
    durations = [entry["duration_ms"] for entry in slowest]
    assert durations == sorted(durations, reverse=True)
    first = slowest[0]
    assert first["request_id"] == "the-slow-one"
    assert (first["method"], first["path"], first["status"]) == ("GET", CONVERSATIONS, 200)
    assert first["duration_ms"] >= 300
    assert all(entry["duration_ms"] < 300 for entry in slowest[1:]), slowest
    for entry in slowest:
        assert entry["request_id"] in ids, entry
        assert (entry["method"], entry["path"], entry["status"]) == ids[entry["request_id"]]
        at = datetime.strptime(entry["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert abs((at - before).total_seconds()) < 30, entry
    assert len({entry["request_id"] for entry in slowest}) == 5


def test_fewer_than_five_requests_are_all_in_the_slowest(app, client, admin, alice):
    reset_metrics(app)
    first = client.get(ME, headers=alice.headers)
    second = client.get(CONVERSATIONS, headers=alice.headers)

    slowest = metrics_of(client, admin)["requests"]["slowest"]

    assert {entry["request_id"] for entry in slowest} == {
        first.headers["X-Request-ID"],
        second.headers["X-Request-ID"],
    }


# --- jobs ended by the API itself ----------------------------------------------------------


def test_jobs_in_flight_are_read_now_and_a_cancellation_is_counted(app, client, admin, alice):
    light = [submit(client, alice, f"light job {n}") for n in range(3)]
    heavy = submit(client, alice, "heavy job", model="heavy")
    assert {r.status_code for r in [*light, heavy]} == {202}, [r.get_json() for r in light]

    tiers = metrics_of(client, admin)["tiers"]
    assert tiers["light"]["jobs"] == {**dict.fromkeys(JOB_STATUSES, 0), "queued": 3}
    assert tiers["heavy"]["jobs"] == {**dict.fromkeys(JOB_STATUSES, 0), "queued": 1}

    job_id = light[0].get_json()["id"]
    cancelled = client.delete(f"{JOBS}/{job_id}", headers=alice.headers)
    assert cancelled.status_code == 202, cancelled.get_json()

    tiers = metrics_of(client, admin)["tiers"]
    assert tiers["light"]["jobs"] == {
        **dict.fromkeys(JOB_STATUSES, 0),
        "queued": 2,
        "cancelled": 1,
    }
    assert tiers["heavy"]["jobs"]["queued"] == 1
    # A job that never ran has no queue wait, first token or speed to report.
    for timing in ("queue_wait_ms", "ttft_ms", "tokens_per_second"):
        assert tiers["light"][timing]["count"] == 0
    assert tiers["light"]["cache_hits"] == 0
    assert tiers["light"]["cache_hit_ratio"] == 0.0

    samples = scrape(client)
    assert the_value(samples, "gateway_jobs_finished_total", tier="light", status="cancelled") == 1
    assert the_value(samples, "gateway_jobs_in_flight", tier="light", status="queued") == 2
    assert the_value(samples, "gateway_jobs_in_flight", tier="heavy", status="queued") == 1
    assert values(samples, "gateway_jobs_in_flight", status="running") == []


def test_a_job_failed_for_an_unreachable_queue_is_counted(monkeypatch, client):
    broken = app_with(monkeypatch, CELERY_BROKER_URL="redis://127.0.0.1:1/0").test_client()
    account = register_and_login(broken, "queue@example.com")

    error_of(submit(broken, account, "hello", model="heavy"), 503, "queue_unavailable")

    monkeypatch.delenv("CELERY_BROKER_URL")  # Celery reads it at each connection
    samples = scrape(client)  # through an app whose broker answers
    assert the_value(samples, "gateway_jobs_finished_total", tier="heavy", status="failed") == 1
    assert values(samples, "gateway_jobs_finished_total", tier="light") == []
    assert requests_by_series(samples)[("POST", "/api/jobs/", "503")] == 1


def test_the_metrics_still_answer_while_the_broker_is_unreachable(monkeypatch, app, admin):
    client = app_with(monkeypatch, CELERY_BROKER_URL="redis://127.0.0.1:1/0").test_client()
    assert client.get("/nowhere").status_code == 404

    response = client.get(PROMETHEUS)

    # The counters live in Redis, which answers; only the queue depth is unknown, and it is
    # left out rather than reported as an empty queue.
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert 'gateway_http_requests_total{method="GET",route="(unmatched)",status="404"} 1.0' in text
    assert "gateway_queue_depth{" not in text
    body = metrics_of(client, admin)
    assert [body["tiers"][tier]["queue_depth"] for tier in ("light", "heavy")] == [None, None]


# --- rate limiting -------------------------------------------------------------------------


def test_a_per_minute_429_is_counted_as_rate_limited_without_a_tier(monkeypatch, app, admin):
    client = app_with(monkeypatch, RATE_LIMIT_USER_PER_MINUTE=2).test_client()
    dave = register_and_login(client, "dave@example.com")
    reset_metrics(app)
    statuses = [client.get(ME, headers=dave.headers).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    error_of(submit(client, dave, "refused before routing"), 429, "rate_limited")

    body = metrics_of(client, admin)

    assert body["rate_limited"] == {"total": 2, "by_reason": {"rate_limited": 2}}
    assert body["requests"]["by_status"] == {"200": 2, "429": 2}
    assert body["requests"]["by_route"] == {"GET /api/user/me": 3, "POST /api/jobs/": 1}
    assert body["tiers"]["light"]["rate_limited"] == 0
    assert body["tiers"]["heavy"]["rate_limited"] == 0
    samples = scrape(client)
    assert the_value(samples, "gateway_rate_limited_total", reason="rate_limited") == 2
    assert the_value(samples, "gateway_rate_limited_total", tier="-", reason="rate_limited") == 2


def test_job_quota_refusals_are_counted_by_reason_and_tier(monkeypatch, app, admin, alice, bob):
    client = app_with(monkeypatch, MAX_JOBS_IN_FLIGHT=1, DAILY_TOKEN_QUOTA=100).test_client()
    add_usage(app, bob.id, 60, 40)  # bob has used his day's tokens
    reset_metrics(app)

    assert submit(client, alice, "first heavy", model="heavy").status_code == 202
    for n in range(2):
        refused = submit(client, alice, f"heavy {n}", model="heavy")
        error_of(refused, 429, "too_many_jobs_in_flight")
    error_of(submit(client, bob, "light for bob"), 429, "daily_token_quota_exceeded")

    body = metrics_of(client, admin)

    assert body["rate_limited"] == {
        "total": 3,
        "by_reason": {"too_many_jobs_in_flight": 2, "daily_token_quota_exceeded": 1},
    }
    assert body["tiers"]["heavy"]["rate_limited"] == 2
    assert body["tiers"]["light"]["rate_limited"] == 1
    assert body["requests"]["by_status"] == {"202": 1, "429": 3}
    samples = scrape(client)
    assert (
        the_value(
            samples, "gateway_rate_limited_total", tier="heavy", reason="too_many_jobs_in_flight"
        )
        == 2
    )
    assert (
        the_value(
            samples, "gateway_rate_limited_total", tier="light", reason="daily_token_quota_exceeded"
        )
        == 1
    )


# --- GET /metrics: who may scrape ----------------------------------------------------------


def test_with_a_token_only_the_right_bearer_token_is_served(monkeypatch, app, admin):
    client = app_with(monkeypatch, METRICS_TOKEN="scrape-s3cret").test_client()

    refusals = [
        client.get(PROMETHEUS),
        client.get(PROMETHEUS, headers=bearer("wrong-token")),
        client.get(PROMETHEUS, headers=bearer("scrape-s3cret-and-more")),
        client.get(PROMETHEUS, headers={"Authorization": "Basic scrape-s3cret"}),
        client.get(PROMETHEUS, headers={"Authorization": "scrape-s3cret"}),
        client.get(PROMETHEUS, headers=admin.headers),  # an admin's JWT is not the token
    ]
    for response in refusals:
        error_of(response, 401, "unauthorized")
        assert "Bearer" in response.headers["WWW-Authenticate"]

    for environ in ({}, EXTERNAL):  # with the token, the address does not matter
        served = client.get(PROMETHEUS, headers=bearer("scrape-s3cret"), environ_base=environ)
        assert served.status_code == 200, served.get_data(as_text=True)
        assert served.mimetype == "text/plain"
        assert list(text_string_to_metric_families(served.get_data(as_text=True)))


# Private and shared ranges are not this host: in a container network or a cloud subnet
# they are every neighbour's addresses.
NOT_LOOPBACK = [
    "10.0.0.5",
    "192.168.0.7",
    "172.16.5.4",
    "100.64.1.1",
    "169.254.1.1",
    "fd00::5",
    "fe80::1",
    "8.8.8.8",
    "2001:4860:4860::8888",
    "::ffff:10.0.0.5",
]
SPOOFED_LOCAL = [
    {"X-Forwarded-For": "127.0.0.1"},
    {"X-Forwarded-For": "::1"},
    {"X-Real-IP": "127.0.0.1"},
    {"Forwarded": "for=127.0.0.1"},
]


@pytest.mark.parametrize("address", NOT_LOOPBACK)
def test_without_a_token_an_address_other_than_loopback_is_403(monkeypatch, app, address):
    client = app_with(monkeypatch, METRICS_TOKEN="").test_client()

    refused = client.get(PROMETHEUS, environ_base={"REMOTE_ADDR": address})

    error = error_of(refused, 403, "forbidden")
    assert "METRICS_TOKEN" in error["message"]
    assert "gateway_" not in refused.get_data(as_text=True)


@pytest.mark.parametrize("hops", [0, 1, 2])
@pytest.mark.parametrize("headers", SPOOFED_LOCAL, ids=lambda h: next(iter(h)))
def test_without_a_token_a_spoofed_local_address_is_403(monkeypatch, app, hops, headers):
    # With PROXY_FIX_HOPS the app takes its client address from X-Forwarded-For: one hop
    # more than the proxies really in front would hand the client's own value to the app.
    client = app_with(monkeypatch, METRICS_TOKEN="", PROXY_FIX_HOPS=hops).test_client()

    spoofed = client.get(PROMETHEUS, environ_base={"REMOTE_ADDR": "10.0.0.5"}, headers=headers)

    error_of(spoofed, 403, "forbidden")


@pytest.mark.parametrize("hops", [0, 1])
def test_without_a_token_a_request_forwarded_by_a_proxy_on_this_host_is_403(monkeypatch, app, hops):
    # nginx on the same host, in front of 127.0.0.1:8000, connects from loopback for every
    # client it forwards, local or not.
    client = app_with(monkeypatch, METRICS_TOKEN="", PROXY_FIX_HOPS=hops).test_client()

    for forwarded_for in ("203.0.113.9", "127.0.0.1, 203.0.113.9", "127.0.0.1"):
        forwarded = client.get(
            PROMETHEUS,
            environ_base={"REMOTE_ADDR": "127.0.0.1"},
            headers={"X-Forwarded-For": forwarded_for},
        )
        error_of(forwarded, 403, "forbidden")


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
@pytest.mark.parametrize("hops", [0, 1])
def test_without_a_token_a_loopback_peer_is_served(monkeypatch, app, address, hops):
    client = app_with(monkeypatch, METRICS_TOKEN="", PROXY_FIX_HOPS=hops).test_client()

    response = client.get(PROMETHEUS, environ_base={"REMOTE_ADDR": address})

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"


def test_with_a_token_loopback_needs_it_too_and_a_proxied_scraper_is_served(monkeypatch, app):
    client = app_with(monkeypatch, METRICS_TOKEN="scrape-s3cret", PROXY_FIX_HOPS=1).test_client()
    local = {"REMOTE_ADDR": "127.0.0.1"}

    error_of(client.get(PROMETHEUS, environ_base=local), 401, "unauthorized")
    error_of(
        client.get(PROMETHEUS, environ_base=local, headers=bearer("wrong")), 401, "unauthorized"
    )
    proxied = client.get(
        PROMETHEUS,
        environ_base={"REMOTE_ADDR": "10.0.0.5"},
        headers={**bearer("scrape-s3cret"), "X-Forwarded-For": "198.51.100.7"},
    )
    assert proxied.status_code == 200, proxied.get_data(as_text=True)


def test_scrapes_and_their_refusals_are_not_counted(monkeypatch, app):
    client = app_with(monkeypatch, METRICS_TOKEN="").test_client()
    for _ in range(3):
        assert client.get(PROMETHEUS).status_code == 200
    assert client.get(PROMETHEUS, environ_base=EXTERNAL).status_code == 403

    assert requests_by_series(scrape(client)) == {}


def test_the_content_type_is_a_valid_prometheus_text_type(client):
    content_type = client.get(PROMETHEUS).headers["Content-Type"]

    media_type, *params = [part.strip() for part in content_type.split(";")]
    names = [param.partition("=")[0].lower() for param in params]
    assert media_type == "text/plain"
    assert len(names) == len(set(names)), content_type  # a parameter given twice is invalid
    assert dict(param.split("=", 1) for param in params).get("charset") == "utf-8"


# --- GET /metrics: what it says ------------------------------------------------------------


def test_prometheus_requests_add_up_to_the_json_total(app, client, admin, alice):
    reset_metrics(app)
    for _ in range(3):
        client.get(ME, headers=alice.headers)
    client.get(CONVERSATIONS, headers=alice.headers)
    client.get("/nowhere")
    submit(client, alice, "a job for the totals")
    scraped = scrape(client)  # not counted itself

    body = metrics_of(client, admin)  # counted after it answered

    series = requests_by_series(scraped)
    assert sum(series.values()) == body["requests"]["total"] == 6
    by_route = Counter()
    by_status = Counter()
    for (method, route, status), count in series.items():
        by_route[f"{method} {route}"] += count
        by_status[status] += count
    assert dict(by_route) == body["requests"]["by_route"]
    assert dict(by_status) == body["requests"]["by_status"]
    assert series[("GET", "(unmatched)", "404")] == 1


def test_request_duration_histograms_count_the_requests_of_their_route(app, client, alice):
    reset_metrics(app)
    for _ in range(4):
        client.get(ME, headers=alice.headers)
    for _ in range(2):
        client.get(CONVERSATIONS, headers=alice.headers)
    client.post(CONVERSATIONS, json={"title": "t"}, headers=alice.headers)

    samples = scrape(client)

    name = "gateway_http_request_duration_seconds"
    expected = {("GET", ME): 4, ("GET", CONVERSATIONS): 2, ("POST", CONVERSATIONS): 1}
    counts = {
        (labels["method"], labels["route"]): int(value)
        for labels, value in samples[f"{name}_count"]
    }
    assert counts == expected
    for (method, route), count in expected.items():
        buckets = [
            (float(labels["le"]), value)
            for labels, value in samples[f"{name}_bucket"]
            if (labels["method"], labels["route"]) == (method, route)
        ]
        bounds = [le for le, _ in buckets]
        assert bounds == sorted(bounds) and bounds[-1] == float("inf")
        assert bounds[0] == pytest.approx(0.001) and bounds[-2] == pytest.approx(300)
        cumulative = [value for _, value in buckets]
        assert cumulative == sorted(cumulative)
        assert cumulative[-1] == count
        total_seconds = the_value(samples, f"{name}_sum", method=method, route=route)
        assert 0 < total_seconds < count * 5
    requests = requests_by_series(samples)
    assert requests[("GET", ME, "200")] == 4
    assert requests[("POST", CONVERSATIONS, "201")] == 1


def test_every_documented_family_is_exposed_with_its_type(client, alice):
    submit(client, alice, "a queued job")

    text = client.get(PROMETHEUS).get_data(as_text=True)

    types = {family.name: family.type for family in text_string_to_metric_families(text)}
    assert {
        "gateway_http_requests": "counter",
        "gateway_http_request_duration_seconds": "histogram",
        "gateway_jobs_finished": "counter",
        "gateway_jobs_cached": "counter",
        "gateway_jobs_in_flight": "gauge",
        "gateway_queue_depth": "gauge",
        "gateway_job_queue_wait_seconds": "histogram",
        "gateway_job_ttft_seconds": "histogram",
        "gateway_job_tokens_per_second": "histogram",
        "gateway_tokens": "counter",
        "gateway_rate_limited": "counter",
    }.items() <= types.items(), types
    samples = scrape(client)
    assert {labels["queue"] for labels, _ in samples["gateway_queue_depth"]} == {"light", "heavy"}
    assert the_value(samples, "gateway_jobs_in_flight", tier="light", status="queued") == 1


def test_the_json_and_prometheus_agree_on_in_flight_jobs_and_queues(app, client, admin, alice):
    for n in range(2):
        assert submit(client, alice, f"light {n}").status_code == 202
    assert submit(client, alice, "heavy", model="heavy").status_code == 202

    tiers = metrics_of(client, admin)["tiers"]
    samples = scrape(client)

    for tier in ("light", "heavy"):
        assert the_value(samples, "gateway_queue_depth", queue=tier) == tiers[tier]["queue_depth"]
        for status in ("queued", "running"):
            exposed = values(samples, "gateway_jobs_in_flight", tier=tier, status=status)
            assert sum(exposed) == tiers[tier]["jobs"][status]
    assert tiers["light"]["jobs"]["queued"] == 2
    assert tiers["heavy"]["jobs"]["queued"] == 1
