"""The gateway's processes, started for tests and benchmarks: one harness for both.

Small pieces that the test fixtures (tests/conftest.py, tests/integration/conftest.py,
tests/faults/conftest.py) and the benchmarks (bench/stack.py) compose:

- `Process`: a command spawned with an environment and a log file (optionally in a process
  group of its own), waited for by URL or by log line, stopped gracefully then killed,
  killed outright (SIGKILL, a crash), restarted;
- `start_api` (gunicorn with config/gunicorn.conf.py), `start_worker` (one Celery worker),
  `start_fake_ollama` (tests/fakes/ollama.py as its own process), `free_port`;
- storage isolation: `storage_env` (the variables that point an app at its own database,
  Redis db and key prefix), `recreate_database`, `drop_database`, `delete_keys`.

It imports nothing of the application, so a benchmark can use it without the tests' set-up.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import psycopg2
import redis
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


class StackError(RuntimeError):
    """A process of the stack did not come up, or went down."""


def free_port(host: str = HOST) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


# --- one process ------------------------------------------------------------------------------


class Process:
    """One command of the stack, its output in `log_path`.

    With `own_group` it runs in a session (process group) of its own, and signals reach the
    whole group: gunicorn's and celery's children too. `append` keeps the log of earlier
    starts (a restarted worker's log goes on in the same file).
    """

    def __init__(
        self,
        name: str,
        args: list[str],
        env: Mapping[str, str],
        log_path: Path,
        *,
        cwd: Path = ROOT,
        own_group: bool = False,
        stop_signal: int = signal.SIGTERM,
        stdin_pipe: bool = False,
        append: bool = False,
    ):
        self.name, self.args, self.env, self.log_path = name, list(args), dict(env), log_path
        self.cwd, self.own_group, self.stop_signal = cwd, own_group, stop_signal
        self.stdin_pipe, self.append = stdin_pipe, append
        self.popen: subprocess.Popen | None = None
        self.starts = 0

    @classmethod
    def of(cls, popen: subprocess.Popen, name: str = "process") -> Process:
        """A handle of a process started elsewhere (to stop it the same way)."""
        process = cls(name, list(popen.args), {}, Path(os.devnull))
        process.popen = popen
        return process

    def start(self) -> Process:
        self.starts += 1
        with self.log_path.open("ab" if self.append else "wb") as out:
            self.popen = subprocess.Popen(
                self.args,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.PIPE if self.stdin_pipe else subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=self.own_group,
            )
        return self

    # What callers read of the running process, as of a Popen.
    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.pid

    @property
    def stdin(self):
        return self.popen.stdin if self.popen is not None else None

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode if self.popen is not None else None

    def poll(self) -> int | None:
        return self.popen.poll() if self.popen is not None else None

    def wait(self, timeout: float | None = None) -> int:
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.wait(timeout=timeout)

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    # --- its log -------------------------------------------------------------------------

    def log_text(self) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def tail(self, lines: int | None = 30) -> str:
        """The last `lines` lines of the log (all of it with None)."""
        text = self.log_text()
        return text if lines is None else "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        """StackError if the process has exited."""
        if self.popen is None or self.popen.poll() is not None:
            raise StackError(f"{self.name} exited with {self.returncode}:\n{self.tail()}")

    # --- readiness -----------------------------------------------------------------------

    def wait_for_log(
        self,
        pattern: str,
        timeout: float,
        *,
        check: Callable[[], None] | None = None,
        interval: float = 0.1,
        tail_lines: int | None = 30,
    ) -> re.Match[str]:
        """The first match of the regular expression `pattern` in the log, once it is there.

        StackError when the process exits first (`check`, e.g. a whole stack's, replaces
        this process's own check) or after `timeout` seconds.
        """
        check = check or self.check_alive
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.log_text())
            if match:
                return match
            check()
            if time.monotonic() > deadline:
                raise StackError(
                    f"{self.name} did not start within {timeout:.0f} s:\n{self.tail(tail_lines)}"
                )
            time.sleep(interval)

    def wait_for_url(
        self,
        url: str,
        timeout: float,
        *,
        check: Callable[[], None] | None = None,
        request_timeout: float = 2.0,
        interval: float = 0.2,
        tail_lines: int | None = 30,
    ) -> None:
        """Until GET `url` answers 200; StackError as wait_for_log."""
        check = check or self.check_alive
        deadline = time.monotonic() + timeout
        while True:
            check()
            if url_answers(url, request_timeout):
                return
            if time.monotonic() > deadline:
                raise StackError(
                    f"{self.name} was not ready within {timeout:.0f} s ({url}):\n"
                    f"{self.tail(tail_lines)}"
                )
            time.sleep(interval)

    # --- signals -------------------------------------------------------------------------

    def signal(self, signum: int) -> None:
        """Send `signum` to the process (to its whole group with own_group)."""
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError):
            if self.own_group:
                os.killpg(self.popen.pid, signum)
            elif self.popen.poll() is None:
                self.popen.send_signal(signum)

    def kill(self, timeout: float = 10) -> None:
        """SIGKILL: no graceful shutdown, nothing acknowledged, as when a machine dies."""
        assert self.popen is not None, f"{self.name} was never started"
        self.signal(signal.SIGKILL)
        self.popen.wait(timeout=timeout)

    def stop(self, timeout: float = 15) -> None:
        """Its stop signal, then SIGKILL if it has not exited within `timeout` seconds."""
        stop_all([self], timeout)

    def restart(self, timeout: float = 15) -> Process:
        self.stop(timeout)
        return self.start()


def stop_all(processes: Iterable[Process], timeout: float = 20) -> None:
    """Stop several processes at once: each one's stop signal, one shared deadline, then
    SIGKILL for what is left (for a process group, also orphans of an exited leader)."""
    started = [p for p in processes if p.popen is not None]
    for process in started:
        if process.own_group or process.running:
            process.signal(process.stop_signal)
    deadline = time.monotonic() + timeout
    for process in started:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
    for process in started:
        if process.own_group or process.running:
            process.signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
        if process.stdin:
            with contextlib.suppress(OSError):
                process.stdin.close()


def stop_process(process: Process | subprocess.Popen, timeout: float = 15) -> None:
    """Stop one process: its stop signal, SIGKILL if it has not exited within `timeout`."""
    (process if isinstance(process, Process) else Process.of(process)).stop(timeout)


def url_answers(url: str, timeout: float) -> bool:
    """Whether GET `url` answers 200 now."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            return response.status == 200
    except (OSError, http.client.HTTPException):  # not listening yet, booting, or an error
        return False


# --- the gateway's processes ------------------------------------------------------------------


class ApiServer:
    """A gunicorn server of the stack: its process and base URL."""

    def __init__(self, process: Process, url: str):
        self.process, self.url = process, url

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    def log_text(self) -> str:
        return self.process.log_text()

    def wait_healthy(self, timeout: float, **kwargs) -> ApiServer:
        """Until GET /health answers 200 (see Process.wait_for_url)."""
        self.process.wait_for_url(f"{self.url}/health", timeout, **kwargs)
        return self

    def stop(self, timeout: float = 15) -> None:
        self.process.stop(timeout)


def start_api(
    log_path: Path,
    env: Mapping[str, str],
    *,
    host: str = HOST,
    port: int | None = None,
    own_group: bool = False,
    stop_signal: int = signal.SIGTERM,
    name: str = "gunicorn",
) -> ApiServer:
    """gunicorn with config/gunicorn.conf.py on `port` (a free one by default), not waited
    for (see ApiServer.wait_healthy). `env` is its whole environment (WEB_CONCURRENCY, the
    app's settings...)."""
    port = port or free_port(host)
    process = Process(
        name,
        [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "api:create_app()"],
        {"PYTHONUNBUFFERED": "1", **env, "GUNICORN_BIND": f"{host}:{port}"},
        log_path,
        own_group=own_group,
        stop_signal=stop_signal,
    )
    return ApiServer(process.start(), f"http://{host}:{port}")


def worker_command(
    queues: str, concurrency: int, hostname: str, *, pool: str = "threads", loglevel: str = "INFO"
) -> list[str]:
    """`celery worker` for `queues` (comma-separated), as the tests and benchmarks run it."""
    return [
        *(sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker"),
        *("-Q", queues, "-P", pool, "-c", str(concurrency), "-n", hostname),
        *("--without-gossip", "--without-mingle", "-l", loglevel),
    ]


def start_worker(
    queues: str,
    concurrency: int,
    log_path: Path,
    env: Mapping[str, str],
    *,
    hostname: str,
    name: str = "worker",
    pool: str = "threads",
    loglevel: str = "INFO",
    own_group: bool = False,
    append: bool = False,
    ready_timeout: float | None = None,
) -> Process:
    """One Celery worker; with `ready_timeout`, waited for until it logs that it is ready
    (which needs `loglevel` INFO or lower)."""
    process = Process(
        name,
        worker_command(queues, concurrency, hostname, pool=pool, loglevel=loglevel),
        env,
        log_path,
        own_group=own_group,
        append=append,
    ).start()
    if ready_timeout is not None:
        wait_worker_ready(process, hostname, ready_timeout)
    return process


def wait_worker_ready(process: Process, hostname: str, timeout: float = 60) -> None:
    """Until the worker's log says `<hostname> ready.` (one line per start, so a restart
    with a new hostname is not fooled by the earlier line)."""
    process.wait_for_log(re.escape(f"{hostname} ready."), timeout, interval=0.2, tail_lines=None)


def start_fake_ollama(
    log_path: Path,
    args: Iterable[str] = (),
    *,
    host: str = HOST,
    port: int = 0,
    own_group: bool = False,
    check: Callable[[], None] | None = None,
    timeout: float = 20,
) -> tuple[Process, str]:
    """tests/fakes/ollama.py as its own process (`args`: its options, e.g. --token-delay),
    waited for (stopped again if it does not come up); (the process, its URL)."""
    process = Process(
        "fake-ollama",
        [
            *(sys.executable, "-m", "tests.fakes.ollama", "--host", host, "--port", str(port)),
            *args,
        ],
        {**os.environ, "PYTHONUNBUFFERED": "1"},
        log_path,
        own_group=own_group,
    ).start()
    try:
        url = process.wait_for_log(r"FakeOllama listening on (\S+)", timeout, check=check)
    except BaseException:
        process.stop()
        raise
    return process, url.group(1)


# --- storage isolation ------------------------------------------------------------------------


def storage_env(app_env: str, database_url: str, redis_url: str, key_prefix: str) -> dict[str, str]:
    """The variables that point an app of `app_env` at its own database, Redis db and key
    prefix: the testing config reads TEST_DATABASE_URL, TEST_REDIS_URL and
    TEST_REDIS_KEY_PREFIX (and never the others), the other configs the plain names (and
    the broker URL, pinned so that a caller's environment cannot point it elsewhere)."""
    if app_env == "testing":
        return {
            "APP_ENV": app_env,
            "TEST_DATABASE_URL": database_url,
            "TEST_REDIS_URL": redis_url,
            "TEST_REDIS_KEY_PREFIX": key_prefix,
        }
    return {
        "APP_ENV": app_env,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": key_prefix,
        "CELERY_BROKER_URL": redis_url,
    }


def database_maintenance(url: str, *statements: str) -> None:
    """Run `statements` ({name} = the database of `url`) on the server's postgres database."""
    parsed = make_url(url)
    conn = psycopg2.connect(
        host=parsed.host,
        port=parsed.port or 5432,
        user=parsed.username,
        dbname="postgres",
        password=parsed.password,
    )
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement.format(name=parsed.database))
    finally:
        conn.close()


def recreate_database(url: str) -> None:
    """The database of `url` dropped (its connections closed) and created empty."""
    database_maintenance(
        url, 'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', 'CREATE DATABASE "{name}"'
    )


def drop_database(url: str) -> None:
    database_maintenance(url, 'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def delete_keys(client: redis.Redis, prefix: str, keep: str | bytes | None = None) -> int:
    """Delete every key under `prefix` except those under `keep`; how many were deleted."""
    keys = [
        key
        for key in client.scan_iter(match=prefix + "*", count=1000)
        if keep is None or not key.startswith(keep if isinstance(key, str) else _bytes(keep))
    ]
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])
    return len(keys)


def _bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value
