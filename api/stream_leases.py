"""The cap on open SSE streams per account, counted in Redis across every API process.

Each open stream holds a lease: a member of the sorted set `streams:<user id>`, scored by
the time (Redis' clock, in ms) it lapses. A Lua script drops lapsed members, counts the
rest and adds the new lease only below the cap, in one step. The lease is removed when
the response is closed (the stream ended, or the client left and the next write failed).
A process that dies cannot remove its leases, so they lapse after STREAM_LEASE_TTL_SECONDS
unless renewed: one renewer per process renews all the leases it holds in one pipeline
every third of that. No lease outlives the process that holds it by more than the TTL,
so the cap never locks an account out for good; if Redis loses the sets, the renewers
write back the leases of the streams still open.

Nothing here runs per token: a stream costs one script call when it opens, one ZREM when
it closes, and its share of its process's renewal.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
import weakref
from collections import defaultdict

import redis
from flask import Flask, Response, current_app, g

from api.security import current_identity
from api.services import caps
from config.settings import get_settings
from core.errors import TooManyRequests
from core.redis import redis_store

log = logging.getLogger(__name__)

# Both scripts take the time from Redis (one clock for every host) and let the set expire
# with its last lease, so the set of an account nobody streams for does not stay behind.
_NOW_MS = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
"""
_EXPIRE_WITH_LAST = """
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
"""

# KEYS[1] the account's set; ARGV: cap, TTL in ms, lease id. → {admitted 0|1, open streams}
_ACQUIRE = f"""
{_NOW_MS}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
local open = redis.call('ZCARD', KEYS[1])
if open >= tonumber(ARGV[1]) then
  return {{0, open}}
end
redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[3])
{_EXPIRE_WITH_LAST}
return {{1, open + 1}}
"""

# KEYS[1] the account's set; ARGV: TTL in ms, then the lease ids this process still holds.
# A plain ZADD, not XX: a set Redis lost is written back with the streams still open.
_RENEW = f"""
{_NOW_MS}
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[1]), ARGV[i])
end
{_EXPIRE_WITH_LAST}
return #ARGV - 1
"""

_registries_lock = threading.Lock()


def lease_key(prefix: str, user_id: uuid.UUID | str) -> str:
    return f"{prefix}streams:{user_id}"


class StreamLeases:
    """The leases of one process, and the renewer that keeps them alive."""

    def __init__(self, client: redis.Redis, prefix: str, ttl_seconds: float):
        self._client = client
        self._prefix = prefix
        self._ttl_ms = int(ttl_seconds * 1000)
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        # A lease names its host and process, so whoever reads a set can tell whose it is.
        self._owner = f"{socket.gethostname()}:{os.getpid()}"
        self._held: dict[str, str] = {}  # lease id → its set's key
        self._lock = threading.Lock()
        self._renewer: threading.Thread | None = None

    @property
    def renew_every(self) -> float:
        return self._ttl_ms / 3000

    def acquire(self, user_id: uuid.UUID | str, cap: int) -> tuple[str | None, int]:
        """(a new lease id, or None at the cap; the account's open streams, this one included)."""
        key = lease_key(self._prefix, user_id)
        lease_id = f"{self._owner}:{uuid.uuid4().hex}"
        admitted, open_now = self._acquire(keys=[key], args=[cap, self._ttl_ms, lease_id])
        if not admitted:
            return None, int(open_now)
        with self._lock:
            self._held[lease_id] = key
            if self._renewer is None:
                self._renewer = threading.Thread(
                    target=self._run, daemon=True, name="stream-leases"
                )
                self._renewer.start()
        return lease_id, int(open_now)

    def release(self, lease_id: str) -> None:
        """Remove a lease (once; later calls do nothing)."""
        with self._lock:
            key = self._held.pop(lease_id, None)
        if key is None:
            return
        try:
            self._client.zrem(key, lease_id)
        except redis.RedisError as exc:
            # No longer renewed, it lapses within the TTL.
            log.warning("stream lease not released: %s", exc.__class__.__name__)

    def held(self) -> int:
        with self._lock:
            return len(self._held)

    def _run(self) -> None:
        while True:
            time.sleep(self.renew_every)
            with self._lock:
                if not self._held:
                    self._renewer = None  # the next acquire starts another
                    return
                by_key: dict[str, list[str]] = defaultdict(list)
                for lease_id, key in self._held.items():
                    by_key[key].append(lease_id)
            # The renewer outlives any failure. Leases not renewed lapse: the account may
            # open more streams meanwhile, never fewer.
            try:
                self.renew(by_key)
            except redis.RedisError as exc:
                log.warning("stream leases not renewed: %s", exc.__class__.__name__)
            except Exception:
                log.exception("stream leases not renewed")

    def renew(self, by_key: dict[str, list[str]]) -> None:
        """Renew the given leases in one round trip; any released meanwhile are removed
        again, as the renewal may have written them back after their ZREM."""
        pipe = self._client.pipeline(transaction=False)
        for key, lease_ids in by_key.items():
            self._renew(keys=[key], args=[self._ttl_ms, *lease_ids], client=pipe)
        pipe.execute()
        with self._lock:
            gone = [
                (key, lease_id)
                for key, lease_ids in by_key.items()
                for lease_id in lease_ids
                if lease_id not in self._held
            ]
        if gone:
            pipe = self._client.pipeline(transaction=False)
            for key, lease_id in gone:
                pipe.zrem(key, lease_id)
            pipe.execute()


def leases(app: Flask) -> StreamLeases:
    """The stream leases of this app in this process (a forked worker has its own); in
    the app's context."""
    with _registries_lock:
        registries = app.extensions.setdefault("stream_leases", {})
        pid = os.getpid()
        if pid not in registries:
            registries[pid] = StreamLeases(
                redis_store.client,
                get_settings(app).redis.key_prefix,
                get_settings(app).caps.stream_lease_ttl_seconds,
            )
        return registries[pid]


# --- per request ---------------------------------------------------------------------------

# g.stream_lease: the request's lease id; NO_CAP when the caller's role has no cap.
NO_CAP = ""


def reserve() -> None:
    """Take a stream slot for the caller of this request, or refuse with 429.

    Called before anything is done for a stream (a job submitted, events read), so a
    refused client gets a JSON error and nothing else; a second call in the same request
    does nothing. The slot goes with the response (hand_over), or is given back when the
    request ends without one.
    """
    if "stream_lease" in g:
        return
    user = current_identity().user
    cap = caps.limit(user, "OPEN_STREAMS")
    if not cap:
        g.stream_lease = NO_CAP
        return
    lease_id, open_now = leases(current_app._get_current_object()).acquire(user.id, cap)
    if lease_id is None:
        # No Retry-After: a slot comes free when the caller closes a stream, not with time.
        raise TooManyRequests(
            f"You have {open_now} event streams open (the limit is {cap}); close one "
            "before opening another.",
            code="too_many_streams",
            details={"open": open_now, "limit": cap},
        )
    g.stream_lease = lease_id


def hand_over(response: Response) -> None:
    """Hold the request's reserved slot for as long as `response` streams: it is released
    when the response is closed."""
    lease_id = g.pop("stream_lease")
    if lease_id == NO_CAP:
        return
    release = _releaser(current_app._get_current_object(), lease_id)
    # The WSGI server closes a response when it ends or its client is gone; should a
    # response be dropped unclosed (an error after the view), its collection releases it.
    response.call_on_close(release)
    weakref.finalize(response, release)


def _releaser(app: Flask, lease_id: str):
    registry = leases(app)
    return lambda: registry.release(lease_id)


def init_app(app: Flask) -> None:
    @app.teardown_request
    def release_unused(_exc: BaseException | None) -> None:
        # A slot reserved by a request that ended without a stream (an error, say).
        lease_id = g.pop("stream_lease", NO_CAP)
        if lease_id != NO_CAP:
            leases(app).release(lease_id)
