"""One Redis reader per process for every job stream its clients follow.

A blocking XREAD per open stream would hold a Redis connection per client and cost a round
trip per token per client. Instead one reader (a greenlet under gevent, a thread under
gthread) issues a single XREAD over all the streams this process follows and hands each
entry to the followers' inboxes. A new follower wakes the reader through a small stream
of its own, so its first events do not wait out a blocked read.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Iterator

import redis
from flask import Flask, current_app

from config.settings import get_settings
from core.redis import redis_store
from pipeline.events import Event, decode_entry
from pipeline.streams import stream_key

log = logging.getLogger(__name__)

# Entries per stream and read: a late follower's backlog comes in pieces of this size.
READ_COUNT = 500
# How long one XREAD blocks; below the Redis socket timeout, which would cut it short.
MAX_BLOCK_MS = 1000
# After a read, the reader waits this long so the next one carries more entries: a read
# costs per stream followed, and returns as soon as any one stream has something new.
GATHER_SECONDS = 0.005
# A reader that lost Redis tries again after this pause.
RETRY_SECONDS = 0.5
# A reader with nothing to follow for this long stops; the next follower starts another.
IDLE_SECONDS = 5.0
WAKE_TTL_SECONDS = 24 * 3600

_relays_lock = threading.Lock()


def _order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class Follower:
    """One client's place in one stream; the reader fills its inbox."""

    def __init__(self, key: str, after: str):
        self.key = key
        self.last = after
        self.inbox: queue.SimpleQueue[Event] = queue.SimpleQueue()


class Relay:
    """The process's reader and the followers it serves."""

    def __init__(self, client: redis.Redis, prefix: str, block_ms: int):
        self._client = client
        self._block_ms = block_ms
        self._wake_key = f"{prefix}relay:wake:{uuid.uuid4().hex}"
        self._followers: dict[str, set[Follower]] = {}
        # Where the next read starts in each stream: the furthest back of its followers.
        self._positions: dict[str, str] = {}
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None

    def follow(self, key: str, after: str) -> Follower:
        follower = Follower(key, after)
        with self._lock:
            self._followers.setdefault(key, set()).add(follower)
            known = self._positions.get(key)
            if known is None or _order(after) < _order(known):
                self._positions[key] = after
            if self._reader is None:
                self._reader = threading.Thread(target=self._run, daemon=True, name="relay")
                self._reader.start()
        self._wake()
        return follower

    def leave(self, follower: Follower) -> None:
        with self._lock:
            followers = self._followers.get(follower.key)
            if followers is not None:
                followers.discard(follower)
                if not followers:
                    del self._followers[follower.key]
                    del self._positions[follower.key]

    def _wake(self) -> None:
        pipe = self._client.pipeline(transaction=False)
        pipe.xadd(self._wake_key, {"w": "1"}, maxlen=8, approximate=False)
        pipe.expire(self._wake_key, WAKE_TTL_SECONDS)
        pipe.execute()

    def _run(self) -> None:
        wake_last = "0-0"
        idle_since = time.monotonic()
        while True:
            with self._lock:
                positions = dict(self._positions)
                if positions:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > IDLE_SECONDS:
                    self._reader = None
                    return
            try:
                response = self._client.xread(
                    {self._wake_key: wake_last, **positions},
                    block=self._block_ms,
                    count=READ_COUNT,
                )
            except redis.RedisError as exc:
                # Followers keep their places and get heartbeats meanwhile.
                log.warning("relay read failed: %s", exc.__class__.__name__)
                time.sleep(RETRY_SECONDS)
                continue
            for key, entries in response or []:
                if key == self._wake_key:
                    wake_last = entries[-1][0]
                else:
                    self._deliver(key, [decode_entry(i, fields) for i, fields in entries])
            if response:
                time.sleep(GATHER_SECONDS)

    def _deliver(self, key: str, events: list[Event]) -> None:
        with self._lock:
            followers = list(self._followers.get(key, ()))
        for follower in followers:
            last = _order(follower.last)
            for event in events:
                if _order(event.id) > last:
                    follower.inbox.put(event)
                    follower.last = event.id
        with self._lock:
            # The furthest back of the followers now, including any that joined during
            # this read with an earlier place than the read started from.
            current = self._followers.get(key)
            if current:
                self._positions[key] = min((f.last for f in current), key=_order)


def _relay(app: Flask) -> Relay:
    """The relay of this app in this process (a forked worker starts its own)."""
    with _relays_lock:
        relays = app.extensions.setdefault("relays", {})
        pid = os.getpid()
        if pid not in relays:
            timeout_ms = get_settings(app).redis.socket_timeout * 1000
            block_ms = max(min(MAX_BLOCK_MS, timeout_ms - 500), 100)
            relays[pid] = Relay(redis_store.client, get_settings(app).redis.key_prefix, block_ms)
        return relays[pid]


def read_events(job_id: str, *, after: str = "0-0", wait: float) -> Iterator[Event | None]:
    """A job's events after `after`; None whenever `wait` seconds pass with nothing new.

    Stops after a terminal event. The caller decides when to give up on silence.
    """
    relay = _relay(current_app)
    follower = relay.follow(stream_key(get_settings().redis.key_prefix, job_id), after)
    try:
        while True:
            try:
                event = follower.inbox.get(timeout=wait)
            except queue.Empty:
                yield None
                continue
            yield event
            if event.is_terminal:
                return
    finally:
        relay.leave(follower)
