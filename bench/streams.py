"""Open SSE streams held by one API instance, and the token rate it relays.

Starts its own stack on 127.0.0.1 (a fresh PostgreSQL database `llm_gateway_bench_streams`,
Redis db 13 under the `gwbench-streams:` prefix, gunicorn with config/gunicorn.conf.py),
with no Celery worker and no model: the benchmark is about the relay. It creates jobs
(status running, one user) in the database, opens one `GET /api/jobs/<id>/events` per job
from ONE asyncio process (raw sockets, its own HTTP/SSE parsing), and a writer process
XADDs `token` events to every stream at the given rate, pipelined per 10 ms tick, the
streams spread evenly over the ticks. Each token carries its write time (time.time()) and
a sequence number; relay delay = client read time - write time (same machine clock). At
the end every stream gets a `done` event; each client must have seen every token once, in
order.

Each step (a pair of --streams and --rate) reports the relay delay, tokens written and
delivered, errors, gunicorn's RSS before/after opening the streams (memory per stream) and
the CPU of each process group. Lists (--rate 10,20,40) make a sweep that stops at the
first step that does not keep up: with --workers 1, the relay throughput of one process.

Run: .venv/bin/python bench/streams.py [--streams 2000] [--rate 10] [--duration 30] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from stack import (
    REDIS_PORT,
    STARTUP_ERRORS,
    Stack,
    StackError,
    Storage,
    logger,
    machine_cpu,
    median_of,
    summary,
)
from stream_client import Run, loop_lag, open_streams
from stream_report import TARGET_P99_MS, best_steps, print_report

# The stack (processes, storage, environment) and the statistics and CPU helpers come from
# bench/stack.py, the SSE client from bench/stream_client.py and the text report from
# bench/stream_report.py; this script seeds its database with running jobs and starts no
# worker and no model.

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
# Its own database and key prefix, so it can run while bench/ttft.py runs.
STORAGE = Storage(db_name="llm_gateway_bench_streams", redis_db=13, prefix="gwbench-streams:")
MODEL = "llama3.2:3b"
SERVICES = {"redis-server": "redis", "postgres": "postgres"}
# A step keeps up when, in its steady state, the clients receive this share of the
# offered tokens per second, with no error and a p99 delay below EXPLODED_P99_MS.
KEEP_UP_RATIO = 0.95
EXPLODED_P99_MS = 1000.0
TICK_SECONDS = 0.01  # the writer's pipelining period (about)
STREAM_MAXLEN = 20000  # as the worker's EventWriter (STREAM_MAXLEN's default)
STREAM_TTL = 3600
DEFAULT_WORKER_CONNECTIONS = 2000  # config/gunicorn.conf.py's default
SETTLE_SECONDS = 2.0  # after the last stream opened, before measuring memory
WARMUP_STREAMS_PER_WORKER = 8
TOKEN_TEXT = " tok"  # noqa: S105 (not a password: the text of every token)


log = logger("streams")


# --- processes -----------------------------------------------------------------------------


def proc_stat(pid: int) -> tuple[str, int, int, float] | None:
    """(comm, ppid, pgrp, CPU seconds) of a process, None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw.split("(", 1)[1].rsplit(")", 1)[0]
    fields = raw.rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return comm, int(fields[1]), int(fields[2]), (int(fields[11]) + int(fields[12])) / ticks


def process_groups(stack: Stack) -> dict[str, list[int]]:
    """The pids of each group: our process groups by name (writers summed as `writer`),
    and the shared Redis and PostgreSQL servers by process name."""
    leaders = {p.pid: re.sub(r"-\d+$", "", name) for name, p in stack.processes.items()}
    groups: dict[str, list[int]] = {name: [] for name in {*leaders.values(), *SERVICES.values()}}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        stat = proc_stat(int(entry.name))
        if stat is None:
            continue
        comm, _, pgrp, _ = stat
        name = leaders.get(pgrp) or SERVICES.get(comm)
        if name:
            groups[name].append(int(entry.name))
    return groups


def cpu_seconds(groups: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds so far of each pid of `groups` (keys "group/pid"), and of this client."""
    totals: dict[str, float] = {}
    for name, pids in groups.items():
        for pid in pids:
            stat = proc_stat(pid)
            if stat is not None:
                totals[f"{name}/{pid}"] = stat[3]
    totals["client/0"] = time.process_time()
    return totals


def cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds per group between two snapshots, over the processes alive at both."""
    used: dict[str, float] = {}
    for key, seconds in after.items():
        name = key.split("/", 1)[0]
        used[name] = used.get(name, 0.0) + (seconds - before[key] if key in before else 0.0)
    return used


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def socket_count(pid: int) -> int:
    count = 0
    with contextlib.suppress(OSError):
        for fd in os.scandir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                count += os.readlink(fd.path).startswith("socket:")
    return count


def gunicorn_workers(stack: Stack) -> list[int]:
    arbiter = stack.processes["gunicorn"].pid
    workers = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = proc_stat(int(entry.name))
            if stat is not None and stat[1] == arbiter:
                workers.append(int(entry.name))
    return sorted(workers)


def gunicorn_memory(workers: list[int]) -> dict[str, Any]:
    per_worker = [rss_kb(pid) for pid in workers]
    return {
        "rss_mb_total": sum(per_worker) / 1024,
        "rss_mb_per_worker": [v / 1024 for v in per_worker],
    }


def raise_open_files(streams: int) -> dict[str, int]:
    """The client holds a socket per stream and gunicorn (which inherits the limit) up to
    two per stream (client + Redis, with one XREAD per connection)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * streams + 1024
    if soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if hard != resource.RLIM_INFINITY and hard < wanted:
            with contextlib.suppress(ValueError, OSError):  # only root may raise it
                resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
                target = wanted
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, max(target, hard)))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        log(f"open-files limit {soft} < {wanted} wanted: streams may fail (raise ulimit -n)")
    return {"soft": soft, "hard": hard, "wanted": wanted}


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            done = subprocess.run(  # noqa: S603
                ["git", *args],  # noqa: S607
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    changed = [
        line[3:]
        for line in git("status", "--porcelain").splitlines()
        if line[3:].startswith("api/")
    ]
    return {"describe": git("describe", "--always", "--dirty") or "unknown", "api_changed": changed}


# --- database, Redis, gunicorn -------------------------------------------------------------


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(
        STORAGE.redis_url, socket_timeout=10, socket_connect_timeout=5, decode_responses=True
    )


def migrate_and_seed(stack: Stack, jobs: int) -> dict[str, Any]:
    """Fresh database, migrated, no keys; a user (no rate limit to speak of), an API key
    and `jobs` running jobs, created with the project's models (bench/streams.py _seed)."""
    stack.prepare_storage({})
    log(f"seeding {jobs} jobs")
    out = stack.log_dir / "seed.json"
    seed = [sys.executable, str(Path(__file__).resolve()), "_seed", str(out), str(jobs)]
    stack.run_step("seeding", seed, {"BCRYPT_ROUNDS": "4"}, 300)
    return json.loads(out.read_text())


def start_gunicorn(stack: Stack, args: argparse.Namespace, max_streams: int) -> int:
    overrides = dict(item.split("=", 1) for item in args.set)
    env = {"WEB_CONCURRENCY": str(args.workers)}
    # Each gevent worker holds at most worker_connections; the default (2000) is raised
    # only when the streams could not fit otherwise (--set takes precedence).
    per_worker = math.ceil(max_streams / args.workers)
    if per_worker > DEFAULT_WORKER_CONNECTIONS:
        env["GUNICORN_WORKER_CONNECTIONS"] = str(per_worker + 16)
        log(f"GUNICORN_WORKER_CONNECTIONS={per_worker + 16} so that {max_streams} streams fit")
    base = stack.start_gunicorn({**env, **overrides})
    stack.wait_for_health(base, 60)
    log(f"gunicorn healthy at {base}")
    return int(base.rsplit(":", 1)[1])


def prime_streams(client: redis.Redis, job_ids: list[str], keys: list[str]) -> None:
    """The `start` event a worker writes first, so each stream exists when it is opened."""
    for begin in range(0, len(keys), 500):
        pipe = client.pipeline(transaction=False)
        for job_id, key in zip(
            job_ids[begin : begin + 500], keys[begin : begin + 500], strict=True
        ):
            data = {"job_id": job_id, "model": MODEL, "tier": "light", "attempt": 1}
            pipe.xadd(key, {"event": "start", "data": json.dumps(data)}, maxlen=STREAM_MAXLEN)
        pipe.execute()


def delete_streams(client: redis.Redis, keys: list[str]) -> None:
    for begin in range(0, len(keys), 500):
        client.delete(*keys[begin : begin + 500])


# --- the token writer (a process of its own: bench/streams.py _writer CONFIG) --------------


class Resp:
    """Just enough of the Redis protocol to pipeline XADDs and count their replies."""

    def __init__(self, host: str, port: int, db: int):
        self.sock = socket.create_connection((host, port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.errors: list[str] = []
        self.send([command(b"SELECT", str(db).encode())])
        self.replies(1)

    def send(self, commands: list[bytes]) -> None:
        self.sock.sendall(b"".join(commands))

    def _more(self, buf: bytes, pos: int) -> bytes:
        data = self.sock.recv(1 << 16)
        if not data:
            raise ConnectionError("Redis closed the connection")
        return buf[pos:] + data

    def replies(self, count: int) -> None:
        buf, pos = self.buf, 0
        while count:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                buf, pos = self._more(buf, pos), 0
                continue
            kind = buf[pos : pos + 1]
            if kind == b"$" and int(buf[pos + 1 : eol]) >= 0:
                end = eol + 2 + int(buf[pos + 1 : eol]) + 2
                if len(buf) < end:
                    buf, pos = self._more(buf, pos), 0
                    continue
                pos = end
            elif kind in (b"$", b"+", b":", b"-"):
                if kind == b"-" and len(self.errors) < 10:
                    self.errors.append(buf[pos + 1 : eol].decode(errors="replace"))
                pos = eol + 2
            else:
                raise ConnectionError(f"unexpected Redis reply {buf[pos : pos + 40]!r}")
            count -= 1
        self.buf = buf[pos:]


def command(*parts: bytes) -> bytes:
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


def xadd_head(key: str, event: str) -> bytes:
    """XADD key MAXLEN ~ n * event <event> data ... up to the data's bulk string."""
    parts = [b"XADD", key.encode(), b"MAXLEN", b"~", str(STREAM_MAXLEN).encode(), b"*"]
    parts += [b"event", event.encode(), b"data"]
    return b"*10\r\n" + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


def bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def writer_main(config_path: str) -> int:
    """Write `tokens` token events to each stream on schedule, then `done` to each.

    Stream i is written at ticks k = i mod slots (mod slots): `slots` groups, one per tick,
    so the load is even over time instead of one burst per token period. A late writer
    catches up (no tick is skipped), so every stream gets exactly `tokens` tokens.
    """
    config = json.loads(Path(config_path).read_text())
    keys, groups_of = config["keys"], config["groups"]
    slots, tick, tokens = config["slots"], config["tick"], config["tokens"]
    conn = Resp(HOST, REDIS_PORT, STORAGE.redis_db)
    heads = [xadd_head(key, "token") for key in keys]
    groups: list[list[bytes]] = [[] for _ in range(slots)]
    for head, group in zip(heads, groups_of, strict=True):
        groups[group].append(head)
    print("ready", flush=True)
    line = sys.stdin.readline()
    if not line.strip():
        return 1  # the benchmark went away
    t0 = float(line)
    late_ms: list[float] = []
    written = 0
    for k in range(slots * tokens):
        target = t0 + k * tick
        pause = target - time.time()
        if pause > 0:
            time.sleep(pause)
        group = groups[k % slots]
        if not group:
            continue
        now = time.time()
        late_ms.append((now - target) * 1000)
        payload = b'{"text":"%s","seq":%d,"t":%.6f}' % (TOKEN_TEXT.encode(), k // slots, now)
        tail = bulk(payload)
        conn.send([head + tail for head in group])
        conn.replies(len(group))
        written += len(group)
    ended = time.time()
    done = bulk(json.dumps({"message_id": None, "usage": {}, "finish_reason": "stop"}).encode())
    for begin in range(0, len(keys), 500):
        batch = keys[begin : begin + 500]
        commands = []
        for key in batch:
            commands.append(xadd_head(key, "done") + done)
            commands.append(command(b"EXPIRE", key.encode(), str(STREAM_TTL).encode()))
        conn.send(commands)
        conn.replies(len(commands))
    result = {
        "written": written,
        "streams": len(keys),
        "first_write": t0,
        "last_write_end": ended,
        "late_ms": summary(late_ms),
        "redis_errors": conn.errors,
    }
    Path(config["result"]).write_text(json.dumps(result))
    return 0


def seed_main(out: str, count: int) -> int:
    """Create the benchmark's user, API key and `count` running jobs (run in the app's env)."""
    import uuid

    from api import create_app
    from api.services.api_keys import DISPLAY_PREFIX_LENGTH, KEY_PREFIX, hash_secret
    from api.services.passwords import hash_password
    from core.db import db
    from core.models import ApiKey, Job, User
    from core.models.base import utcnow
    from pipeline.streams import stream_key  # the project's key layout, for the writers

    app = create_app()
    with app.app_context():
        user = User(
            email=f"streams-bench-{os.getpid()}@example.com",
            password_hash=hash_password(secrets.token_urlsafe(24)),
            name="streams benchmark",
            rate_limit_per_minute=10_000_000,  # the benchmark opens thousands of streams
        )
        db.session.add(user)
        db.session.flush()
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(
            user_id=user.id,
            name="streams benchmark",
            prefix=secret[:DISPLAY_PREFIX_LENGTH],
            key_hash=hash_secret(secret),
        )
        db.session.add(key)
        db.session.flush()
        ids = [uuid.uuid4() for _ in range(count)]
        now = utcnow()
        db.session.add_all(
            Job(
                id=job_id,
                user_id=user.id,
                api_key_id=key.id,
                status="running",
                tier="light",
                model=MODEL,
                route_score=0.0,
                route_reason="streams benchmark",
                input={"messages": [{"role": "user", "content": "bench"}], "params": {}},
                attempts=1,
                started_at=now,
            )
            for job_id in ids
        )
        db.session.commit()
    jobs = {str(i): stream_key(STORAGE.prefix, str(i)) for i in ids}
    Path(out).write_text(json.dumps({"api_key": secret, "jobs": jobs}))
    return 0


# --- one step ------------------------------------------------------------------------------


@dataclass
class Context:
    stack: Stack
    port: int
    api_key: str
    jobs: dict[str, str]  # job id -> its stream's key, for the jobs not used yet
    redis: redis.Redis
    args: argparse.Namespace

    def take(self, count: int) -> tuple[list[str], list[str]]:
        """(job ids, stream keys) of `count` fresh jobs."""
        if count > len(self.jobs):
            raise StackError("not enough seeded jobs")
        ids = list(self.jobs)[:count]
        keys = [self.jobs.pop(job_id) for job_id in ids]
        return ids, keys


def schedule(rate: float, duration: float) -> tuple[int, float, int]:
    """(slots, tick seconds, tokens per stream) for `rate` tokens/s per stream."""
    period = 1 / rate
    slots = max(1, round(period / TICK_SECONDS))
    return slots, period / slots, max(1, round(duration * rate))


def spawn_writers(ctx: Context, keys: list[str], slots: int, tick: float, tokens: int):
    count = max(1, min(ctx.args.writers, len(keys)))
    writers = []
    for number in range(count):
        indices = range(number, len(keys), count)
        config_path = ctx.stack.log_dir / f"writer-{number}.json"
        result_path = ctx.stack.log_dir / f"writer-{number}.result.json"
        result_path.unlink(missing_ok=True)
        config = {
            "keys": [keys[i] for i in indices],
            "groups": [i % slots for i in indices],
            "slots": slots,
            "tick": tick,
            "tokens": tokens,
            "result": str(result_path),
        }
        config_path.write_text(json.dumps(config))
        name = f"writer-{number}"
        ctx.stack.spawn(
            name,
            [sys.executable, str(Path(__file__).resolve()), "_writer", str(config_path)],
            ctx.stack.app_env(),
            stdin_pipe=True,
        )
        writers.append((name, result_path))
    return writers


async def wait_for_ready(ctx: Context, names: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    for name in names:
        while "ready" not in ctx.stack.log_text(name):
            ctx.stack.check_alive(name)
            if time.monotonic() > deadline:
                raise StackError(f"{name} did not start:\n{ctx.stack.tail(name)}")
            await asyncio.sleep(0.05)


def start_profiles(ctx: Context, workers: list[int], seconds: float) -> list[Path]:
    """py-spy on each gunicorn worker for the flow window (--profile)."""
    tool = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if tool is None:
        log("--profile: py-spy not found (make install puts it in .venv); not profiling")
        return []
    paths = []
    for pid in workers:
        path = ctx.stack.log_dir / f"profile-{pid}.txt"
        ctx.stack.spawn(
            f"py-spy-{pid}",
            [
                *(tool, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds)))),
                *("--rate", "200", "--nonblocking", "--format", "raw", "--output", str(path)),
            ],
            dict(os.environ),
        )
        paths.append(path)
    return paths


def summarize_profile(path: Path, top: int = 15) -> dict[str, Any]:
    """Functions by share of samples: inclusive (anywhere on the stack) and self (leaf)."""
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    if not path.exists():
        return {"samples": 0}
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        frames = [re.sub(r"^(.*?) \((.*?)(?::\d+)?\)$", r"\1 (\2)", f) for f in stack.split(";")]
        total += samples
        leaf[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    if not total:
        return {"samples": 0}

    def shares(counter: Counter[str]) -> list[list[Any]]:
        return [[name, round(100 * n / total, 1)] for name, n in counter.most_common(top)]

    return {"samples": total, "self_pct": shares(leaf), "inclusive_pct": shares(inclusive)}


async def warm_up(ctx: Context, workers: int) -> None:
    """A few streams end to end, so each worker has loaded the app and its connections
    before the memory baseline is taken."""
    job_ids, keys = ctx.take(WARMUP_STREAMS_PER_WORKER * workers)
    prime_streams(ctx.redis, job_ids, keys)
    run = Run(1, 10)
    try:
        streams = await open_streams(run, job_ids, ctx.port, ctx.api_key)
        pipe = ctx.redis.pipeline(transaction=False)
        for key in keys:
            payload = {"text": TOKEN_TEXT, "seq": 0, "t": time.time()}
            pipe.xadd(key, {"event": "token", "data": json.dumps(payload)})
            pipe.xadd(key, {"event": "done", "data": json.dumps({"finish_reason": "stop"})})
        pipe.execute()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(s.ended for s in streams)), 30)
    finally:
        run.close_all()
        delete_streams(ctx.redis, keys)
    if run.errors or run.done != len(job_ids):
        raise StackError(f"warm-up failed: {dict(run.errors)} {run.error_examples[:3]}")
    await asyncio.sleep(1)


async def run_step(ctx: Context, streams_count: int, rate: float) -> dict[str, Any]:
    args = ctx.args
    slots, tick, tokens = schedule(rate, args.duration)
    duration = slots * tokens * tick
    job_ids, keys = ctx.take(streams_count)
    workers = gunicorn_workers(ctx.stack)
    prime_streams(ctx.redis, job_ids, keys)
    writers = spawn_writers(ctx, keys, slots, tick, tokens)
    names = [name for name, _ in writers]
    run = Run(tokens, duration)
    try:
        await wait_for_ready(ctx, names)
        memory_base = gunicorn_memory(workers)
        redis_base = ctx.redis.info("clients")["connected_clients"]
        client_rss_base = rss_kb(os.getpid())

        began = time.perf_counter()
        streams = await open_streams(run, job_ids, ctx.port, ctx.api_key)
        open_wall = time.perf_counter() - began
        opened = sum(1 for s in streams if s.started.done() and s.started.result())
        log(f"{opened}/{streams_count} streams open in {open_wall:.1f} s")
        await asyncio.sleep(SETTLE_SECONDS)
        memory_open = gunicorn_memory(workers)
        client_rss_open = rss_kb(os.getpid())
        sockets = [socket_count(pid) for pid in workers]
        redis_open = ctx.redis.info("clients")["connected_clients"]

        groups = process_groups(ctx.stack)
        profiles = start_profiles(ctx, workers, duration) if args.profile else []
        if profiles:
            groups = process_groups(ctx.stack)
            await asyncio.sleep(1)  # py-spy attaches
        load_start = os.getloadavg()
        cpu_before, machine_before = cpu_seconds(groups), machine_cpu()
        window_began = time.perf_counter()
        run.t0 = time.time() + 0.3
        for name in names:
            stdin = ctx.stack.processes[name].stdin
            assert stdin is not None
            stdin.write(f"{run.t0!r}\n".encode())
            stdin.flush()
        lags: list[float] = []
        stop_lag = asyncio.Event()
        lag_task = asyncio.create_task(loop_lag(lags, stop_lag))
        await asyncio.sleep(max(0.0, run.t0 + duration - time.time()))
        cpu_after, machine_after = cpu_seconds(groups), machine_cpu()
        wall = time.perf_counter() - window_began
        memory_flow = gunicorn_memory(workers)
        load_end = os.getloadavg()
        stop_lag.set()
        await lag_task
        log(f"flow over; tokens read so far {run.tokens}; waiting for `done` on every stream")

        pending = [s.ended for s in streams if not s.ended.done()]
        if pending:
            await asyncio.wait(pending, timeout=max(30.0, duration))
            for stream in streams:
                if not stream.ended.done():
                    stream.fail("not_done", f"job {stream.job_id}: no `done` in time")
        results = []
        for name, path in writers:
            process = ctx.stack.processes[name]
            for _ in range(600):
                if process.poll() is not None:
                    break
                await asyncio.sleep(0.05)
            if path.exists():
                results.append(json.loads(path.read_text()))
            else:
                run.error("writer", f"{name} wrote no result:\n{ctx.stack.tail(name, 10)}")
        profile = {str(p.stem): summarize_profile(p) for p in profiles}
    finally:
        run.close_all()
        for name in [n for n in ctx.stack.processes if n.startswith(("writer-", "py-spy-"))]:
            ctx.stack.stop([name])
        delete_streams(ctx.redis, keys)
    ctx.stack.check_alive("gunicorn")

    ours = cpu_used(cpu_before, cpu_after)
    busy = machine_after[0] - machine_before[0]
    total = machine_after[1] - machine_before[1]
    written = sum(r["written"] for r in results)
    offered = streams_count * tokens / duration
    # Whole seconds of flow, the first and the last (partial, ramping) left out.
    seconds = int(duration)
    steady = run.per_second[1 : seconds - 1] if seconds >= 3 else run.per_second[: max(1, seconds)]
    delivered_rate = sum(steady) / len(steady) if steady else math.nan
    relay = summary(run.delays)
    errors = sum(run.errors.values())
    in_window = sum(run.per_second[: math.ceil(duration)])
    kept_up = (
        errors == 0
        and delivered_rate >= KEEP_UP_RATIO * offered
        and relay["p99"] <= EXPLODED_P99_MS
    )
    late = [r["late_ms"]["max"] for r in results if r["late_ms"]["n"]]
    return {
        "streams": streams_count,
        "rate_per_stream": rate,
        "duration_s": duration,
        "offered_tokens_per_s": offered,
        "open": {
            "opened": opened,
            "wall_s": open_wall,
            "per_stream_ms": summary(run.open_ms),
        },
        "relay_ms": relay,
        "redis_entry_to_client_ms": summary(run.entry_delays),
        "tokens": {
            "expected": streams_count * tokens,
            "written": written,
            "delivered": run.tokens,
            "delivered_per_s_steady": delivered_rate,
            "delivered_per_s_min_second": min(steady) if steady else math.nan,
            "streams_done": run.done,
        },
        "errors": errors,
        "errors_by_kind": dict(run.errors),
        "error_examples": run.error_examples,
        "heartbeats": run.heartbeats,
        "memory": {
            "gunicorn_base": memory_base,
            "gunicorn_open": memory_open,
            "gunicorn_flow": memory_flow,
            "kb_per_stream_open": 1024
            * (memory_open["rss_mb_total"] - memory_base["rss_mb_total"])
            / max(1, opened),
            "kb_per_stream_flow": 1024
            * (memory_flow["rss_mb_total"] - memory_base["rss_mb_total"])
            / max(1, opened),
            "client_kb_per_stream": (client_rss_open - client_rss_base) / max(1, opened),
            "worker_sockets_open": sockets,
            "redis_clients_added": redis_open - redis_base,
        },
        "cpu": {
            "window_s": wall,
            "machine_busy_pct_of_all_cores": 100 * busy / total if total else math.nan,
            "pct_of_one_core": {name: 100 * s / wall for name, s in sorted(ours.items())},
            "others_pct_of_one_core": 100 * (busy - sum(ours.values())) / wall,
            # CPU per token relayed during the window: what the load costs, whatever the
            # machine's other work (which shows in the delays instead).
            "us_per_token": {
                name: 1e6 * ours[name] / in_window if in_window else math.nan
                for name in ("gunicorn", "client", "redis", "writer")
                if name in ours
            },
            "loadavg_start": list(load_start),
            "loadavg_end": list(load_end),
        },
        "client_loop_lag_ms": summary(lags),
        "writer_late_ms_max": max(late) if late else math.nan,
        "writer_redis_errors": [e for r in results for e in r["redis_errors"]],
        "kept_up": kept_up,
        "target_met": errors == 0 and relay["p99"] <= TARGET_P99_MS,
        "profile": profile,
    }


# --- main ----------------------------------------------------------------------------------


def int_list(value: str) -> list[int]:
    return [int(v) for v in value.split(",") if v.strip()]


def float_list(value: str) -> list[float]:
    return [float(v) for v in value.split(",") if v.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--streams", type=int_list, default=[2000], help="open streams (a list: a sweep)"
    )
    parser.add_argument(
        "--rate", type=float_list, default=[10.0], help="tokens/s per stream (a list: a sweep)"
    )
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of token flow")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--writers", type=int, default=1, help="token writer processes")
    parser.add_argument("--repeat", type=int, default=1, help="repetitions; medians reported")
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="run every step of a sweep, even after one that did not keep up",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for gunicorn (to try a setting)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="py-spy each gunicorn worker during the flow"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--keep-logs", action="store_true", help="keep the process logs")
    args = parser.parse_args(argv)
    if len(args.streams) > 1 and len(args.rate) > 1 and len(args.streams) != len(args.rate):
        parser.error("--streams and --rate lists must have the same length (or one value)")
    if not args.streams or not args.rate:
        parser.error("--streams and --rate need a value")
    if any(not 1 <= n <= 50_000 for n in args.streams):
        parser.error("--streams must be between 1 and 50000")
    if any(not 0.1 <= r <= 1000 for r in args.rate):
        parser.error("--rate must be between 0.1 and 1000 tokens/s")
    if not 1 <= args.duration <= 3600:
        parser.error("--duration must be between 1 and 3600 seconds")
    for name in ("workers", "writers", "repeat"):
        if not 1 <= getattr(args, name) <= 64:
            parser.error(f"--{name} must be between 1 and 64")
    if any("=" not in item for item in args.set):
        parser.error("--set takes NAME=VALUE")
    return args


async def measure(ctx: Context, steps: list[tuple[int, float]]) -> list[dict[str, Any]]:
    await warm_up(ctx, ctx.args.workers)
    done = []
    for number, (count, rate) in enumerate(steps, 1):
        runs = []
        for repetition in range(1, ctx.args.repeat + 1):
            log(
                f"step {number}/{len(steps)}: {count} streams x {rate:g} tokens/s, "
                f"run {repetition}/{ctx.args.repeat}"
            )
            runs.append(await run_step(ctx, count, rate))
            m = runs[-1]
            log(
                f"relay p50 {m['relay_ms']['p50']:.1f} ms, p99 {m['relay_ms']['p99']:.1f} ms; "
                f"{m['tokens']['delivered_per_s_steady']:,.0f} tokens/s delivered; "
                f"{m['errors']} errors"
            )
        median = median_of(runs, keep_other_leaves=True)
        median["errors_by_kind"] = dict(
            sum((Counter(r["errors_by_kind"]) for r in runs), Counter())
        )
        median["error_examples"] = [e for r in runs for e in r["error_examples"]][:10]
        median["kept_up"] = all(r["kept_up"] for r in runs)
        median["target_met"] = all(r["target_met"] for r in runs)
        median["profile"] = runs[-1]["profile"]
        done.append({"median": median, "runs": runs})
        if not median["kept_up"] and not ctx.args.keep_going and number < len(steps):
            log("this step did not keep up: the sweep stops here (--keep-going runs the rest)")
            break
    return done


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_writer"]:
        return writer_main(argv[1])
    if argv[:1] == ["_seed"]:
        return seed_main(argv[1], int(argv[2]))
    args = parse_args(argv)
    # Ctrl-C cleans up even when started where SIGINT is ignored (a shell's background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    count = max(len(args.streams), len(args.rate))
    steps = list(
        zip(
            args.streams * count if len(args.streams) == 1 else args.streams,
            args.rate * count if len(args.rate) == 1 else args.rate,
            strict=True,
        )
    )
    max_streams = max(n for n, _ in steps)
    limits = raise_open_files(max_streams)
    stack = Stack.create(STORAGE, log, "streams-bench-")  # SIGTERM unwinds from now on
    failed = False
    client: redis.Redis | None = None
    try:
        try:
            warmup = WARMUP_STREAMS_PER_WORKER * args.workers
            seeded = migrate_and_seed(stack, sum(n for n, _ in steps) * args.repeat + warmup)
            port = start_gunicorn(stack, args, max_streams)
            client = redis_client()
            ctx = Context(stack, port, seeded["api_key"], seeded["jobs"], client, args)
            results = asyncio.run(measure(ctx, steps))
        except STARTUP_ERRORS as exc:
            failed = True
            log(f"the stack failed: {exc}")
            return 2
        except (KeyboardInterrupt, SystemExit):
            log("interrupted: stopping the stack, dropping the database and the keys")
            raise
    finally:
        if client is not None:
            client.close()
        stack.close(keep_logs=failed or args.keep_logs)

    report = {
        "config": {
            "streams": args.streams,
            "rate": args.rate,
            "duration": args.duration,
            "workers": args.workers,
            "writers": args.writers,
            "repeat": args.repeat,
            "env_overrides": args.set,
            "open_files": limits,
            "nproc": os.cpu_count(),
            "git": git_state(),
        },
        "targets": {"relay_p99_ms": TARGET_P99_MS, "keep_up_ratio": KEEP_UP_RATIO},
        "steps": results,
        "summary": best_steps(results),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 1 if any(r["errors"] for step in results for r in step["runs"]) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)  # the stack was stopped and cleaned up on the way out
