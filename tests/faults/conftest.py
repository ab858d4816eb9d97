"""Fault injection under a running gateway: its own Redis, a cuttable PostgreSQL, real processes.

Each fault module starts its own stack — a `redis-server` process that keeps nothing on
disk (the worst case of production's Redis), optionally a TCP proxy in front of the
machine's PostgreSQL, a gunicorn server and Celery workers on both queues, and fake Ollama
servers — so killing, restarting or cutting any of them never touches the machine's own
services or another test run. The run's database is shared (through the proxy when there
is one); the test process reads job rows directly through the `app` fixture.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from api import create_app
from config.settings import TestingConfig
from core.db import db
from core.models import Job
from tests.conftest import PASSWORD, TABLES, LiveServer, start_gunicorn, stop_gunicorn
from tests.fakes.ollama import MODES, FakeOllama
from tests.helpers import bearer, register_over_http
from tests.integration.conftest import Client, Worker
from tests.sse_client import TERMINAL, SseEvent, iter_sse, text_of
from tests.stack import Process, delete_keys, free_port

ENDED = frozenset({"succeeded", "failed", "cancelled"})
IN_FLIGHT = ("queued", "running")


# --- our own Redis ------------------------------------------------------------------------


class RedisServer:
    """A `redis-server` process of our own, on a fixed port, persisting nothing.

    kill() is a crash (SIGKILL); start() again on the same port is a restart with an empty
    dataset, as when a Redis without persistence comes back.
    """

    def __init__(self, workdir: Path):
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.process: Process | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=5)

    def start(self) -> None:
        self.starts += 1
        self.process = Process(
            "redis-server",
            [
                *(self.binary, "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.workdir)),
                *("--daemonize", "no"),
            ],
            os.environ,
            self.workdir / f"redis-{self.starts}.log",
        ).start()

        def pong() -> bool:
            with contextlib.closing(self.client()) as client:
                return client.ping()

        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(redis.RedisError):
                if pong():
                    return
            if not self.process.running or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def kill(self) -> None:
        """Crash: SIGKILL, so nothing is written anywhere (and nothing would be kept)."""
        assert self.process is not None
        self.process.kill()

    def stop(self) -> None:
        if self.process is not None and self.process.running:
            self.kill()

    def ensure_running(self) -> None:
        if self.process is None or not self.process.running:
            self.start()


# --- a PostgreSQL we can cut --------------------------------------------------------------


class PgProxy:
    """A TCP proxy between the app processes and the machine's PostgreSQL.

    cut() is a database restart as the apps see it: every open connection is closed and
    new ones are refused (nothing listens) until resume(), on the same port.
    """

    def __init__(self, upstream_host: str, upstream_port: int):
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._accepting: threading.Event | None = None

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        listener.settimeout(0.1)
        accepting = threading.Event()
        accepting.set()
        self._listener, self._accepting = listener, accepting
        threading.Thread(
            target=self._accept_loop, args=(listener, accepting), daemon=True, name="pg-proxy"
        ).start()

    def _accept_loop(self, listener: socket.socket, accepting: threading.Event) -> None:
        while accepting.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                if not accepting.is_set():
                    client.close()
                    upstream.close()
                    return
                self._sockets.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._close(src, dst)

    def _close(self, *sockets: socket.socket) -> None:
        for sock in sockets:
            with self._lock:
                self._sockets.discard(sock)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def cut(self) -> None:
        """Close every proxied connection and stop listening (new connects are refused)."""
        listener, accepting = self._listener, self._accepting
        self._listener = self._accepting = None
        if accepting is not None:
            with self._lock:
                accepting.clear()
        if listener is not None:
            listener.close()
        with self._lock:
            sockets = list(self._sockets)
        self._close(*sockets)

    def resume(self) -> None:
        self.start()

    def ensure_listening(self) -> None:
        if self._listener is None:
            self.start()

    def stop(self) -> None:
        self.cut()


def database_proxy() -> PgProxy:
    """A proxy (not started yet) to the run's database."""
    database = make_url(os.environ["TEST_DATABASE_URL"])
    return PgProxy(database.host or "127.0.0.1", database.port or 5432)


def proxied_database_url(port: int) -> str:
    """The run's database URL with the host and port of the proxy."""
    url = make_url(os.environ["TEST_DATABASE_URL"]).set(host="127.0.0.1", port=port)
    return url.render_as_string(hide_password=False)


# --- a model server whose faults can hit one request ------------------------------------

FAULT_MARK = re.compile(r"\[fault:([a-z_]+)\]")
# The faults a single request can ask for ("down" is a whole-server state).
REQUEST_FAULTS = frozenset(MODES) - {"ok", "down"} | {"slow"}


class FaultyOllama(FakeOllama):
    """A FakeOllama whose faults can target single requests.

    A chat request whose last user message contains "[fault:<mode>]" is answered in that
    mode (error, hang, hang_mid_stream, malformed, disconnect_mid_stream,
    error_mid_stream) or, for "[fault:slow]", with its first token after `slow_delay`
    seconds; every other request is answered normally at the same time. The fake's own
    `mode` still applies to all requests that name no fault.
    """

    def __init__(self, *args: Any, slow_delay: float = 0.0, **kwargs: Any):
        self._local = threading.local()
        self._first_token_delay = 0.0
        self.slow_delay = slow_delay
        super().__init__(*args, **kwargs)

    def _record(self, body: dict[str, Any]) -> None:
        # Called by the handler thread with each chat request before it reads the mode.
        self._local.body = body
        super()._record(body)

    def requested_fault(self) -> str | None:
        body = getattr(self._local, "body", None) or {}
        users = [m for m in body.get("messages") or [] if m.get("role") == "user"]
        content = users[-1].get("content") if users else None
        match = FAULT_MARK.search(content) if isinstance(content, str) else None
        return match.group(1) if match and match.group(1) in REQUEST_FAULTS else None

    @property
    def mode(self) -> str:
        fault = self.requested_fault()
        return fault if fault and fault != "slow" else self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        FakeOllama.mode.fset(self, value)

    @property
    def first_token_delay(self) -> float:
        if self.requested_fault() == "slow":
            return self.slow_delay
        return self._first_token_delay

    @first_token_delay.setter
    def first_token_delay(self, value: float) -> None:
        self._first_token_delay = value

    def saw(self, text: str) -> bool:
        """Whether a chat request containing `text` has reached the server."""
        return any(text in json.dumps(body, ensure_ascii=False) for body in list(self.requests))


# --- the stack ----------------------------------------------------------------------------


@dataclass
class Stack:
    """One gateway deployment: API, workers per queue, their Redis, model servers."""

    server: LiveServer
    workers: dict[str, Worker]
    redis: RedisServer
    env: dict[str, str]
    fakes: dict[str, FakeOllama] = field(default_factory=dict)
    proxy: PgProxy | None = None

    @property
    def url(self) -> str:
        return self.server.url

    def health(self) -> requests.Response:
        return requests.get(f"{self.url}/health", timeout=15)


@contextlib.contextmanager
def running_stack(
    workdir: Path,
    *,
    concurrency: dict[str, int],
    fakes: dict[str, FakeOllama] | None = None,
    env: dict[str, str] | None = None,
    cut_database: bool = False,
    api_workers: int = 1,
) -> Iterator[Stack]:
    """A module's whole stack, started in `workdir` and stopped after.

    Our own Redis, the model servers, gunicorn and one Celery worker per queue; with
    `cut_database`, the apps reach the database through a PgProxy (`Stack.proxy`).
    `fakes` maps each queue to its model server (one per tier, as production may have);
    without it, one FaultyOllama serves both.
    """
    if fakes is None:
        fakes = dict.fromkeys(("light", "heavy"), FaultyOllama())
    redis_server = RedisServer(workdir)
    proxy = database_proxy() if cut_database else None
    models = list(dict.fromkeys(fakes.values()))  # one server may serve both queues
    overrides = {
        "TEST_REDIS_URL": redis_server.url,
        # The periodic reconciler of the workers: look every second, not every 30.
        "RECONCILE_INTERVAL_SECONDS": "1",
        **({"TEST_DATABASE_URL": proxied_database_url(proxy.port)} if proxy else {}),
        **(env or {}),
    }
    server: LiveServer | None = None
    workers: dict[str, Worker] = {}
    try:
        redis_server.start()
        if proxy is not None:
            proxy.start()
        for model in models:
            model.start()
        # The run's database is shared with every other test module: start from an empty
        # one, or the reconciler of our workers would pick up jobs other tests left queued.
        truncate_tables()
        server = start_gunicorn(
            workdir / "gunicorn.log", env_overrides=overrides, workers=api_workers
        )
        worker_env = {**os.environ, "APP_ENV": "testing", **overrides}
        for queue, slots in concurrency.items():
            env_of_queue = {**worker_env, "OLLAMA_URL": fakes[queue].url}
            workers[queue] = Worker(queue, slots, workdir / f"worker-{queue}.log", env_of_queue)
            workers[queue].start()
        yield Stack(
            server=server,
            workers=workers,
            redis=redis_server,
            env=overrides,
            fakes=fakes,
            proxy=proxy,
        )
    finally:
        for worker in workers.values():
            worker.stop()
        if server is not None:
            stop_gunicorn(server)
        for model in models:
            model.stop()
        if proxy is not None:
            proxy.stop()
        redis_server.stop()


def time_limits(
    soft: int, hard: int | None = None, visibility: int | None = None
) -> dict[str, str]:
    """The env of a stack's job time limits: `soft`, `hard` (5 s later unless given) and
    the broker's visibility timeout (10 s after `hard` unless given).

    The broker redelivers an unacknowledged message after its visibility timeout, so it
    lies past the hard limit: a job that is still running is not handed to a second worker.
    """
    hard = soft + 5 if hard is None else hard
    visibility = hard + 10 if visibility is None else visibility
    return {
        "JOB_SOFT_TIME_LIMIT": str(soft),
        "JOB_TIME_LIMIT": str(hard),
        "BROKER_VISIBILITY_TIMEOUT": str(visibility),
    }


def truncate_tables() -> None:
    """Empty the run's tables, as the `app` fixture does before each test."""
    app = create_app(TestingConfig())
    with app.app_context():
        db.session.execute(text(f"TRUNCATE {', '.join(TABLES)} CASCADE"))
        db.session.commit()
        db.session.remove()
        db.engine.dispose()


def clean_own_redis(stack: Stack, prefix: str) -> None:
    """The run's keys in our Redis, except the queue bindings the workers declared."""
    with contextlib.closing(stack.redis.client()) as client:
        delete_keys(client, prefix, keep=f"{prefix}celery:_kombu.binding.")


@pytest.fixture
def gateway(stack: Stack, app) -> Iterator[Stack]:
    """The module's stack with the database (via `app`) and our Redis cleaned for this test."""
    # Whatever an earlier test left broken is back.
    stack.redis.ensure_running()
    if stack.proxy is not None:
        stack.proxy.ensure_listening()
    wait_healthy(stack)
    clean_own_redis(stack, app.config["REDIS_KEY_PREFIX"])
    for fake in stack.fakes.values():
        fake.reset()
    yield stack
    # A test that failed half-way may leave a generation going: let it end before the next
    # test empties the tables under it (a worker mid-job holds a transaction open).
    fakes = set(stack.fakes.values())
    wait_until(lambda: all(fake.in_flight == 0 for fake in fakes), timeout=30, interval=0.2)


@pytest.fixture
def user(gateway: Stack) -> Client:
    email = f"fault-{uuid.uuid4().hex[:12]}@example.com"
    account = register_over_http(gateway.url, email, PASSWORD)
    return Client(gateway.url, bearer(account["access_token"]), account["id"])


# --- what a client does and sees ----------------------------------------------------------


def unique(label: str) -> str:
    return f"{label} {uuid.uuid4().hex}"


def submit(client: Client, message: str, **fields: Any) -> dict:
    response = client.post("/api/jobs/", json={"message": message, "tools": False, **fields})
    assert response.status_code == 202, response.text
    return response.json()


def submit_tagged(
    client: Client, tiers: Sequence[str], label: str = "{tier} job"
) -> dict[str, str]:
    """One job per entry of `tiers`, in order: {job id: its message}.

    Each message is `label` (which may name {n} and {tier}) made unique, so that each job
    has a reply of its own (see expected_reply).
    """
    messages = {}
    for n, tier in enumerate(tiers):
        message = unique(label.format(n=n, tier=tier))
        messages[submit(client, message, model=tier)["id"]] = message
    return messages


def wait_until(condition: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """Poll `condition` until it returns something truthy; that value, or the last one."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def job_or_none(client: Client, job_id: str) -> dict | None:
    """The job as the API shows it, or None while the API cannot answer (an outage)."""
    try:
        response = client.get(f"/api/jobs/{job_id}")
    except requests.RequestException:
        return None
    return response.json() if response.status_code == 200 else None


def wait_ended(client: Client, job_id: str, timeout: float) -> dict:
    """Poll a job until it has ended; fails with its last state when it does not in time."""
    last: dict | None = None

    def ended() -> bool:
        nonlocal last
        last = job_or_none(client, job_id) or last
        return last is not None and last["status"] in ENDED

    wait_until(ended, timeout, interval=0.2)
    assert last is not None and last["status"] in ENDED, f"job did not end in {timeout} s: {last}"
    return last


class Follower(threading.Thread):
    """An SSE client that behaves like a browser's EventSource.

    It follows a job's events in the background and, when the connection breaks or is
    refused (an outage), reconnects with the Last-Event-ID of the last event it got, until
    a terminal event arrives.
    """

    def __init__(self, client: Client, job_id: str, timeout: float = 180):
        super().__init__(daemon=True, name=f"sse-{job_id}")
        self.client, self.job_id, self.timeout = client, job_id, timeout
        self.events: list[SseEvent] = []
        self.connections = 0
        self.refused: list[int] = []  # statuses of refused (re)connects
        self.broken = 0  # connections that ended without a terminal event
        self.error: BaseException | None = None
        self._halt = threading.Event()

    @property
    def ended(self) -> bool:
        return bool(self.events) and self.events[-1].event in TERMINAL

    def tokens(self) -> int:
        return sum(1 for event in list(self.events) if event.event == "token")

    def run(self) -> None:
        url = f"{self.client.base}/api/jobs/{self.job_id}/events"
        deadline = time.monotonic() + self.timeout
        last_id: str | None = None
        try:
            while not self._halt.is_set() and time.monotonic() < deadline:
                headers = dict(self.client.headers)
                if last_id:
                    headers["Last-Event-ID"] = last_id
                try:
                    response = requests.get(url, headers=headers, stream=True, timeout=(5, 20))
                except requests.RequestException:
                    self.refused.append(0)
                    self._halt.wait(0.3)
                    continue
                if response.status_code != 200:
                    self.refused.append(response.status_code)
                    response.close()
                    self._halt.wait(0.3)
                    continue
                self.connections += 1
                try:
                    for event in iter_sse(response):
                        self.events.append(event)
                        last_id = event.id or last_id
                        if event.event in TERMINAL:
                            return
                except requests.RequestException:
                    pass
                self.broken += 1
                self._halt.wait(0.3)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def stop(self) -> None:
        self._halt.set()

    def wait_tokens(self, count: int, timeout: float) -> None:
        wait_until(lambda: self.tokens() >= count or self.error is not None, timeout, 0.05)
        assert self.error is None, self.error
        assert self.tokens() >= count, f"only {self.tokens()} tokens in {timeout} s: {self.events}"

    def finish(self, timeout: float) -> list[SseEvent]:
        """The events once the stream has ended (fails if it does not within `timeout`)."""
        self.join(timeout)
        self.stop()
        assert self.error is None, self.error
        story = f"{self.connections} connections, {self.broken} broken, refused {self.refused}"
        assert not self.is_alive(), f"{self.job_id} still open ({story}): {self.events[-5:]}"
        assert self.ended, f"{self.job_id} ended without a terminal event ({story})"
        return list(self.events)


def follow(client: Client, job_ids: Iterable[str], timeout: float = 180) -> dict[str, Follower]:
    """A started Follower per job, {job id: follower}, so that each sees all its events."""
    followers = {job_id: Follower(client, job_id, timeout) for job_id in job_ids}
    for follower in followers.values():
        follower.start()
    return followers


def assert_refused_only_with_503(followers: Iterable[Follower]) -> None:
    """The clients' reconnects during an outage were refused with 503, never a 500."""
    refusals = {status for follower in followers for status in follower.refused}
    assert refusals <= {503}, refusals


def jobs_in_database(app) -> list[Job]:
    """Every job row, read directly from PostgreSQL (not through the stack under test)."""
    with app.app_context():
        jobs = list(db.session.scalars(select(Job).order_by(Job.created_at)))
        db.session.expunge_all()
        db.session.remove()
        return jobs


def stuck_jobs(app) -> list[tuple[str, str]]:
    """(id, status) of the jobs still queued or running."""
    return [(str(job.id), job.status) for job in jobs_in_database(app) if job.status in IN_FLIGHT]


# --- replies a test can check -------------------------------------------------------------

_TAG = re.compile(r"\b([0-9a-f]{32})\b")


def expected_reply(message: str, words: int = 20) -> str:
    """What `tagged_replies` answers to `message`: its uuid, then `words` numbered words."""
    match = _TAG.search(message)
    tag = match.group(1) if match else "untagged"
    return f"{tag} " + " ".join(f"w{i}" for i in range(words))


def tagged_replies(words: int = 20) -> Callable[[dict[str, Any]], str]:
    """A fake's reply_fn: every job gets its own text (see expected_reply).

    A token that reached the wrong job, or a job twice, then shows in its output.
    """

    def reply(body: dict[str, Any]) -> str:
        users = [m for m in body.get("messages") or [] if m.get("role") == "user"]
        return expected_reply(str(users[-1].get("content") if users else ""), words)

    return reply


# --- checks shared by the outage tests ----------------------------------------------------


def process_ids(stack: Stack) -> dict[str, int]:
    """The pid of every process of the stack (gunicorn's master, each worker)."""
    ids = {"gunicorn": stack.server.process.pid}
    for worker in stack.workers.values():
        assert worker.process is not None
        ids[worker.hostname] = worker.process.pid
    return ids


def assert_not_restarted(stack: Stack, before: dict[str, int]) -> None:
    """Recovery happened inside the running processes: none exited or was replaced."""
    assert process_ids(stack) == before
    assert stack.server.process.poll() is None, stack.server.log_text()[-3000:]
    for worker in stack.workers.values():
        assert worker.process is not None and worker.process.poll() is None, worker.log_text()


def assert_health_unavailable(stack: Stack, failing: str) -> None:
    """/health answers 503 and names the one check that fails."""
    health = stack.health()
    assert health.status_code == 503, health.text
    checks = {"database": "ok", "redis": "ok", failing: "unavailable"}
    assert health.json() == {"status": "unavailable", "checks": checks}


def wait_healthy(stack: Stack, timeout: float = 30) -> dict:
    """GET /health until it answers 200; its body."""

    def healthy() -> dict | None:
        try:
            response = stack.health()
        except requests.RequestException:
            return None
        return response.json() if response.status_code == 200 else None

    body = wait_until(healthy, timeout, interval=0.2)
    assert body, f"/health not 200 within {timeout} s after the outage: {stack.health().text}"
    return body


def stored_answers(client: Client, job: dict) -> list[str]:
    """The assistant messages stored in the job's conversation."""
    response = client.get(f"/api/conversations/{job['conversation_id']}")
    assert response.status_code == 200, response.text
    return [m["content"] for m in response.json()["messages"] if m["role"] == "assistant"]


def assert_answered_once(
    client: Client, job: dict, expected: str, follower: Follower | None
) -> None:
    """A job succeeded with `expected` exactly once: in the job, its conversation, its streams."""
    assert job["status"] == "succeeded", job
    assert job["output"] == expected, job
    assert job["error"] is None, job
    assert stored_answers(client, job) == [expected], job
    if follower is not None:
        events = follower.finish(timeout=30)
        assert events[-1].event == "done", [event.event for event in events]
        # What the client assembled, discarding what each reset told it to.
        assert text_of(events) == expected, [event.event for event in events]


def wait_answered_once(
    client: Client, job_id: str, message: str, words: int, follower: Follower | None, timeout: float
) -> dict:
    """Wait for a job to end, then assert_answered_once with the reply to `message`; the job."""
    job = wait_ended(client, job_id, timeout=timeout)
    assert_answered_once(client, job, expected_reply(message, words), follower)
    return job


def assert_serves_after_outage(
    stack: Stack, client: Client, app, processes: dict[str, int], words: int
) -> None:
    """After an outage: new work is accepted and served on both tiers, by the same
    processes as before it, and no job is left queued or running."""
    for tier in ("light", "heavy"):
        message = unique(f"{tier} after the restart")
        job_id = submit(client, message, model=tier)["id"]
        wait_answered_once(client, job_id, message, words, None, timeout=30)
    assert stuck_jobs(app) == []
    assert_not_restarted(stack, processes)
