"""Login sessions: one per login, named by the `fam` claim of every token it issues.

PostgreSQL (login_sessions) is the truth about whether a session's tokens count: a login
writes the row before any token exists, a refresh swaps the current refresh token in one
conditional UPDATE, and logout, reuse detection, password changes and admins end it
there. Redis only caches the answer for the request path (api/services/session_cache.py).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from api.services import session_cache
from config.settings import get_settings
from core.db import db
from core.errors import NotFound, Unauthorized
from core.models import LoginSession, User
from core.models.base import utcnow
from core.models.login_session import USER_AGENT_MAX
from core.repositories import login_sessions as sessions_repo

# Ended sessions stay in their owner's listing this long (time to notice a refresh_reuse),
# then the user's next login deletes them: the table does not grow without bound.
KEEP_ENDED = timedelta(days=7)
IP_MAX = 45  # the column's width: the longest IPv6 text


@dataclass(frozen=True)
class ListedSession:
    """A session as its owner sees it: whether it still counts, and whether it is the
    one the listing was asked with."""

    session: LoginSession
    active: bool
    current: bool

    def __getattr__(self, name: str):
        return getattr(self.session, name)


def _clip(value: str | None, limit: int) -> str | None:
    # Headers are the client's to choose: PostgreSQL refuses NUL in text, and the columns
    # have a width (a proxy hop count set too high lets X-Forwarded-For through as is).
    return (value or "").replace("\x00", "")[:limit] or None


def _expires_at(now: datetime) -> datetime:
    return now + timedelta(seconds=get_settings().auth.refresh_token_seconds)


def _session_id(fam: object) -> uuid.UUID | None:
    """The session a `fam` claim names; None for anything this gateway never issued."""
    if not isinstance(fam, str):
        return None
    try:
        return uuid.UUID(fam)
    except ValueError:
        return None


def _revoked() -> Unauthorized:
    return Unauthorized("The token has been revoked.", code="token_revoked")


def start(user: User, refresh_jti: str, *, ip: str | None, user_agent: str | None) -> LoginSession:
    """A new session whose first refresh token has `refresh_jti`; committed before any
    token of it is handed out, so a token never names a session that is not stored."""
    now = utcnow()
    sessions_repo.delete_ended_before(user.id, now - KEEP_ENDED)
    session = LoginSession(
        user_id=user.id,
        created_at=now,
        last_used_at=now,
        expires_at=_expires_at(now),
        current_refresh_jti=refresh_jti,
        ip=_clip(ip, IP_MAX),
        user_agent=_clip(user_agent, USER_AGENT_MAX),
    )
    sessions_repo.add(session)
    db.session.commit()
    return session


def is_active(fam: object) -> bool:
    """Whether the session a token names still counts: one Redis GET when cached, else
    PostgreSQL. No row (a token from before sessions were stored, a pruned session) is
    ended."""
    session_id = _session_id(fam)
    if session_id is None:
        return False
    key = str(session_id)
    cached = session_cache.lookup(key)
    if cached is not None:
        return cached
    found = sessions_repo.state(session_id)
    if found is None or found[0] is not None or found[1] <= utcnow():
        session_cache.remember_ended([key])
        return False
    session_cache.remember_active(key, found[1])
    return True


def rotate(
    user: User,
    fam: object,
    old_jti: str,
    new_jti: str,
    *,
    ip: str | None,
    user_agent: str | None,
) -> None:
    """Make `new_jti` the session's refresh token in place of `old_jti`.

    Anything but the session's current refresh token — one already exchanged, whether it
    was stolen or lost a race with a concurrent refresh — ends the whole session
    (refresh_reuse): its holder and the thief cannot tell themselves apart, so neither
    keeps it. 401 token_revoked.
    """
    session_id = _session_id(fam)
    if session_id is None:
        raise _revoked()
    now = utcnow()
    rotated = sessions_repo.rotate(
        session_id,
        user.id,
        old_jti,
        new_jti,
        now=now,
        expires_at=_expires_at(now),
        ip=_clip(ip, IP_MAX),
        user_agent=_clip(user_agent, USER_AGENT_MAX),
    )
    if rotated:
        db.session.commit()
        return
    session = sessions_repo.get_for_user(user.id, session_id)
    if session is None or session.revoked_at is not None:
        db.session.rollback()
        raise _revoked()
    if session.expires_at <= now:
        db.session.rollback()
        raise Unauthorized("The login session has expired.", code="token_expired")
    _end(user.id, "refresh_reuse", now, session_id)
    raise Unauthorized(
        "The refresh token was already used; its login session is revoked.",
        code="token_revoked",
    )


def _end(
    user_id: uuid.UUID, reason: str, now: datetime, session_id: uuid.UUID | None = None
) -> int:
    """End the user's active sessions (or only `session_id`); how many. Commits the
    transaction, with whatever the caller changed in it, and only then marks them ended in
    the cache: a reader that finds no mark reads the committed revocation."""
    ended = sessions_repo.revoke(user_id, reason, now, session_id=session_id)
    db.session.commit()
    session_cache.remember_ended(str(ended_id) for ended_id in ended)
    return len(ended)


def end(user_id: uuid.UUID, fam: object, reason: str) -> None:
    """End one session of the user's (the caller checked it exists or does not care)."""
    session_id = _session_id(fam)
    if session_id is not None:
        _end(user_id, reason, utcnow(), session_id)


def end_all(user_id: uuid.UUID, reason: str) -> int:
    """End every active session of the user; how many. Commits the caller's changes too."""
    return _end(user_id, reason, utcnow())


def list_for(user: User, current_fam: object) -> list[ListedSession]:
    """The user's sessions, active ones first; `current` marks the session of `current_fam`."""
    now = utcnow()
    current = _session_id(current_fam)
    return [
        ListedSession(session=session, active=session.is_active(now), current=session.id == current)
        for session in sessions_repo.list_for_user(user.id, now)
    ]


def end_own(user: User, session_id: uuid.UUID) -> None:
    """End one of the user's sessions; 404 for one that is not theirs, as for no session."""
    if sessions_repo.get_for_user(user.id, session_id) is None:
        raise NotFound("Session not found.")
    _end(user.id, "user", utcnow(), session_id)
