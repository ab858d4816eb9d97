"""Stopping a running job at once, wherever it waits.

A job's thread can wait where it never checks a flag: for a model's first token, inside a
stream that stalled, inside a web search. So the stop comes from outside the job's
thread: one watcher per worker process reads the cancel flags of every job the process
runs (one MGET every STOP_POLL_SECONDS, not a round trip per job) and watches their
deadlines. When a job must stop it marks the job's StopScope, and the scope shuts down
the sockets the job is blocked on right now, so the blocked read returns at once and the
model server sees its connection closed.

The sockets are known because the model clients' connection pools open their
connections through StoppableBackend (`make_stoppable`): each read and write registers
its stream with the scope of the job whose thread performs it (a context variable, which
LangGraph carries into the threads it runs nodes in).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx
import redis

from worker.agent.errors import JobCancelled, JobStopped, JobTimedOut

log = logging.getLogger(__name__)

# How often the watcher reads the cancel flags: the one-second promise is poll + abort +
# the finish's writes, so well under it.
STOP_POLL_SECONDS = 0.2

_current: contextvars.ContextVar[StopScope | None] = contextvars.ContextVar(
    "stop_scope", default=None
)


class StopScope:
    """One job's stop: why it stopped (once), and the network streams it is blocked on."""

    def __init__(self, job_id: str, cancel_flag: str, deadline: float):
        self.job_id, self.cancel_flag, self.deadline = job_id, cancel_flag, deadline
        self.reason: type[JobStopped] | None = None
        self._lock = threading.Lock()
        self._streams: set[StoppableStream] = set()

    def raise_if_stopped(self) -> None:
        if self.reason is not None:
            raise self.reason

    def stop(self, reason: type[JobStopped]) -> None:
        """Mark the job stopped and cut the connections it waits on (idempotent)."""
        with self._lock:
            if self.reason is not None:
                return
            self.reason = reason
            streams = list(self._streams)
        for stream in streams:
            stream.abort()

    @contextlib.contextmanager
    def blocking_on(self, stream: StoppableStream) -> Iterator[None]:
        with self._lock:
            stopped = self.reason is not None
            if not stopped:
                self._streams.add(stream)
        if stopped:  # stopped before this read began: do not start waiting
            stream.abort()
            raise self.reason  # type: ignore[misc]
        try:
            yield
        finally:
            with self._lock:
                self._streams.discard(stream)


def current_scope() -> StopScope | None:
    return _current.get()


class StoppableStream(httpcore.NetworkStream):
    """A connection whose reads and writes the current job's stop can interrupt."""

    def __init__(self, inner: httpcore.NetworkStream):
        self._inner = inner

    def _blocking(self) -> contextlib.AbstractContextManager[None]:
        scope = _current.get()
        return scope.blocking_on(self) if scope is not None else contextlib.nullcontext()

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        with self._blocking():
            return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        with self._blocking():
            self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        return StoppableStream(self._inner.start_tls(*args, **kwargs))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)

    def abort(self) -> None:
        """Shut the socket down under a blocked reader: its read returns at once, and the
        peer sees the connection closed. The pool drops the broken connection."""
        sock = self._inner.get_extra_info("socket")
        if sock is None:
            return
        with contextlib.suppress(OSError):
            # socket.socket's own shutdown, also for a TLS socket: SSLSocket.shutdown would
            # tear down its SSL object under the thread that is reading with it.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


class StoppableBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend):
        self._inner = inner

    def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        return StoppableStream(self._inner.connect_tcp(*args, **kwargs))

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        return StoppableStream(self._inner.connect_unix_socket(*args, **kwargs))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def make_stoppable(client: httpx.Client) -> httpx.Client:
    """Open `client`'s connections through StoppableBackend (its transport and the proxy
    transports it mounted). httpx has no public hook for httpcore's network backend; a
    test checks that the pools still carry this attribute."""
    transports = [client._transport, *client._mounts.values()]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if backend is None:
            raise RuntimeError(f"cannot make {type(transport).__name__} stoppable")
        if not isinstance(backend, StoppableBackend):
            pool._network_backend = StoppableBackend(backend)
    return client


class StopWatcher:
    """The process's watcher of its running jobs' cancel flags and deadlines."""

    def __init__(self, client: redis.Redis, poll_seconds: float = STOP_POLL_SECONDS):
        self._client, self._poll = client, poll_seconds
        self._scopes: dict[str, StopScope] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._redis_failing = False

    @contextlib.contextmanager
    def watching(self, scope: StopScope) -> Iterator[StopScope]:
        """Watch `scope` while the block runs. An error the stop itself caused (a read cut
        short, the model client's complaint about it) comes out as the stop's reason."""
        token = _current.set(scope)
        with self._lock:
            self._scopes[scope.job_id] = scope
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True, name="job-stops")
                self._thread.start()
        try:
            yield scope
        except JobStopped:
            raise
        except Exception as exc:
            if scope.reason is not None:
                raise scope.reason from exc
            raise
        finally:
            with self._lock:
                self._scopes.pop(scope.job_id, None)
            _current.reset(token)

    def _run(self) -> None:
        while True:
            time.sleep(self._poll)
            with self._lock:
                scopes = list(self._scopes.values())
                if not scopes:
                    self._thread = None  # the next job starts another
                    return
            try:
                self.sweep(scopes)
            except Exception:  # the watcher must outlive any one failure
                log.exception("job stop watcher failed")

    def sweep(self, scopes: Iterable[StopScope]) -> None:
        """Stop the scopes that are past their deadline or whose job was cancelled."""
        scopes = [scope for scope in scopes if scope.reason is None]
        now = time.monotonic()
        for scope in scopes:
            if now >= scope.deadline:
                scope.stop(JobTimedOut)
        running = [scope for scope in scopes if scope.reason is None]
        if not running:
            return
        try:
            flags = self._client.mget([scope.cancel_flag for scope in running])
        except redis.RedisError as exc:
            # Redis away: a cancel cannot have been asked for through it; deadlines still hold.
            if not self._redis_failing:
                log.warning("job stop watcher cannot read cancel flags: %s", type(exc).__name__)
            self._redis_failing = True
            return
        self._redis_failing = False
        for scope, flag in zip(running, flags, strict=True):
            if flag is not None:
                scope.stop(JobCancelled)
