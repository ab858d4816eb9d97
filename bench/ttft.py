"""Time to first token added by the gateway, and the delay of its token relay.

Starts its own stack on 127.0.0.1 (a fresh PostgreSQL database, Redis db 13 under the
`gwbench:` prefix, the fake Ollama server, gunicorn and one Celery worker on the light
queue), then measures, at the same concurrency and with the same fake model:

(a) direct: streaming POST /api/chat to the fake; TTFT = request start -> first token line;
(b) gateway: POST /api/jobs then GET /api/jobs/<id>/events; TTFT = POST start -> first
    `token` event read; relay delay of every token = client read time - the ms part of its
    Redis stream entry id (when the worker's XADD landed; same machine clock).

Each repetition runs (a) then (b); the summary is the median of each statistic over the
repetitions. Everything it started is stopped, and the database and keys removed, at the end.

Run: .venv/bin/python bench/ttft.py [--requests 200] [--concurrency 20] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg2
import redis

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
DB_NAME = "llm_gateway_bench"
DATABASE_URL = f"postgresql://postgres@{HOST}:5432/{DB_NAME}"
REDIS_URL = f"redis://{HOST}:6379/13"
PREFIX = "gwbench:"
MODEL = "llama3.2:3b"  # what the gateway's "light" tier is pinned to, and the fake serves
PROMPT = "Say hello."
SERVICES = {"postgres", "redis-server"}
TARGETS = {"added_p50": 10.0, "added_p99": 50.0, "relay_p99": 5.0}
REQUEST_TIMEOUT = 60.0  # seconds for one whole request, stream included
HTTP_TIMEOUT = httpx.Timeout(30.0, connect=5.0)


class StackError(RuntimeError):
    """The stack did not come up (or went down)."""


class RequestFailed(RuntimeError):
    pass


def log(message: str) -> None:
    print(f"[ttft {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- statistics ----------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values) if values else math.nan,
        "n": len(values),
    }


# --- processes -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass
class Stack:
    log_dir: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        with (self.log_dir / f"{name}.log").open("wb") as out:
            # Own session = own process group, so stop() reaches gunicorn's and celery's
            # children too.
            process = subprocess.Popen(  # noqa: S603
                args,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[name] = process
        return process

    def log_text(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise StackError(f"{name} exited with {process.returncode}:\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 30) -> str:
        return "\n".join(self.log_text(name).splitlines()[-lines:])

    def stop(self) -> None:
        for process in reversed(self.processes.values()):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in reversed(self.processes.values()):
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        for process in self.processes.values():
            # Whatever is left of each group (a leader that ignored SIGTERM, orphans).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        self.processes.clear()

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds (user + system) used so far by each group's live processes, by this
        client, and by the shared PostgreSQL and Redis servers (which serve other users too)."""
        groups = {process.pid: name for name, process in self.processes.items()}
        totals = dict.fromkeys([*self.processes, "postgres+redis"], 0.0)
        ticks = os.sysconf("SC_CLK_TCK")
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                raw = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            comm, fields = raw.split("(", 1)[1].rsplit(")", 1)[0], raw.rsplit(")", 1)[1].split()
            name = groups.get(int(fields[2]))  # pgrp
            if name is None and comm in SERVICES:
                name = "postgres+redis"
            if name is not None:
                totals[name] += (int(fields[11]) + int(fields[12])) / ticks
        totals["client"] = time.process_time()
        return totals


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, all cores, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    total = sum(values[:8])
    idle = values[3] + values[4]
    return (total - idle) / ticks, total / ticks


def reset_database() -> None:
    conn = psycopg2.connect(host=HOST, port=5432, user="postgres", dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{DB_NAME}"')
    conn.close()


def drop_database() -> None:
    conn = psycopg2.connect(host=HOST, port=5432, user="postgres", dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    conn.close()


def clean_redis() -> int:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
    keys = list(client.scan_iter(match=PREFIX + "*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])
    client.close()
    return len(keys)


def app_env(overrides: dict[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        "APP_ENV": "development",
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": REDIS_URL,
        "REDIS_KEY_PREFIX": PREFIX,
        # Pinned so that a caller's environment cannot point the stack elsewhere.
        "CELERY_BROKER_URL": REDIS_URL,
        "CELERY_RESULT_BACKEND": REDIS_URL,
        "LLM_PROVIDER": "ollama",
        "MODEL_LIGHT": MODEL,
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        **overrides,
    }


def wait_for_log(stack: Stack, name: str, pattern: str, timeout: float) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(pattern, stack.log_text(name))
        if match:
            return match
        stack.check_alive()
        time.sleep(0.1)
    raise StackError(f"{name} did not start within {timeout:.0f} s:\n{stack.tail(name)}")


def wait_for_health(stack: Stack, base: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.check_alive()
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise StackError(f"gunicorn was not healthy within {timeout:.0f} s:\n{stack.tail('gunicorn')}")


def start_stack(stack: Stack, args: argparse.Namespace) -> tuple[str, str]:
    """Database, fake model server, API and worker; returns (fake url, api url)."""
    python = sys.executable
    overrides = dict(item.split("=", 1) for item in args.set)
    log(f"database {DB_NAME}: drop, create, migrate")
    reset_database()
    migrate = subprocess.run(  # noqa: S603
        [str(BIN / "flask"), "--app", "api", "db", "upgrade"],
        cwd=ROOT,
        env=app_env(overrides),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if migrate.returncode != 0:
        raise StackError(f"migration failed:\n{migrate.stdout}\n{migrate.stderr}")
    log(f"redis db 13: removed {clean_redis()} {PREFIX}* keys")

    stack.spawn(
        "fake-ollama",
        [
            python,
            "-m",
            "tests.fakes.ollama",
            "--host",
            HOST,
            "--port",
            "0",
            "--token-delay",
            str(args.token_delay),
            "--reply-tokens",
            str(args.reply_tokens),
        ],
        {**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    fake_url = wait_for_log(stack, "fake-ollama", r"FakeOllama listening on (\S+)", 20).group(1)
    log(f"fake Ollama at {fake_url}")

    port = free_port()
    base = f"http://{HOST}:{port}"
    stack.spawn(
        "gunicorn",
        [python, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "api:create_app()"],
        app_env(
            {
                "GUNICORN_BIND": f"{HOST}:{port}",
                "WEB_CONCURRENCY": "2",
                "GUNICORN_THREADS": str(args.gunicorn_threads),
                **overrides,
            }
        ),
    )
    stack.spawn(
        "worker",
        [
            python,
            "-m",
            "celery",
            "-A",
            "worker.celery_app",
            "worker",
            "-Q",
            "light",
            "-P",
            "threads",
            "-c",
            str(args.worker_threads),
            "-n",
            "bench-light@%h",
            "--without-gossip",
            "--without-mingle",
            "-l",
            "WARNING",
        ],
        app_env({"OLLAMA_URL": fake_url, **overrides}),
    )
    wait_for_health(stack, base, 60)
    log(f"gunicorn healthy at {base}")
    return fake_url, base


def create_api_key(base: str) -> str:
    email, password = f"bench-{os.getpid()}@example.com", "bench passphrase 1234"
    with httpx.Client(base_url=base, timeout=HTTP_TIMEOUT) as client:
        created = client.post("/api/auth/register", json={"email": email, "password": password})
        if created.status_code != 201:
            raise StackError(f"register: {created.status_code} {created.text}")
        login = client.post("/api/auth/login", json={"email": email, "password": password})
        if login.status_code != 200:
            raise StackError(f"login: {login.status_code} {login.text}")
        access = login.json()["access_token"]
        key = client.post(
            "/api/user/api-keys",
            json={"name": "ttft bench"},
            headers={"Authorization": f"Bearer {access}"},
        )
        if key.status_code != 201:
            raise StackError(f"api key: {key.status_code} {key.text}")
        return key.json()["key"]


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


async def direct_request(client: httpx.AsyncClient, fake_url: str) -> Sample:
    body = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "stream": True}
    started = time.perf_counter()
    first: float | None = None
    tokens = 0
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
                if first is None:
                    first = time.perf_counter()
                tokens += 1
    if first is None:
        raise RequestFailed("direct: no token")
    return Sample(ttft_ms=(first - started) * 1000, tokens=tokens)


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
    event: dict[str, str] = {}
    url = f"{base}/api/jobs/{sample.job_id}/events"
    async with client.stream("GET", url, headers=headers) as response:
        sample.sse_open_wall = time.time()
        sample.sse_open_ms = (time.perf_counter() - posted) * 1000
        if response.status_code != 200:
            raise RequestFailed(f"events: HTTP {response.status_code}")
        async for line in response.aiter_lines():
            if line.startswith(":"):
                continue
            if line:
                name, _, value = line.partition(":")
                event[name] = value.removeprefix(" ")
                continue
            name, entry_id = event.get("event"), event.get("id", "")
            event = {}
            if name == "token":
                read_wall, read = time.time(), time.perf_counter()
                entry_ms = int(entry_id.split("-", 1)[0])
                sample.relay_ms.append(read_wall * 1000 - entry_ms)
                sample.tokens += 1
                if entry_ms < sample.sse_open_wall * 1000:
                    sample.backlog_tokens += 1
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


def cpu_report(ours: dict[str, float], busy: float, total: float, wall: float) -> dict:
    """CPU over one run: the machine's, and % of one core per process group; "others" is
    what ran on the machine besides this stack and the shared PostgreSQL and Redis."""
    return {
        "machine_busy_pct_of_all_cores": 100 * busy / total,
        "pct_of_one_core": {name: 100 * seconds / wall for name, seconds in ours.items()},
        "others_pct_of_one_core": 100 * (busy - sum(ours.values())) / wall,
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


def median_of(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The median over repetitions of every numeric leaf (lists of examples are dropped)."""
    first = results[0]
    if isinstance(first, dict):
        return {key: median_of([r[key] for r in results]) for key in first}
    if isinstance(first, int | float):
        return statistics.median(results)
    return None


def verdict(value: float, target: float) -> str:
    return "met" if value <= target else "NOT MET"


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
    parser.add_argument("--repeat", type=int, default=3, help="repetitions; medians reported")
    parser.add_argument("--warmup", type=int, default=20, help="uncounted requests per path")
    parser.add_argument("--gunicorn-threads", type=int, default=32)
    parser.add_argument("--worker-threads", type=int, default=24)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the API and the worker (to try a setting)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--keep-logs", action="store_true", help="keep the process logs")
    args = parser.parse_args(argv)
    for name in ("requests", "concurrency", "repeat", "reply_tokens"):
        if not 1 <= getattr(args, name) <= 100_000:
            parser.error(f"--{name.replace('_', '-')} must be between 1 and 100000")
    if not 0 <= args.token_delay <= 10:
        parser.error("--token-delay must be between 0 and 10 seconds")
    if any("=" not in item for item in args.set):
        parser.error("--set takes NAME=VALUE")
    return args


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # runs the finally blocks: the stack is stopped


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    log_dir = Path(tempfile.mkdtemp(prefix="ttft-bench-"))
    stack = Stack(log_dir)
    failed = False
    try:
        try:
            fake_url, base = start_stack(stack, args)
            api_key = create_api_key(base)
            log(f"warming up ({args.warmup} requests per path, not counted)")
            asyncio.run(warm_up(fake_url, base, api_key, args))
        except (StackError, httpx.HTTPError, psycopg2.Error, redis.RedisError, OSError) as exc:
            failed = True
            log(f"the stack did not come up: {exc}")
            return 2
        runs = []
        for number in range(1, args.repeat + 1):
            log(f"repetition {number}/{args.repeat}")
            runs.append(asyncio.run(measure(stack, fake_url, base, api_key, args)))
    except StackError as exc:
        failed = True
        log(f"the stack went down: {exc}")
        return 2
    finally:
        stack.stop()
        with contextlib.suppress(psycopg2.Error, redis.RedisError):
            clean_redis()
            drop_database()
        if failed or args.keep_logs:
            log(f"process logs kept in {log_dir}")
        else:
            for path in log_dir.iterdir():
                path.unlink()
            log_dir.rmdir()

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
