"""Metrics across real processes: two gunicorn servers of two workers each, Celery workers.

Every API process and every worker adds to the same Redis counters, so the totals seen
from any server must be exactly what was sent to all of them. The `app` fixture cleans
Redis before each test, so the counts start at zero; every request a test makes goes
through a Tally that knows the route template it is counted under. Waiting is done on
PostgreSQL and Redis directly, never by polling the API (that would add requests).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from core import metrics_store
from core.db import db
from core.models import JOB_STATUSES, TERMINAL_STATUSES, Job
from pipeline import queue, response_cache
from tests.conftest import PASSWORD, start_gunicorn, stop_gunicorn
from tests.helpers import bearer

pytestmark = pytest.mark.live

JOBS = "/api/jobs/"
JOB = "/api/jobs/<uuid:job_id>"
ME = "/api/user/me"
UNMATCHED = "(unmatched)"
NO_JOBS = dict.fromkeys(JOB_STATUSES, 0)


# --- helpers -----------------------------------------------------------------------------


def unique(label: str) -> str:
    return f"{label} marker {uuid.uuid4().hex}"


class Tally:
    """Sends requests over HTTP and counts them as the gateway should: (method, route, status)."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str, str]] = Counter()
        self._lock = threading.Lock()

    def call(self, method: str, url: str, route: str, **kwargs) -> requests.Response:
        response = requests.request(method, url, timeout=30, **kwargs)
        with self._lock:
            self.counts[(method, route, str(response.status_code))] += 1
        return response

    def by_route(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for (method, route, _status), count in self.counts.items():
            out[f"{method} {route}"] += count
        return dict(out)

    def by_status(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for (_method, _route, status), count in self.counts.items():
            out[status] += count
        return dict(out)


def register(tally: Tally, base: str, email: str) -> dict[str, str]:
    created = tally.call(
        "POST",
        f"{base}/api/auth/register",
        "/api/auth/register",
        json={"email": email, "password": PASSWORD},
    )
    assert created.status_code == 201, created.text
    return login(tally, base, email)


def login(tally: Tally, base: str, email: str) -> dict[str, str]:
    response = tally.call(
        "POST",
        f"{base}/api/auth/login",
        "/api/auth/login",
        json={"email": email, "password": PASSWORD},
    )
    assert response.status_code == 200, response.text
    return bearer(response.json()["access_token"])


def make_admin(app, tally: Tally, base: str, email: str) -> dict[str, str]:
    register(tally, base, email)
    result = app.test_cli_runner().invoke(args=["create-admin", email])
    assert result.exit_code == 0, result.output
    return login(tally, base, email)  # the role change ended the earlier tokens


def job_statuses(app, ids: list[str]) -> dict[str, str]:
    with app.app_context():
        rows = db.session.execute(
            select(Job.id, Job.status).where(Job.id.in_([uuid.UUID(i) for i in ids]))
        )
        return {str(job_id): status for job_id, status in rows}


def wait_until(predicate, timeout: float, what) -> None:
    """Poll `predicate`; on time-out, fail with `what()` (the state waited on, as it is then)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what()}")
        time.sleep(0.05)


def wait_for_jobs(app, ids: list[str], statuses: set[str], timeout: float = 30) -> None:
    wait_until(
        lambda: (
            set(job_statuses(app, ids).values()) <= statuses
            and len(job_statuses(app, ids)) == len(ids)
        ),
        timeout,
        lambda: f"jobs to reach {statuses}: {job_statuses(app, ids)}",
    )


def recorded_jobs(app) -> dict[str, int]:
    """The job counters in Redis ("tier|status" → n), read without an HTTP request."""
    with app.app_context():
        return metrics_store.read().jobs


def queue_depths(app) -> dict[str, int]:
    with app.app_context():
        return queue.queue_depths()


def metrics_json(tally: Tally, base: str, admin: dict[str, str]) -> dict:
    response = tally.call("GET", f"{base}/api/metrics", "/api/metrics/", headers=admin)
    assert response.status_code == 200, response.text
    return response.json()


def scrape(base: str) -> dict[str, list[tuple[dict, float]]]:
    """GET /metrics (not counted by the gateway), parsed: sample name → [(labels, value)]."""
    response = requests.get(f"{base}/metrics", timeout=30)
    assert response.status_code == 200, response.text
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def sample_values(samples, name: str, **labels) -> list[float]:
    return [
        value
        for sample_labels, value in samples.get(name, [])
        if all(sample_labels.get(k) == v for k, v in labels.items())
    ]


def the_value(samples, name: str, **labels) -> float:
    found = sample_values(samples, name, **labels)
    assert len(found) == 1, (name, labels, samples.get(name))
    return found[0]


@pytest.fixture
def second_server(live, tmp_path):
    """Another gunicorn (two worker processes) beside the session's, on the same DB and Redis."""
    server = start_gunicorn(tmp_path / "second.log", workers=2)
    yield server
    stop_gunicorn(server)


# --- the totals add up across processes ----------------------------------------------------


def test_totals_add_up_across_two_servers_and_the_workers(app, live, second_server, workers):
    servers = [live.url, second_server.url]
    tally = Tally()
    alice = register(tally, servers[0], "alice@example.com")
    bob = register(tally, servers[1], "bob@example.com")
    admin = make_admin(app, tally, servers[1], "ops@example.com")

    n_light, n_heavy = 6, 3
    plan = [("light", f"light {n}") for n in range(n_light)]
    plan += [("heavy", f"heavy {n}") for n in range(n_heavy)]
    plan = [(model, unique(label)) for model, label in plan]

    def submit(index: int) -> dict:
        model, message = plan[index]
        base, user = servers[index % 2], (alice, bob)[index % 2]
        response = tally.call(
            "POST", f"{base}{JOBS}", JOBS, json={"message": message, "model": model}, headers=user
        )
        assert response.status_code == 202, response.text
        return response.json()

    def other_request(index: int) -> None:
        base, user = servers[index % 2], (alice, bob)[(index // 2) % 2]
        if index < 4:
            assert tally.call("GET", f"{base}{ME}", ME, headers=user).status_code == 200
        elif index < 7:
            path = f"/api/no-such-thing/{uuid.uuid4().hex}"
            assert tally.call("GET", f"{base}{path}", UNMATCHED).status_code == 404
        else:
            path = f"/api/jobs/{uuid.uuid4()}"
            assert tally.call("GET", f"{base}{path}", JOB, headers=user).status_code == 404

    with ThreadPoolExecutor(max_workers=8) as pool:
        extras = [pool.submit(other_request, n) for n in range(8)]
        submitted = list(pool.map(submit, range(len(plan))))
        for extra in extras:
            extra.result()
    assert requests.get(f"{servers[0]}/health", timeout=10).status_code == 200  # not counted

    ids = [job["id"] for job in submitted]
    assert [job["tier"] for job in submitted] == [model for model, _ in plan]
    wait_for_jobs(app, ids, set(TERMINAL_STATUSES))
    # A worker commits a job's end, then records its metrics, then caches its answer.
    wait_until(
        lambda: recorded_jobs(app) == {"light|succeeded": n_light, "heavy|succeeded": n_heavy},
        10,
        lambda: f"the jobs' metrics: {recorded_jobs(app)}",
    )
    source = submitted[0]
    with app.app_context():
        cache_key = db.session.get(Job, uuid.UUID(source["id"])).cache_key
        wait_until(
            lambda: response_cache.lookup(cache_key) is not None, 10, lambda: "the cached answer"
        )

    # The same question again, on the other server: answered from the cache by the API.
    hit = tally.call(
        "POST",
        f"{servers[1]}{JOBS}",
        JOBS,
        json={"message": plan[0][1], "model": "light"},
        headers=bob,
    )
    assert hit.status_code == 202, hit.text
    assert (hit.json()["status"], hit.json()["cached"]) == ("succeeded", True)

    owners = [(alice, bob)[index % 2] for index in range(len(plan))] + [bob]
    jobs = []
    for index, job_id in enumerate([*ids, hit.json()["id"]]):
        base = servers[(index + 1) % 2]  # read where it was not submitted
        response = tally.call("GET", f"{base}/api/jobs/{job_id}", JOB, headers=owners[index])
        assert response.status_code == 200, response.text
        jobs.append(response.json())
    assert {job["status"] for job in jobs} == {"succeeded"}, jobs
    generated = [job for job in jobs if not job["cached"]]
    assert len(generated) == n_light + n_heavy

    expected_tokens: dict[str, dict[str, int]] = {}
    for job in generated:
        tokens = expected_tokens.setdefault(job["model"], {"prompt": 0, "completion": 0})
        tokens["prompt"] += job["usage"]["prompt_tokens"]
        tokens["completion"] += job["usage"]["completion_tokens"]
    assert all(t["prompt"] > 0 and t["completion"] > 0 for t in expected_tokens.values())
    assert len(expected_tokens) == 2

    # --- the JSON report, from one server and then the other ---
    sent = Counter(tally.counts)  # everything so far; the reports add their own requests
    sent_by_route, sent_by_status = tally.by_route(), tally.by_status()
    from_first = metrics_json(tally, servers[0], admin)
    from_second = metrics_json(tally, servers[1], admin)

    report = from_first["requests"]
    assert report["by_route"] == sent_by_route
    assert report["by_status"] == sent_by_status
    assert report["total"] == sum(sent.values())
    by_route = report["by_route"]
    assert by_route["POST /api/jobs/"] == n_light + n_heavy + 1
    assert by_route["POST /api/auth/register"] == 3
    assert by_route["POST /api/auth/login"] == 4
    assert by_route["GET /api/user/me"] == 4
    assert by_route["GET (unmatched)"] == 3
    assert by_route[f"GET {JOB}"] == n_light + n_heavy + 1 + 1
    assert report["by_status"]["404"] == 4
    assert from_second["requests"]["total"] == report["total"] + 1  # the first report
    assert from_second["requests"]["by_route"]["GET /api/metrics/"] == 1
    assert from_second["tiers"] == from_first["tiers"]
    assert from_second["tokens_by_model"] == from_first["tokens_by_model"]

    tiers = from_first["tiers"]
    assert tiers["light"]["jobs"] == {**NO_JOBS, "succeeded": n_light + 1}
    assert tiers["heavy"]["jobs"] == {**NO_JOBS, "succeeded": n_heavy}
    assert (tiers["light"]["cache_hits"], tiers["heavy"]["cache_hits"]) == (1, 0)
    assert tiers["light"]["cache_hit_ratio"] == round(1 / (n_light + 1), 4)
    assert tiers["heavy"]["cache_hit_ratio"] == 0.0
    for tier, count in (("light", n_light), ("heavy", n_heavy)):
        section = tiers[tier]
        assert section["queue_depth"] == 0
        assert section["rate_limited"] == 0
        own = [job for job in generated if job["tier"] == tier]
        for timing in ("queue_wait_ms", "ttft_ms", "tokens_per_second"):
            summary = section[timing]
            assert summary["count"] == count, (tier, timing, summary)
            assert summary["p50"] is not None and summary["p50"] <= summary["p99"], summary
        for timing in ("queue_wait_ms", "ttft_ms"):
            mean = sum(job["timings"][timing] for job in own) / count
            assert section[timing]["avg"] == pytest.approx(mean, abs=0.5), (tier, timing)
    assert from_first["tokens_by_model"] == expected_tokens
    assert from_first["rate_limited"] == {"total": 0, "by_reason": {}}

    # --- Prometheus, scraped from the first server after both reports ---
    samples = scrape(servers[0])

    exposed = {
        (labels["method"], labels["route"], labels["status"]): int(value)
        for labels, value in samples["gateway_http_requests_total"]
    }
    assert exposed == dict(tally.counts)
    durations = {
        (labels["method"], labels["route"]): int(value)
        for labels, value in samples["gateway_http_request_duration_seconds_count"]
    }
    per_series: Counter[tuple[str, str]] = Counter()
    for (method, route, _status), count in tally.counts.items():
        per_series[(method, route)] += count
    assert durations == dict(per_series)

    for tier, count in (("light", n_light + 1), ("heavy", n_heavy)):
        finished = sample_values(samples, "gateway_jobs_finished_total", tier=tier)
        assert finished == [count]
        assert (
            the_value(samples, "gateway_jobs_finished_total", tier=tier, status="succeeded")
            == count
        )
        assert the_value(samples, "gateway_queue_depth", queue=tier) == 0
    assert sample_values(samples, "gateway_jobs_cached_total") == [1]
    assert the_value(samples, "gateway_jobs_cached_total", tier="light") == 1
    assert samples.get("gateway_jobs_in_flight", []) == []
    for tier, count in (("light", n_light), ("heavy", n_heavy)):
        own = [job for job in generated if job["tier"] == tier]
        for family, timing in (
            ("gateway_job_queue_wait_seconds", "queue_wait_ms"),
            ("gateway_job_ttft_seconds", "ttft_ms"),
        ):
            assert the_value(samples, f"{family}_count", tier=tier) == count
            expected_seconds = sum(job["timings"][timing] for job in own) / 1000
            assert the_value(samples, f"{family}_sum", tier=tier) == pytest.approx(
                expected_seconds, abs=0.001 * count
            )
            assert the_value(samples, f"{family}_bucket", tier=tier, le="+Inf") == count
        assert the_value(samples, "gateway_job_tokens_per_second_count", tier=tier) == count
    tokens = {
        (labels["model"], labels["kind"]): int(value)
        for labels, value in samples["gateway_tokens_total"]
    }
    assert tokens == {
        (model, kind): counts[kind]
        for model, counts in expected_tokens.items()
        for kind in ("prompt", "completion")
    }
    assert samples.get("gateway_rate_limited_total", []) == []


# --- queue depth and jobs in flight, now ---------------------------------------------------


def test_queue_depth_and_jobs_in_flight_while_heavy_jobs_wait(app, live, workers, fake_ollama):
    tally = Tally()
    alice = register(tally, live.url, "alice@example.com")
    admin = make_admin(app, tally, live.url, "ops@example.com")
    fake_ollama.token_delay = 0.1
    fake_ollama.reply_tokens = 40  # ~4 s on the heavy worker's single slot

    def submit(label: str) -> str:
        response = tally.call(
            "POST",
            f"{live.url}{JOBS}",
            JOBS,
            json={"message": unique(label), "model": "heavy"},
            headers=alice,
        )
        assert response.status_code == 202, response.text
        return response.json()["id"]

    busy = submit("busy")
    wait_for_jobs(app, [busy], {"running"}, timeout=10)
    waiting = [submit(f"waiting {n}") for n in range(3)]
    wait_until(
        lambda: queue_depths(app)["heavy"] == 3, 5, lambda: f"the queue: {queue_depths(app)}"
    )

    sent_by_route = tally.by_route()
    report = metrics_json(tally, live.url, admin)
    samples = scrape(live.url)

    assert report["requests"]["by_route"] == sent_by_route
    heavy = report["tiers"]["heavy"]
    assert heavy["queue_depth"] == 3
    assert heavy["jobs"] == {**NO_JOBS, "queued": 3, "running": 1}
    assert report["tiers"]["light"]["queue_depth"] == 0
    assert report["tiers"]["light"]["jobs"] == NO_JOBS
    assert the_value(samples, "gateway_queue_depth", queue="heavy") == 3
    assert the_value(samples, "gateway_queue_depth", queue="light") == 0
    assert the_value(samples, "gateway_jobs_in_flight", tier="heavy", status="queued") == 3
    assert the_value(samples, "gateway_jobs_in_flight", tier="heavy", status="running") == 1
    assert sample_values(samples, "gateway_jobs_in_flight", tier="light") == []
    assert job_statuses(app, [busy, *waiting]) == {
        busy: "running",
        **dict.fromkeys(waiting, "queued"),
    }

    # Cancel everything: the queued jobs end at once (in the API), the running one in its
    # worker; the worker then takes the cancelled jobs' messages off the queue and drops them.
    for job_id in [*waiting, busy]:
        response = tally.call("DELETE", f"{live.url}/api/jobs/{job_id}", JOB, headers=alice)
        assert response.status_code == 202, response.text
    wait_for_jobs(app, [busy, *waiting], {"cancelled"}, timeout=10)
    wait_until(
        lambda: queue_depths(app)["heavy"] == 0, 10, lambda: f"the queue: {queue_depths(app)}"
    )
    wait_until(
        lambda: recorded_jobs(app) == {"heavy|cancelled": 4},
        10,
        lambda: f"the jobs' metrics: {recorded_jobs(app)}",
    )

    after = metrics_json(tally, live.url, admin)["tiers"]["heavy"]
    assert after["queue_depth"] == 0
    assert after["jobs"] == {**NO_JOBS, "cancelled": 4}
    # Only the job that ran has a queue wait and a first token.
    assert after["queue_wait_ms"]["count"] == 1
    assert after["ttft_ms"]["count"] == 1
    assert after["cache_hits"] == 0
    assert after["cache_hit_ratio"] == 0.0
    assert after["rate_limited"] == 0
