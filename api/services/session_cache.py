"""Redis in front of the login_sessions table: whether a session's tokens still count.

Only a cache: a missing key is read from PostgreSQL, never taken as "allowed", so Redis
losing its data loses no revocation. Writes are ordered so that a stale "active" can never
replace a revocation:

- a revocation commits to PostgreSQL first, then SETs the key to "revoked" (plain SET:
  it overwrites an "active" written by anyone);
- a reader that found the session active in PostgreSQL writes "active" with SET NX and a
  short TTL (SESSION_CACHE_SECONDS): if a revocation wrote its key in the meantime, the NX
  write does nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from config.settings import get_settings
from core.models.base import utcnow
from core.redis import redis_store

ACTIVE = "active"
REVOKED = "revoked"


def _key(session_id: str) -> str:
    return redis_store.key("jwt", "session", session_id)


def _revoked_ttl() -> int:
    # After an access token's lifetime no access token of an ended session is left to
    # check; refresh tokens live longer, but a miss reads PostgreSQL, which says "revoked".
    return get_settings().auth.access_token_seconds


def lookup(session_id: str) -> bool | None:
    """True (active) or False (ended) when the cache knows; None on a miss."""
    state = redis_store.client.get(_key(session_id))
    if state is None:
        return None
    return state == ACTIVE


def remember_active(session_id: str, expires_at: datetime) -> None:
    """Cache what a reader just found in PostgreSQL, unless a revocation got there first."""
    seconds_left = int((expires_at - utcnow()).total_seconds())
    ttl = min(get_settings().auth.session_cache_seconds, seconds_left)
    if ttl >= 1:  # a session ending within the second is read again
        redis_store.client.set(_key(session_id), ACTIVE, nx=True, ex=ttl)


def remember_ended(session_ids: Iterable[str]) -> None:
    """After the commit of a revocation, or a read that found a session ended or missing.

    Ended is final (a session is never revived, and a missing one never appears: its row is
    written before any of its tokens exist), so a plain SET is right for every caller.
    """
    session_ids = list(session_ids)
    if not session_ids:
        return
    pipe = redis_store.client.pipeline(transaction=False)
    for session_id in session_ids:
        pipe.set(_key(session_id), REVOKED, ex=_revoked_ttl())
    pipe.execute()
