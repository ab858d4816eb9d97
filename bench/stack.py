"""What the benchmark scripts share: a stack of their own on 127.0.0.1, and the figures.

A benchmark gets a `Storage` of its own (a PostgreSQL database that is dropped, created and
migrated at the start and dropped at the end; a Redis db and key prefix whose keys are
deleted at both ends) and a `Stack` that starts processes in their own process groups (the
fake Ollama, gunicorn with config/gunicorn.conf.py, Celery workers), accounts their CPU per
group, and stops them all. The processes themselves are started, waited for and stopped by
the harness the tests use too (tests/stack.py). The scripts use it like this, so that an
error, Ctrl-C or SIGTERM still stops everything and removes the database and the keys:

    stack = Stack.create(storage, log, "name-bench-")   # SIGTERM now raises SystemExit
    failed = False
    try:
        ...
    finally:
        stack.close(keep_logs=failed or args.keep_logs)

Run the scripts from the repository's root with the project's virtualenv (see README.md).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg2
import redis

# The harness (and the fake model server) live in the tests, at the repository's root.
if str(Path(__file__).resolve().parent.parent) not in sys.path:
    sys.path.insert(1, str(Path(__file__).resolve().parent.parent))
from tests.stack import (
    HOST,
    Process,
    delete_keys,
    drop_database,
    recreate_database,
    start_api,
    start_fake_ollama,
    start_worker,
    stop_all,
    storage_env,
)
from tests.stack import ROOT as ROOT
from tests.stack import StackError as StackError
from tests.stack import free_port as free_port

BIN = Path(sys.executable).parent
PG_PORT = 5432
REDIS_PORT = 6379
MODEL = "llama3.2:3b"  # what the gateway's "light" tier is pinned to, and the fake serves
# The shared servers' process names, for the combined "postgres+redis" CPU line.
SERVICES = {"postgres", "redis-server"}
HTTP_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
# Queues and priority steps of kombu's Redis transport (a queue is one list per step).
QUEUES = ("light", "heavy")
PRIORITY_STEPS = (0, 3, 6, 9)
KOMBU_SEP = "\x06\x16"

Log = Callable[[str], None]


def logger(tag: str) -> Log:
    def log(message: str) -> None:
        print(f"[{tag} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    return log


def parse_overrides(items: Iterable[str]) -> dict[str, str]:
    """--set NAME=VALUE items as a dict (the caller has checked that each has a '=')."""
    return dict(item.split("=", 1) for item in items)


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # runs the finally blocks: the stack is stopped


# --- a run: arguments, repetitions, the stack's lifetime ------------------------------------


def add_run_arguments(parser: argparse.ArgumentParser, *, set_help: str) -> None:
    """The options every stack benchmark takes: --repeat, --set, --json, --keep-logs."""
    parser.add_argument("--repeat", type=int, default=3, help="repetitions; medians reported")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help=set_help)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--keep-logs", action="store_true", help="keep the process logs")


def check_overrides(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if any("=" not in item for item in args.set):
        parser.error("--set takes NAME=VALUE")


# Per minute: checked on every request of a load test, never reached.
LOAD_TEST_RATE_LIMIT = 1_000_000


def load_test_env(workers: int) -> dict[str, str]:
    """The API's settings for a load test: `workers` gunicorn processes, no cap on jobs in
    flight, rate limits checked on every request but never reached, and one JSON access
    line per request as in production."""
    return {
        "WEB_CONCURRENCY": str(workers),
        "MAX_JOBS_IN_FLIGHT": "0",
        "RATE_LIMIT_USER_PER_MINUTE": str(LOAD_TEST_RATE_LIMIT),
        "RATE_LIMIT_ADMIN_PER_MINUTE": str(LOAD_TEST_RATE_LIMIT),
        "LOG_LEVEL": "INFO",
    }


# What a stack that does not come up raises (its processes, HTTP, PostgreSQL, Redis).
STARTUP_ERRORS = (StackError, httpx.HTTPError, psycopg2.Error, redis.RedisError, OSError)

State = TypeVar("State")


def run_repetitions(
    stack: Stack,
    args: argparse.Namespace,
    set_up: Callable[[], State],
    repetition: Callable[[State], dict[str, Any]],
    wrap_up: Callable[[State, list[dict[str, Any]]], Any] = lambda state, runs: None,
) -> tuple[list[dict[str, Any]], Any] | int:
    """Set the stack up, run `args.repeat` repetitions, then `wrap_up` (while the stack
    still runs); (the runs, what wrap_up returned). The stack is closed in any case (its
    logs kept on failure or with --keep-logs); instead of the runs, the exit status when
    the stack did not come up or went down (2) or on Ctrl-C (130)."""
    failed = False
    try:
        try:
            state = set_up()
        except STARTUP_ERRORS as exc:
            failed = True
            stack.log(f"the stack did not come up: {exc}")
            return 2
        runs = []
        for number in range(1, args.repeat + 1):
            stack.log(f"repetition {number}/{args.repeat}")
            runs.append(repetition(state))
        return runs, wrap_up(state, runs)
    except StackError as exc:
        failed = True
        stack.log(f"the stack went down: {exc}")
        return 2
    except KeyboardInterrupt:
        stack.log("interrupted: stopping everything")
        return 130
    finally:
        stack.close(keep_logs=failed or args.keep_logs)


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


def median_of(results: list[Any], *, keep_other_leaves: bool = False) -> Any:
    """The median over repetitions of every numeric leaf.

    Other leaves (lists of examples…) are dropped (None); with `keep_other_leaves` the
    first run's is kept instead (booleans too), and NaNs are left out of the medians.
    """
    first = results[0]
    if isinstance(first, dict):
        return {
            key: median_of(
                [r[key] for r in results if key in r], keep_other_leaves=keep_other_leaves
            )
            for key in first
        }
    if not keep_other_leaves:
        return statistics.median(results) if isinstance(first, int | float) else None
    if isinstance(first, bool) or not isinstance(first, int | float):
        return first
    numbers = [r for r in results if isinstance(r, int | float) and not math.isnan(r)]
    return statistics.median(numbers) if numbers else math.nan


def verdict(value: float, target: float) -> str:
    return "met" if value <= target else "NOT MET"


# --- CPU -------------------------------------------------------------------------------------


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, all cores, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    total = sum(values[:8])
    idle = values[3] + values[4]
    return (total - idle) / ticks, total / ticks


def cpu_report(ours: dict[str, float], busy: float, total: float, wall: float) -> dict:
    """CPU over one run: the machine's, and % of one core per process group; "others" is
    what ran on the machine besides this stack and the shared PostgreSQL and Redis."""
    return {
        "machine_busy_pct_of_all_cores": 100 * busy / total,
        "pct_of_one_core": {name: 100 * seconds / wall for name, seconds in ours.items()},
        "others_pct_of_one_core": 100 * (busy - sum(ours.values())) / wall,
    }


class CpuWindow:
    """CPU used between start() and stop(): per process group of `stack`, and the machine's;
    for the group named `split` (e.g. gunicorn) also per child process, busiest first."""

    def __init__(self, stack: Stack, split: str | None = None) -> None:
        self.stack, self.split = stack, split

    def _children(self) -> dict[int, float]:
        return self.stack.children_cpu_seconds(self.split) if self.split else {}

    def start(self) -> None:
        self.before = self.stack.cpu_seconds()
        self.children_before = self._children()
        self.busy_before, self.total_before = machine_cpu()
        self.loadavg_before = os.getloadavg()
        self.started = time.perf_counter()

    def stop(self) -> dict[str, Any]:
        wall = time.perf_counter() - self.started
        after, (busy, total) = self.stack.cpu_seconds(), machine_cpu()
        children = self._children()
        ours = {name: after[name] - self.before.get(name, 0.0) for name in after}
        report = cpu_report(ours, busy - self.busy_before, total - self.total_before, wall)
        report["loadavg_before"] = _loadavg(self.loadavg_before)
        report["loadavg_after"] = _loadavg(os.getloadavg())
        if self.split:
            used = sorted(
                (seconds - self.children_before.get(pid, 0.0) for pid, seconds in children.items()),
                reverse=True,
            )
            # Ranked, not by pid, so that the median over repetitions means something.
            report[f"{self.split}_children_pct_of_one_core"] = {
                f"#{rank}": 100 * seconds / wall for rank, seconds in enumerate(used, 1)
            }
        return report


def cpu_per_request(cpu: dict[str, Any], wall: float, requests: int) -> dict[str, float]:
    """CPU ms per request of each process group, from a CpuWindow report."""
    return {
        name: pct / 100 * wall * 1000 / max(requests, 1)
        for name, pct in cpu["pct_of_one_core"].items()
    }


def cpu_lines(cpu: dict[str, Any], per_request: dict[str, float], indent: str = "  ") -> str:
    """A CpuWindow report in words ("client" is this process: the load generator)."""
    groups = ", ".join(
        f"{'load generator' if name == 'client' else name} {pct:.0f}"
        f" ({per_request[name]:.2f} ms/request)"
        for name, pct in cpu["pct_of_one_core"].items()
    )
    lines = [
        f"{indent}% of one core (CPU ms per request): {groups}",
        f"{indent}machine {cpu['machine_busy_pct_of_all_cores']:.0f}% busy (all cores); other "
        f"processes {cpu['others_pct_of_one_core']:.0f}% of one core; load average (1 min) "
        f"{cpu['loadavg_before']['1m']:.2f} before, {cpu['loadavg_after']['1m']:.2f} after",
    ]
    for key, ranked in cpu.items():
        if key.endswith("_children_pct_of_one_core"):
            each = ", ".join(f"{pct:.0f}" for pct in ranked.values())
            lines.append(
                f"{indent}{key.removesuffix('_children_pct_of_one_core')} processes, busiest "
                f"first: {each} (% of one core each)"
            )
    return "\n".join(lines)


def _loadavg(values: tuple[float, float, float]) -> dict[str, float]:
    return dict(zip(("1m", "5m", "15m"), values, strict=True))


def _proc_stat(pid: int | str) -> tuple[str, list[str]] | None:
    """(comm, the fields after it) of /proc/<pid>/stat, or None if the process is gone."""
    try:
        raw = Path("/proc", str(pid), "stat").read_text()
    except OSError:
        return None
    return raw.split("(", 1)[1].rsplit(")", 1)[0], raw.rsplit(")", 1)[1].split()


# --- storage ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Storage:
    """A benchmark's own database, Redis db and key prefix."""

    db_name: str
    redis_db: int
    prefix: str

    @property
    def database_url(self) -> str:
        return f"postgresql://postgres@{HOST}:{PG_PORT}/{self.db_name}"

    @property
    def redis_url(self) -> str:
        return f"redis://{HOST}:{REDIS_PORT}/{self.redis_db}"

    def admin_connection(self):
        conn = psycopg2.connect(host=HOST, port=PG_PORT, user="postgres", dbname="postgres")
        conn.autocommit = True
        return conn

    def connect(self):
        """A connection to the benchmark's database (autocommit)."""
        conn = psycopg2.connect(host=HOST, port=PG_PORT, user="postgres", dbname=self.db_name)
        conn.autocommit = True
        return conn

    def reset_database(self) -> None:
        recreate_database(self.database_url)

    def drop_database(self) -> None:
        drop_database(self.database_url)

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url, socket_timeout=5, socket_connect_timeout=5)

    def clean_redis(self) -> int:
        client = self.redis()
        try:
            return delete_keys(client, self.prefix)
        finally:
            client.close()

    def queue_keys(self) -> list[str]:
        """The broker's lists for the light and heavy queues, every priority step."""
        base = f"{self.prefix}celery:"
        return [
            base + queue + (f"{KOMBU_SEP}{step}" if step else "")
            for queue in QUEUES
            for step in PRIORITY_STEPS
        ]

    def queued_messages(self) -> int:
        client = self.redis()
        try:
            return sum(client.llen(key) for key in self.queue_keys())
        finally:
            client.close()

    def queued_job_ids(self) -> list[str]:
        """The job id of every message waiting on the light and heavy queues."""
        client = self.redis()
        ids = []
        try:
            for key in self.queue_keys():
                for raw in client.lrange(key, 0, -1):
                    message = json.loads(raw)
                    body = message["body"]
                    if message["properties"].get("body_encoding") == "base64":
                        body = base64.b64decode(body)
                    args, _kwargs, _embed = json.loads(body)  # Celery's message protocol 2
                    ids.append(args[0])
        finally:
            client.close()
        return ids

    def sessions_opened(self) -> int:
        """Connections ever opened to the database (pg_stat_database.sessions, PG 14+;
        a backend reports its statistics up to about a second late)."""
        conn = self.admin_connection()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_stat_clear_snapshot()")
                cur.execute(
                    "SELECT sessions FROM pg_stat_database WHERE datname = %s", (self.db_name,)
                )
                row = cur.fetchone()
        finally:
            conn.close()
        return int(row[0]) if row and row[0] is not None else 0


# --- processes -----------------------------------------------------------------------------


@dataclass
class Stack:
    log_dir: Path
    storage: Storage
    log: Log
    # Each in a process group of its own, stopped by its stop signal (SIGTERM unless
    # spawn() was told) and then SIGKILL.
    processes: dict[str, Process] = field(default_factory=dict)
    # Set by watch_services(): the pids of the shared servers, to report them apart.
    postmaster_pid: int | None = None
    redis_pid: int | None = None
    # Set by a script when a measured request failed: the logs are kept to say why.
    requests_failed: bool = False

    @classmethod
    def create(cls, storage: Storage, log: Log, log_prefix: str) -> Stack:
        """A stack with a fresh log directory; from now on SIGTERM unwinds like Ctrl-C."""
        signal.signal(signal.SIGTERM, _terminate)
        return cls(Path(tempfile.mkdtemp(prefix=log_prefix)), storage, log)

    def spawn(
        self,
        name: str,
        args: list[str],
        env: dict[str, str],
        *,
        stdin_pipe: bool = False,
        stop_signal: int = signal.SIGTERM,
        cwd: Path = ROOT,
    ) -> Process:
        return self.add(
            Process(
                name,
                args,
                env,
                self.log_dir / f"{name}.log",
                cwd=cwd,
                # Own session = own process group, so stop() reaches gunicorn's and
                # celery's children too.
                own_group=True,
                stop_signal=stop_signal,
                stdin_pipe=stdin_pipe,
            ).start()
        )

    def add(self, process: Process) -> Process:
        self.processes[process.name] = process
        return process

    def log_text(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def check_alive(self, *names: str) -> None:
        """StackError if one of the named processes (all by default) has exited."""
        for name in names or list(self.processes):
            self.processes[name].check_alive()

    def tail(self, name: str, lines: int = 30) -> str:
        return "\n".join(self.log_text(name).splitlines()[-lines:])

    def stop(self, names: Iterable[str] | None = None) -> None:
        """Stop the named process groups (all of them by default, the last started first):
        their stop signal, then SIGKILL."""
        chosen = list(self.processes) if names is None else list(names)
        stop_all([self.processes[name] for name in reversed(chosen)], timeout=20)
        for name in chosen:
            del self.processes[name]

    def close(self, *, keep_logs: bool) -> None:
        """Stop every process, drop the database, delete the keys, remove the logs."""
        # A second Ctrl-C or SIGTERM must not cut the clean-up short and leave processes,
        # the database or keys behind; it is bounded (~25 s for stubborn processes).
        previous = {
            signum: signal.signal(signum, signal.SIG_IGN)
            for signum in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            self.stop()
            with contextlib.suppress(psycopg2.Error, redis.RedisError, OSError):
                self.storage.clean_redis()
            with contextlib.suppress(psycopg2.Error, OSError):
                self.storage.drop_database()
            if keep_logs or self.requests_failed:
                self.log(f"process logs kept in {self.log_dir}")
            else:
                for path in self.log_dir.iterdir():
                    path.unlink()
                self.log_dir.rmdir()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def watch_services(self) -> None:
        """Report the shared PostgreSQL and Redis servers apart in cpu_seconds()."""
        client = self.storage.redis()
        try:
            self.redis_pid = int(client.info("server")["process_id"])
        finally:
            client.close()
        conn = self.storage.admin_connection()
        with conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            backend = cur.fetchone()[0]
        stat = _proc_stat(backend)
        conn.close()
        if stat is None:  # another host or namespace: fall back to the combined line
            self.redis_pid = None
            return
        self.postmaster_pid = int(stat[1][1])  # ppid of a backend

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds (user + system) used so far by each group's live processes, by this
        client, and by the shared PostgreSQL and Redis servers (which serve other users too).

        After watch_services(), "postgres" (the whole server: every backend, live or
        reaped, and its background processes) and "redis" (the server's process) are
        separate entries; otherwise both are in "postgres+redis", found by process name."""
        groups = {process.pid: name for name, process in self.processes.items()}
        split = self.postmaster_pid is not None
        services = ["postgres", "redis"] if split else ["postgres+redis"]
        totals = dict.fromkeys([*self.processes, *services], 0.0)
        ticks = os.sysconf("SC_CLK_TCK")
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            stat = _proc_stat(entry.name)
            if stat is None:
                continue
            comm, fields = stat
            pid, ppid = int(entry.name), int(fields[1])
            name = groups.get(int(fields[2]))  # pgrp
            used = int(fields[11]) + int(fields[12])
            if name is None and split:
                if pid == self.redis_pid:
                    name = "redis"
                elif pid == self.postmaster_pid:
                    # Its children's CPU once they have exited (a closed connection).
                    name, used = "postgres", used + int(fields[13]) + int(fields[14])
                elif ppid == self.postmaster_pid:
                    name = "postgres"
            elif name is None and comm in SERVICES:
                name = "postgres+redis"
            if name is not None:
                totals[name] += used / ticks
        totals["client"] = time.process_time()
        return totals

    def children_cpu_seconds(self, name: str) -> dict[int, float]:
        """CPU seconds so far of each live process in group `name` but its leader (gunicorn's
        workers, not its arbiter)."""
        leader = self.processes[name].pid
        ticks = os.sysconf("SC_CLK_TCK")
        found = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit() or int(entry.name) == leader:
                continue
            stat = _proc_stat(entry.name)
            if stat is not None and int(stat[1][2]) == leader:
                found[int(entry.name)] = (int(stat[1][11]) + int(stat[1][12])) / ticks
        return found

    # --- the gateway's processes -----------------------------------------------------------

    def app_env(self, overrides: dict[str, str] | None = None) -> dict[str, str]:
        overrides, storage = overrides or {}, self.storage
        path = overrides.get("PYTHONPATH", os.environ.get("PYTHONPATH"))
        return {
            **os.environ,
            # This checkout's code first, whatever the virtualenv's editable install points
            # at (a --set PYTHONPATH comes after it).
            "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT),
            # The database, Redis db and prefix (and broker) of the benchmark's own.
            **storage_env("development", storage.database_url, storage.redis_url, storage.prefix),
            "LLM_PROVIDER": "ollama",
            "MODEL_LIGHT": MODEL,
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            **{name: value for name, value in overrides.items() if name != "PYTHONPATH"},
        }

    def run_step(
        self, what: str, args: list[str], overrides: dict[str, str], timeout: float
    ) -> None:
        """Run a set-up command in the app's environment to its end; StackError if it fails."""
        done = subprocess.run(  # noqa: S603
            args,
            cwd=ROOT,
            env=self.app_env(overrides),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise StackError(f"{what} failed:\n{done.stdout}\n{done.stderr}")

    def prepare_storage(self, overrides: dict[str, str]) -> None:
        """A fresh, migrated database and no keys under the prefix."""
        storage = self.storage
        self.log(f"database {storage.db_name}: drop, create, migrate")
        storage.reset_database()
        self.run_step(
            "migration", [str(BIN / "flask"), "--app", "api", "db", "upgrade"], overrides, 120
        )
        removed = storage.clean_redis()
        self.log(f"redis db {storage.redis_db}: removed {removed} {storage.prefix}* keys")

    def start_fake_ollama(self, extra_args: list[str]) -> str:
        """tests/fakes/ollama.py as its own process; its URL."""
        process, url = start_fake_ollama(
            self.log_dir / "fake-ollama.log",
            extra_args,
            host=HOST,
            own_group=True,
            check=self.check_alive,
            timeout=20,
        )
        self.add(process)
        return url

    def start_gunicorn(self, env: dict[str, str]) -> str:
        """gunicorn with config/gunicorn.conf.py on a free port (not waited for); its URL.
        `env` is added to app_env(), e.g. WEB_CONCURRENCY."""
        server = start_api(
            self.log_dir / "gunicorn.log",
            self.app_env(env),
            host=HOST,
            own_group=True,
            # Quick shutdown: a stream notices a gone client only when it writes, so a
            # graceful one (SIGTERM) would wait for the next heartbeat of each.
            stop_signal=signal.SIGQUIT,
        )
        self.add(server.process)
        return server.url

    def start_worker(
        self, threads: int, env: dict[str, str], name: str = "worker", queues: str = "light"
    ) -> None:
        """One Celery worker (thread pool) for `queues` (comma-separated: "light,heavy");
        `env` is added to app_env()."""
        self.add(
            start_worker(
                queues,
                threads,
                self.log_dir / f"{name}.log",
                self.app_env(env),
                hostname=f"bench-{queues.replace(',', '-')}@%h",
                name=name,
                loglevel="WARNING",
                own_group=True,
            )
        )

    def wait_for_log(self, name: str, pattern: str, timeout: float) -> re.Match[str]:
        return self.processes[name].wait_for_log(pattern, timeout, check=self.check_alive)

    def wait_for_health(self, base: str, timeout: float) -> None:
        self.processes["gunicorn"].wait_for_url(f"{base}/health", timeout, check=self.check_alive)


def create_api_key(base: str, name: str) -> str:
    """Register a user, log in and create an API key named `name`; the key."""
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
            json={"name": name},
            headers={"Authorization": f"Bearer {access}"},
        )
        if key.status_code != 201:
            raise StackError(f"api key: {key.status_code} {key.text}")
        return key.json()["key"]
