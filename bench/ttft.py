"""Time to first token added by the gateway, and the delay of its token relay.

Starts its own stack on 127.0.0.1 (a fresh PostgreSQL database, Redis db 13 under the
`gwbench:` prefix, the fake Ollama server, gunicorn and one Celery worker on the light
queue), then measures, at the same concurrency and with the same fake model:

(a) direct: streaming POST /api/chat to the fake; TTFT = request start -> first token line;
(b) gateway: POST /api/jobs then GET /api/jobs/<id>/events; TTFT = POST start -> first
    `token` event read; relay delay of every token = client read time - the ms part of its
    Redis stream entry id (when the worker's XADD landed; same machine clock).
Inter-token delay, both paths: the time between two consecutive tokens read by the client
(for (b) only tokens XADDed after the events response opened: a backlog comes at once).

Each repetition runs (a) then (b); the summary is the median of each statistic over the
repetitions. Everything it started is stopped, and the database and keys removed, at the end.

Run: .venv/bin/python bench/ttft.py [--requests 200] [--concurrency 20] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from stack import (
    HTTP_TIMEOUT,
    MODEL,
    ROOT,
    Stack,
    StackError,
    Storage,
    add_run_arguments,
    check_overrides,
    cpu_report,
    create_api_key,
    logger,
    machine_cpu,
    median_of,
    parse_overrides,
    run_repetitions,
    summary,
    verdict,
)

if str(ROOT) not in sys.path:  # the SSE parser is the tests' one
    sys.path.insert(1, str(ROOT))
from tests.sse_client import SseParser

STORAGE = Storage(db_name="llm_gateway_bench", redis_db=13, prefix="gwbench:")
PROMPT = "Say hello."
TARGETS = {"added_p50": 10.0, "added_p99": 50.0, "relay_p99": 5.0}
REQUEST_TIMEOUT = 60.0  # seconds for one whole request, stream included

log = logger("ttft")


class RequestFailed(RuntimeError):
    pass


def start_stack(stack: Stack, args: argparse.Namespace) -> tuple[str, str]:
    """Database, fake model server, API and worker; returns (fake url, api url)."""
    # Every request is a generation by one user at full concurrency: no answer from the
    # cache, no per-user caps (the defaults would answer 429 to most of the load).
    measured = {
        "CACHE_TTL_SECONDS": "0",
        "MAX_JOBS_IN_FLIGHT": "0",
        "RATE_LIMIT_USER_PER_MINUTE": "1000000",
    }
    overrides = {**measured, **parse_overrides(args.set)}
    stack.prepare_storage(overrides)
    fake_url = stack.start_fake_ollama(
        ["--token-delay", str(args.token_delay), "--reply-tokens", str(args.reply_tokens)]
    )
    log(f"fake Ollama at {fake_url}")
    base = stack.start_gunicorn(
        {"WEB_CONCURRENCY": "2", "GUNICORN_THREADS": str(args.gunicorn_threads), **overrides}
    )
    stack.start_worker(args.worker_threads, {"OLLAMA_URL": fake_url, **overrides})
    stack.wait_for_health(base, 60)
    log(f"gunicorn healthy at {base}")
    return fake_url, base


# --- the two paths -------------------------------------------------------------------------


@dataclass
class Sample:
    ttft_ms: float
    tokens: int
    # gateway only
    job_id: str | None = None
    t0_wall: float = 0.0  # time.time() at POST start
    post_ms: float = math.nan  # POST /api/jobs round trip
    sse_open_ms: float = math.nan  # POST answered -> events response headers
    sse_open_wall: float = 0.0
    first_read_wall: float = 0.0
    first_entry_ms: int = 0
    relay_ms: list[float] = field(default_factory=list)
    backlog_tokens: int = 0  # tokens already in the stream when the events response opened
    gaps_ms: list[float] = field(default_factory=list)  # between consecutive tokens read


async def direct_request(client: httpx.AsyncClient, fake_url: str) -> Sample:
    body = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "stream": True}
    started = time.perf_counter()
    first: float | None = None
    previous: float | None = None
    tokens = 0
    gaps: list[float] = []
    async with client.stream("POST", f"{fake_url}/api/chat", json=body) as response:
        if response.status_code != 200:
            raise RequestFailed(f"direct: HTTP {response.status_code}")
        async for line in response.aiter_lines():
            if not line:
                continue
            chunk = json.loads(line)
            if "error" in chunk:
                raise RequestFailed(f"direct: {chunk['error']}")
            if chunk.get("done"):
                break
            if (chunk.get("message") or {}).get("content"):
                read = time.perf_counter()
                if first is None:
                    first = read
                if previous is not None:
                    gaps.append((read - previous) * 1000)
                previous = read
                tokens += 1
    if first is None:
        raise RequestFailed("direct: no token")
    return Sample(ttft_ms=(first - started) * 1000, tokens=tokens, gaps_ms=gaps)


async def gateway_request(client: httpx.AsyncClient, base: str, api_key: str) -> Sample:
    headers = {"X-API-Key": api_key}
    body = {"message": PROMPT, "model": "light", "tools": False}
    t0_wall, started = time.time(), time.perf_counter()
    created = await client.post(f"{base}/api/jobs", json=body, headers=headers)
    posted = time.perf_counter()
    if created.status_code != 202:
        raise RequestFailed(f"POST /api/jobs: HTTP {created.status_code} {created.text[:200]}")
    sample = Sample(ttft_ms=math.nan, tokens=0, job_id=created.json()["id"], t0_wall=t0_wall)
    sample.post_ms = (posted - started) * 1000
    first: float | None = None
    previous_live: float | None = None
    parser = SseParser()
    url = f"{base}/api/jobs/{sample.job_id}/events"
    async with client.stream("GET", url, headers=headers) as response:
        sample.sse_open_wall = time.time()
        sample.sse_open_ms = (time.perf_counter() - posted) * 1000
        if response.status_code != 200:
            raise RequestFailed(f"events: HTTP {response.status_code}")
        async for line in response.aiter_lines():
            event = parser.feed(line)
            if event is None:
                continue
            name, entry_id = event.event, event.id or ""
            if name == "token":
                read_wall, read = time.time(), time.perf_counter()
                entry_ms = int(entry_id.split("-", 1)[0])
                sample.relay_ms.append(read_wall * 1000 - entry_ms)
                sample.tokens += 1
                if entry_ms < sample.sse_open_wall * 1000:
                    sample.backlog_tokens += 1
                else:
                    if previous_live is not None:
                        sample.gaps_ms.append((read - previous_live) * 1000)
                    previous_live = read
                if first is None:
                    first = read
                    sample.first_read_wall, sample.first_entry_ms = read_wall, entry_ms
            elif name == "done":
                break
            elif name in ("error", "cancelled", "reset"):
                raise RequestFailed(f"job {sample.job_id}: {name}")
    if first is None:
        raise RequestFailed(f"job {sample.job_id}: no token")
    sample.ttft_ms = (first - started) * 1000
    return sample


async def run_load(
    one: Callable[[], Awaitable[Sample]], count: int, concurrency: int
) -> tuple[list[Sample], list[str]]:
    """`count` requests with `concurrency` in flight at all times; (samples, errors)."""
    samples: list[Sample] = []
    errors: list[str] = []
    remaining = count

    async def loop() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            try:
                samples.append(await asyncio.wait_for(one(), REQUEST_TIMEOUT))
            except (RequestFailed, httpx.HTTPError, TimeoutError, KeyError, ValueError) as exc:
                errors.append(f"{exc.__class__.__name__}: {exc}")

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return samples, errors


def parse_time(value: str | None) -> float:
    return datetime.fromisoformat(value).timestamp() if value else math.nan


async def job_timings(
    client: httpx.AsyncClient, base: str, api_key: str, job_ids: list[str]
) -> dict[str, dict[str, Any]]:
    """Each job's server-side timings (read after the run, so not part of it)."""
    found: dict[str, dict[str, Any]] = {}
    pending = list(job_ids)

    async def loop() -> None:
        while pending:
            job_id = pending.pop()
            response = await client.get(f"{base}/api/jobs/{job_id}", headers={"X-API-Key": api_key})
            if response.status_code == 200:
                found[job_id] = response.json()["timings"]

    await asyncio.gather(*(loop() for _ in range(8)))
    return found


def stages(samples: list[Sample], timings: dict[str, dict[str, Any]]) -> dict[str, dict]:
    """Where a gateway request's time to first token goes, stage by stage (ms)."""
    rows: dict[str, list[float]] = {
        "post_round_trip": [],
        "post_start_to_job_row": [],
        "queue_wait": [],
        "worker_start_to_first_token": [],
        "first_token_to_xadd": [],
        "xadd_to_client_read": [],
        "events_response_open": [],
    }
    for sample in samples:
        timing = timings.get(sample.job_id or "")
        rows["post_round_trip"].append(sample.post_ms)
        rows["events_response_open"].append(sample.sse_open_ms)
        rows["xadd_to_client_read"].append(sample.first_read_wall * 1000 - sample.first_entry_ms)
        if timing is None:
            continue
        created = parse_time(timing["created_at"])
        first_token = parse_time(timing["first_token_at"])
        rows["post_start_to_job_row"].append((created - sample.t0_wall) * 1000)
        rows["queue_wait"].append(timing["queue_wait_ms"])
        rows["worker_start_to_first_token"].append(timing["ttft_ms"])
        rows["first_token_to_xadd"].append(sample.first_entry_ms - first_token * 1000)
    return {
        name: summary([v for v in values if not math.isnan(v)]) for name, values in rows.items()
    }


# --- one repetition ------------------------------------------------------------------------


async def measure(
    stack: Stack, fake_url: str, base: str, api_key: str, args: argparse.Namespace
) -> dict[str, Any]:
    limits = httpx.Limits(
        max_connections=args.concurrency * 2 + 8, max_keepalive_connections=args.concurrency * 2
    )
    result: dict[str, Any] = {}
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT, limits=limits) as client:
        for path, one in (
            ("direct", lambda: direct_request(client, fake_url)),
            ("gateway", lambda: gateway_request(client, base, api_key)),
        ):
            cpu_before, (busy_before, total_before) = stack.cpu_seconds(), machine_cpu()
            started = time.perf_counter()
            samples, errors = await run_load(one, args.requests, args.concurrency)
            wall = time.perf_counter() - started
            cpu_after, (busy_after, total_after) = stack.cpu_seconds(), machine_cpu()
            stack.check_alive()
            ours = {name: cpu_after[name] - cpu_before.get(name, 0.0) for name in cpu_after}
            machine_busy = busy_after - busy_before
            entry: dict[str, Any] = {
                "ttft_ms": summary([s.ttft_ms for s in samples]),
                "errors": len(errors),
                "error_examples": errors[:5],
                "tokens_per_request": summary([float(s.tokens) for s in samples]),
                "inter_token_ms": summary([gap for s in samples for gap in s.gaps_ms]),
                "wall_s": wall,
                "cpu": cpu_report(ours, machine_busy, total_after - total_before, wall),
            }
            entry["cpu"]["loadavg_1m"] = os.getloadavg()[0]
            if path == "gateway":
                relay = [ms for s in samples for ms in s.relay_ms]
                live = [ms for s in samples for ms in s.relay_ms[s.backlog_tokens :]]
                entry["relay_ms"] = summary(relay)
                entry["relay_ms_live_only"] = summary(live)
                entry["backlog_tokens"] = sum(s.backlog_tokens for s in samples)
                ids = [s.job_id for s in samples if s.job_id]
                entry["stages_ms"] = stages(samples, await job_timings(client, base, api_key, ids))
            result[path] = entry
            log(
                f"{path}: {len(samples)} ok, {len(errors)} failed in {wall:.1f} s; TTFT p50 "
                f"{entry['ttft_ms']['p50']:.1f} ms, p99 {entry['ttft_ms']['p99']:.1f} ms"
            )
    for q in ("p50", "p99"):
        result[f"added_{q}_ms"] = result["gateway"]["ttft_ms"][q] - result["direct"]["ttft_ms"][q]
        result[f"added_inter_token_{q}_ms"] = (
            result["gateway"]["inter_token_ms"][q] - result["direct"]["inter_token_ms"][q]
        )
    return result


async def warm_up(fake_url: str, base: str, api_key: str, args: argparse.Namespace) -> None:
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as client:
        # The first job also proves that the worker consumes the queue.
        deadline = time.monotonic() + 90
        while True:
            try:
                await asyncio.wait_for(gateway_request(client, base, api_key), 30)
                break
            except (RequestFailed, httpx.HTTPError, TimeoutError, KeyError, ValueError) as exc:
                if time.monotonic() > deadline:
                    raise StackError(f"no job completed within 90 s: {exc}") from exc
                await asyncio.sleep(0.5)
        for one in (
            lambda: direct_request(client, fake_url),
            lambda: gateway_request(client, base, api_key),
        ):
            _, errors = await run_load(one, args.warmup, args.concurrency)
            if errors:
                raise StackError(f"warm-up failed: {errors[:3]}")


# --- report --------------------------------------------------------------------------------


def print_table(final: dict[str, Any], config: dict[str, Any]) -> None:
    direct, gateway = final["direct"], final["gateway"]
    print(
        f"\nTTFT benchmark: {config['requests']} requests x {config['repeat']} repetitions at "
        f"{config['concurrency']} concurrent; fake model {config['reply_tokens']} tokens, "
        f"{config['token_delay'] * 1000:g} ms/token (median over repetitions)\n"
    )
    print(f"{'ms':<30}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}")
    for label, stats in (
        ("direct TTFT (a)", direct["ttft_ms"]),
        ("gateway TTFT (b)", gateway["ttft_ms"]),
        ("direct inter-token (a)", direct["inter_token_ms"]),
        ("gateway inter-token (b)", gateway["inter_token_ms"]),
        ("relay delay, all tokens of (b)", gateway["relay_ms"]),
        ("  tokens XADDed after connect", gateway["relay_ms_live_only"]),
    ):
        print(
            f"{label:<30}{stats['p50']:>9.1f}{stats['p90']:>9.1f}"
            f"{stats['p99']:>9.1f}{stats['max']:>9.1f}"
        )
    print()
    checks = (
        ("added TTFT p50", final["added_p50_ms"], TARGETS["added_p50"]),
        ("added TTFT p99", final["added_p99_ms"], TARGETS["added_p99"]),
        ("relay delay p99", gateway["relay_ms"]["p99"], TARGETS["relay_p99"]),
    )
    for label, value, target in checks:
        print(f"{label:<30}{value:>9.1f}  target <= {target:g} ms: {verdict(value, target)}")
    for q in ("p50", "p99"):
        print(f"{'added inter-token ' + q:<30}{final[f'added_inter_token_{q}_ms']:>9.1f}")
    print("\ngateway stages (ms)            p50      p99")
    for name, stats in gateway["stages_ms"].items():
        print(f"  {name:<28}{stats['p50']:>7.1f}{stats['p99']:>9.1f}")
    print("\nCPU, % of one core (machine: % of all cores)")
    for label, cpu in (("during (a)", direct["cpu"]), ("during (b)", gateway["cpu"])):
        groups = ", ".join(f"{k} {v:.0f}" for k, v in cpu["pct_of_one_core"].items())
        print(
            f"  {label}: machine {cpu['machine_busy_pct_of_all_cores']:.0f}% busy; {groups}; "
            f"other processes {cpu['others_pct_of_one_core']:.0f}; "
            f"load average {cpu['loadavg_1m']:.2f}"
        )
    print(
        f"errors: direct {direct['errors']}, gateway {gateway['errors']} (summed over runs: "
        f"{config['errors_total']})"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="measured requests per path")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--token-delay", type=float, default=0.02, help="fake model s/token")
    parser.add_argument("--reply-tokens", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=20, help="uncounted requests per path")
    parser.add_argument("--gunicorn-threads", type=int, default=32)
    parser.add_argument("--worker-threads", type=int, default=24)
    add_run_arguments(
        parser, set_help="extra environment for the API and the worker (to try a setting)"
    )
    args = parser.parse_args(argv)
    for name in ("requests", "concurrency", "repeat", "reply_tokens"):
        if not 1 <= getattr(args, name) <= 100_000:
            parser.error(f"--{name.replace('_', '-')} must be between 1 and 100000")
    if not 0 <= args.token_delay <= 10:
        parser.error("--token-delay must be between 0 and 10 seconds")
    check_overrides(parser, args)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stack = Stack.create(STORAGE, log, "ttft-bench-")

    def set_up() -> tuple[str, str, str]:
        fake_url, base = start_stack(stack, args)
        api_key = create_api_key(base, "ttft bench")
        log(f"warming up ({args.warmup} requests per path, not counted)")
        asyncio.run(warm_up(fake_url, base, api_key, args))
        return fake_url, base, api_key

    outcome = run_repetitions(
        stack, args, set_up, lambda urls: asyncio.run(measure(stack, *urls, args))
    )
    if isinstance(outcome, int):
        return outcome
    runs, _ = outcome
    final = median_of(runs)
    errors_total = sum(run[path]["errors"] for run in runs for path in ("direct", "gateway"))
    config = {
        "requests": args.requests,
        "concurrency": args.concurrency,
        "repeat": args.repeat,
        "token_delay": args.token_delay,
        "reply_tokens": args.reply_tokens,
        "warmup": args.warmup,
        "gunicorn": {"workers": 2, "threads": args.gunicorn_threads},
        "worker_threads": args.worker_threads,
        "env_overrides": args.set,
        "errors_total": errors_total,
    }
    met = {
        "added_p50": final["added_p50_ms"] <= TARGETS["added_p50"],
        "added_p99": final["added_p99_ms"] <= TARGETS["added_p99"],
        "relay_p99": final["gateway"]["relay_ms"]["p99"] <= TARGETS["relay_p99"],
    }
    if args.json:
        print(
            json.dumps(
                {
                    "config": config,
                    "targets_ms": TARGETS,
                    "met": met,
                    "median": final,
                    "runs": runs,
                },
                indent=2,
            )
        )
    else:
        print_table(final, config)
    return 1 if errors_total else 0


if __name__ == "__main__":
    sys.exit(main())
