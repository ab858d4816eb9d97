"""A job's stop reaches it wherever it waits (worker/stopping.py).

Real sockets and the machine's Redis: a server that accepts a request and never answers
stands in for a stalled model server; the watcher reads a real cancel flag.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis

from tests.conftest import own_key_prefix
from worker.agent.errors import JobCancelled, JobTimedOut
from worker.agent.search import WebSearch
from worker.stopping import StoppableBackend, StopScope, StopWatcher, make_stoppable

POLL = 0.05


class SilentServer:
    """Accepts connections, reads requests, never answers; records when a client left."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.requests = threading.Event()
        self.client_left = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    self.client_left.set()
                    return
                self.requests.set()

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


@pytest.fixture
def prefix(redis_client: redis.Redis) -> Iterator[str]:
    with own_key_prefix(redis_client, f"stops-{uuid.uuid4().hex[:8]}") as own:
        yield own


def run_in_thread(target) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def body() -> None:
        started = time.monotonic()
        try:
            outcome["value"] = target()
        except BaseException as exc:  # the test asserts on it
            outcome["error"] = exc
        outcome["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, outcome


def test_the_pools_of_an_httpx_client_can_be_made_stoppable():
    client = make_stoppable(httpx.Client(proxy=None))
    assert isinstance(client._transport._pool._network_backend, StoppableBackend)
    make_stoppable(client)  # twice is harmless: not wrapped again
    assert not isinstance(client._transport._pool._network_backend._inner, StoppableBackend)


def test_a_cancel_cuts_a_request_waiting_for_its_first_byte(redis_client, prefix, silent_server):
    watcher = StopWatcher(redis_client, poll_seconds=POLL)
    http = make_stoppable(httpx.Client(timeout=30))
    scope = StopScope("job-1", f"{prefix}cancel:job-1", time.monotonic() + 60)

    def request() -> None:
        with watcher.watching(scope):
            http.post(f"http://127.0.0.1:{silent_server.port}/api/chat", json={"x": 1})

    thread, outcome = run_in_thread(request)
    assert silent_server.requests.wait(5)
    time.sleep(0.3)
    assert thread.is_alive()  # waiting on the silent server
    cancelled_at = time.monotonic()
    redis_client.set(scope.cancel_flag, "1")
    thread.join(5)
    assert not thread.is_alive()
    assert isinstance(outcome.get("error"), JobCancelled), outcome
    assert time.monotonic() - cancelled_at < 1.0
    # The server saw its connection closed, as a model server would stop generating.
    assert silent_server.client_left.wait(2)


def test_the_deadline_cuts_a_stalled_request_as_a_time_out(redis_client, prefix, silent_server):
    watcher = StopWatcher(redis_client, poll_seconds=POLL)
    http = make_stoppable(httpx.Client(timeout=30))
    scope = StopScope("job-2", f"{prefix}cancel:job-2", time.monotonic() + 0.5)

    def request() -> None:
        with watcher.watching(scope):
            http.get(f"http://127.0.0.1:{silent_server.port}/")

    thread, outcome = run_in_thread(request)
    thread.join(5)
    assert isinstance(outcome.get("error"), JobTimedOut), outcome
    assert outcome["seconds"] < 1.5
    assert silent_server.client_left.wait(2)


def test_only_the_cancelled_job_is_cut(redis_client, prefix, silent_server):
    watcher = StopWatcher(redis_client, poll_seconds=POLL)
    http = make_stoppable(httpx.Client(timeout=30))
    scopes = [
        StopScope(f"job-{n}", f"{prefix}cancel:job-{n}", time.monotonic() + 60) for n in (3, 4)
    ]

    def request(scope: StopScope):
        def go() -> None:
            with watcher.watching(scope):
                http.get(f"http://127.0.0.1:{silent_server.port}/{scope.job_id}")

        return go

    threads = [run_in_thread(request(scope)) for scope in scopes]
    time.sleep(0.3)
    redis_client.set(scopes[0].cancel_flag, "1")
    threads[0][0].join(5)
    assert isinstance(threads[0][1].get("error"), JobCancelled)
    time.sleep(0.3)
    assert threads[1][0].is_alive(), threads[1][1]  # the other job still waits
    scopes[1].stop(JobCancelled)
    threads[1][0].join(5)
    assert isinstance(threads[1][1].get("error"), JobCancelled)


def test_a_stop_before_the_request_never_sends_it(redis_client, prefix, silent_server):
    watcher = StopWatcher(redis_client, poll_seconds=POLL)
    http = make_stoppable(httpx.Client(timeout=30))
    scope = StopScope("job-5", f"{prefix}cancel:job-5", time.monotonic() + 60)
    scope.stop(JobCancelled)
    with pytest.raises(JobCancelled), watcher.watching(scope):
        http.get(f"http://127.0.0.1:{silent_server.port}/")
    assert not silent_server.requests.is_set()


def test_the_watcher_survives_redis_being_away(prefix):
    unreachable = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    watcher = StopWatcher(unreachable, poll_seconds=POLL)
    scope = StopScope("job-6", f"{prefix}cancel:job-6", time.monotonic() + 0.3)
    with pytest.raises(JobTimedOut), watcher.watching(scope):
        while True:  # deadlines still hold without Redis
            time.sleep(0.02)
            scope.raise_if_stopped()


class SlowBackend:
    def __init__(self) -> None:
        self.release = threading.Event()

    def text(self, query: str, max_results: int) -> list[dict]:
        self.release.wait(30)
        return []

    news = text


def test_a_stop_ends_a_slow_web_search(redis_client, prefix):
    watcher = StopWatcher(redis_client, poll_seconds=POLL)
    scope = StopScope("job-7", f"{prefix}cancel:job-7", time.monotonic() + 60)
    backend = SlowBackend()
    search = WebSearch(backend, timeout=30, stop_check=scope.raise_if_stopped)

    def searching() -> str:
        with watcher.watching(scope):
            return search.run("slow query")

    thread, outcome = run_in_thread(searching)
    time.sleep(0.3)
    cancelled_at = time.monotonic()
    redis_client.set(scope.cancel_flag, "1")
    thread.join(5)
    backend.release.set()
    assert isinstance(outcome.get("error"), JobCancelled), outcome
    assert time.monotonic() - cancelled_at < 1.0
