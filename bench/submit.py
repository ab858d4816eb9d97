"""Submit throughput: POST /api/jobs with an API key, at a fixed concurrency.

Measures the API's whole submit path (authentication by API key, the rate-limit check,
validation, classification, the conversation, message and job inserts, the enqueue on the
Celery broker) under gunicorn with the project's config/gunicorn.conf.py (gevent workers).
Target: >= 300 requests/s with p99 <= 100 ms.

Starts its own stack on 127.0.0.1 (a fresh PostgreSQL database `llm_gateway_bench_submit`,
Redis db 13 under the `gwbench-submit:` prefix, gunicorn); no Celery worker, so every job
stays queued on the broker. MAX_JOBS_IN_FLIGHT=0 and rate limits of 1,000,000/minute: the
rate-limit check runs on every request but never refuses. Every request carries
`Cache-Control: no-store` (or, with --distinct, a message of its own), so each one really
inserts and enqueues. After each repetition the database must hold exactly as many new
jobs, and the broker as many new messages, as 202s were returned; at the end the job ids
of the 202s, of the database and of the broker messages must be the same set.

Each repetition drives the load for --duration seconds (or --requests requests); the
summary is the median of each statistic over the repetitions. Everything it started is
stopped, and the database and keys removed, at the end (also on errors, Ctrl-C, SIGTERM).

Run: .venv/bin/python bench/submit.py [--duration 20] [--concurrency 32] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import httpx
from loadgen import LoadResult, Response, build_request, run_load
from stack import (
    LOAD_TEST_RATE_LIMIT,
    CpuWindow,
    Stack,
    StackError,
    Storage,
    add_run_arguments,
    check_overrides,
    cpu_lines,
    cpu_per_request,
    create_api_key,
    load_test_env,
    logger,
    median_of,
    parse_overrides,
    run_repetitions,
    summary,
    verdict,
)

STORAGE = Storage(db_name="llm_gateway_bench_submit", redis_db=13, prefix="gwbench-submit:")
MESSAGE = "Summarize the main causes of the French Revolution in three sentences."
TARGETS = {"requests_per_s": 300.0, "p99_ms": 100.0}
REQUEST_TIMEOUT = 30.0

log = logger("submit")


class Submitter:
    """Builds the requests and checks the answers, keeping the id of every accepted job."""

    def __init__(self, base: str, api_key: str, distinct: bool) -> None:
        url = urlsplit(base)
        self.host, self.port = url.hostname or "", url.port or 80
        self.distinct = distinct
        self.accepted: list[str] = []
        self.headers = {
            "X-API-Key": api_key,
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "bench-submit",
        }
        if not distinct:
            # The cache neither read nor written: no lookup can answer the job.
            self.headers["Cache-Control"] = "no-store"
        self.fixed = self._build(MESSAGE)
        self.serial = 0  # distinct messages across warm-up and repetitions

    def _build(self, message: str) -> bytes:
        body = json.dumps({"message": message, "model": "auto"}).encode()
        return build_request("POST", self.host, self.port, "/api/jobs", self.headers, body)

    def request(self, _n: int) -> bytes:
        if not self.distinct:
            return self.fixed
        self.serial += 1
        return self._build(f"{MESSAGE} (request {self.serial})")

    def check(self, response: Response) -> str | None:
        if response.status != 202:
            return f"HTTP {response.status}: {response.body[:200].decode(errors='replace')}"
        try:
            job = json.loads(response.body)
        except ValueError:
            return "202 without a JSON body"
        if job.get("status") != "queued" or "id" not in job:
            return f"202 with an unexpected job: {str(job)[:200]}"
        self.accepted.append(job["id"])
        return None

    async def run(self, **load: Any) -> LoadResult:
        return await run_load(
            self.host, self.port, self.request, self.check, timeout=REQUEST_TIMEOUT, **load
        )


def count_jobs() -> tuple[int, int]:
    """(jobs, jobs not queued) in the benchmark's database."""
    conn = STORAGE.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*), count(*) FILTER (WHERE status <> 'queued') FROM jobs")
            total, other = cur.fetchone()
    finally:
        conn.close()
    return total, other


def job_ids() -> list[str]:
    conn = STORAGE.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id::text FROM jobs")
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.close()


def start_stack(stack: Stack, args: argparse.Namespace) -> str:
    """Database and API (no worker, no model); returns the API's url."""
    overrides = parse_overrides(args.set)
    stack.prepare_storage(overrides)
    base = stack.start_gunicorn({**load_test_env(args.workers), **overrides})
    stack.wait_for_health(base, 60)
    pid = stack.processes["gunicorn"].pid
    log(f"gunicorn ({args.workers} workers, arbiter pid {pid}) healthy at {base}")
    stack.watch_services()
    return base


def warm_up(base: str, submitter: Submitter, args: argparse.Namespace) -> None:
    """One request checked in detail (the rate limit really applies), then --warmup more."""
    headers = {k: v for k, v in submitter.headers.items() if k != "Content-Type"}
    first = httpx.post(
        f"{base}/api/jobs", json={"message": MESSAGE, "model": "auto"}, headers=headers, timeout=30
    )
    if first.status_code != 202:
        raise StackError(f"POST /api/jobs: {first.status_code} {first.text[:300]}")
    submitter.accepted.append(first.json()["id"])
    limit = first.headers.get("X-RateLimit-Limit")
    if limit != str(LOAD_TEST_RATE_LIMIT) and not any(
        "RATE_LIMIT_USER" in item for item in args.set
    ):
        raise StackError(f"expected X-RateLimit-Limit {LOAD_TEST_RATE_LIMIT}, got {limit!r}")
    if args.warmup:
        result = asyncio.run(submitter.run(concurrency=args.concurrency, requests=args.warmup))
        if result.errors:
            raise StackError(f"warm-up failed: {result.errors[:3]}")


def measure(stack: Stack, submitter: Submitter, args: argparse.Namespace) -> dict[str, Any]:
    jobs_before, _ = count_jobs()
    messages_before = STORAGE.queued_messages()
    sessions_before = STORAGE.sessions_opened()
    accepted_before = len(submitter.accepted)
    window = CpuWindow(stack, split="gunicorn")
    window.start()
    result = asyncio.run(
        submitter.run(concurrency=args.concurrency, requests=args.requests, duration=args.duration)
    )
    cpu = window.stop()
    sessions_opened = STORAGE.sessions_opened() - sessions_before
    stack.check_alive()
    jobs_after, not_queued = count_jobs()
    accepted = len(submitter.accepted) - accepted_before
    checks = {
        "accepted_202": accepted,
        "jobs_added": jobs_after - jobs_before,
        "messages_added": STORAGE.queued_messages() - messages_before,
        "jobs_not_queued": not_queued,
    }
    checks["consistent"] = (
        checks["jobs_added"] == accepted == checks["messages_added"] and not not_queued
    )
    entry = {
        "requests_per_s": result.ok / result.wall_s,
        "latency_ms": summary(result.latencies_ms),
        "errors": len(result.errors),
        "error_examples": sorted(Counter(result.errors).items(), key=lambda kv: -kv[1])[:5],
        "statuses": {str(status): n for status, n in sorted(result.statuses.items())},
        "requests": result.completed,
        "wall_s": result.wall_s,
        "cpu": cpu,
        "cpu_ms_per_request": cpu_per_request(cpu, result.wall_s, result.completed),
        "pg_sessions_opened": sessions_opened,
        "checks": checks,
    }
    latency = entry["latency_ms"]
    log(
        f"{result.ok} accepted, {len(result.errors)} failed in {result.wall_s:.1f} s: "
        f"{entry['requests_per_s']:.0f} requests/s, p50 {latency['p50']:.1f} ms, "
        f"p99 {latency['p99']:.1f} ms; database/broker check "
        f"{'ok' if checks['consistent'] else 'FAILED: ' + str(checks)}"
    )
    return entry


def final_check(submitter: Submitter) -> dict[str, Any]:
    """Every 202 of the whole run (warm-up included) is one job row and one broker message."""
    accepted, in_db, on_broker = set(submitter.accepted), job_ids(), STORAGE.queued_job_ids()
    check = {
        "accepted_202": len(submitter.accepted),
        "jobs_in_database": len(in_db),
        "messages_on_broker": len(on_broker),
        "duplicate_messages": len(on_broker) - len(set(on_broker)),
        "same_ids": accepted == set(in_db) == set(on_broker),
    }
    check["ok"] = check["same_ids"] and len(accepted) == len(submitter.accepted) == len(
        in_db
    ) == len(on_broker)
    return check


# --- report --------------------------------------------------------------------------------


def print_table(final: dict[str, Any], config: dict[str, Any], check: dict[str, Any]) -> None:
    size = f"{config['requests']} requests" if config["requests"] else f"{config['duration']:g} s"
    cache = "distinct messages" if config["distinct"] else "Cache-Control: no-store"
    print(
        f"\nSubmit benchmark: POST /api/jobs, {size} x {config['repeat']} repetitions at "
        f"{config['concurrency']} concurrent; gunicorn {config['workers']} workers "
        f"(config/gunicorn.conf.py); {cache} (median over repetitions)\n"
    )
    latency = final["latency_ms"]
    print(f"{'':<24}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}")
    print(
        f"{'latency (ms)':<24}{latency['p50']:>9.1f}{latency['p90']:>9.1f}"
        f"{latency['p99']:>9.1f}{latency['max']:>9.1f}"
    )
    rate = final["requests_per_s"]
    print(
        f"\n{'requests/s':<24}{rate:>9.1f}  target >= {TARGETS['requests_per_s']:g}: "
        f"{'met' if rate >= TARGETS['requests_per_s'] else 'NOT MET'}"
    )
    print(
        f"{'p99 latency (ms)':<24}{latency['p99']:>9.1f}  target <= {TARGETS['p99_ms']:g} ms: "
        f"{verdict(latency['p99'], TARGETS['p99_ms'])}"
    )
    print("\nCPU during the run")
    print(cpu_lines(final["cpu"], final["cpu_ms_per_request"]))
    print(f"PostgreSQL connections opened per repetition: {final['pg_sessions_opened']:.0f}")
    print(
        f"\nerrors: {config['errors_total']} (summed over repetitions); database and broker: "
        f"{check['accepted_202']} 202s, {check['jobs_in_database']} jobs, "
        f"{check['messages_on_broker']} messages, same ids: {check['same_ids']} -> "
        f"{'ok' if check['ok'] else 'MISMATCH'}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--duration", type=float, default=None, help="seconds per run (20)")
    size.add_argument("--requests", type=int, default=None, help="requests per run instead")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--warmup", type=int, default=200, help="uncounted requests")
    parser.add_argument(
        "--distinct",
        action="store_true",
        help="a distinct message per request instead of Cache-Control: no-store",
    )
    add_run_arguments(parser, set_help="extra environment for the API (to try a setting)")
    args = parser.parse_args(argv)
    if args.requests is None and args.duration is None:
        args.duration = 20.0
    for name in ("concurrency", "repeat", "workers"):
        if not 1 <= getattr(args, name) <= 1000:
            parser.error(f"--{name} must be between 1 and 1000")
    if args.requests is not None and not 1 <= args.requests <= 1_000_000:
        parser.error("--requests must be between 1 and 1000000")
    if args.duration is not None and not 0.1 <= args.duration <= 3600:
        parser.error("--duration must be between 0.1 and 3600 seconds")
    if not 0 <= args.warmup <= 100_000:
        parser.error("--warmup must be between 0 and 100000")
    check_overrides(parser, args)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stack = Stack.create(STORAGE, log, "submit-bench-")

    def set_up() -> Submitter:
        base = start_stack(stack, args)
        submitter = Submitter(base, create_api_key(base, "submit bench"), args.distinct)
        log(f"warming up ({args.warmup} requests, not counted)")
        warm_up(base, submitter, args)
        return submitter

    outcome = run_repetitions(
        stack,
        args,
        set_up,
        lambda submitter: measure(stack, submitter, args),
        lambda submitter, runs: final_check(submitter),
    )
    if isinstance(outcome, int):
        return outcome
    runs, check = outcome
    final = median_of(runs)
    errors_total = sum(run["errors"] for run in runs)
    consistent = check["ok"] and all(run["checks"]["consistent"] for run in runs)
    config = {
        "duration": args.duration,
        "requests": args.requests,
        "concurrency": args.concurrency,
        "repeat": args.repeat,
        "warmup": args.warmup,
        "workers": args.workers,
        "distinct": args.distinct,
        "env_overrides": args.set,
        "errors_total": errors_total,
    }
    met = {
        "requests_per_s": final["requests_per_s"] >= TARGETS["requests_per_s"],
        "p99_ms": final["latency_ms"]["p99"] <= TARGETS["p99_ms"],
    }
    if args.json:
        output = {
            "config": config,
            "targets": TARGETS,
            "met": met,
            "median": final,
            "runs": runs,
            "final_check": check,
        }
        print(json.dumps(output, indent=2))
    else:
        print_table(final, config, check)
    return 1 if errors_total or not consistent else 0


if __name__ == "__main__":
    sys.exit(main())
