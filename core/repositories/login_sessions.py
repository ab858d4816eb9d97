from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import case, delete, or_, select, update

from core.db import db
from core.models import LoginSession


def add(session: LoginSession) -> LoginSession:
    db.session.add(session)
    return session


def get_for_user(user_id: uuid.UUID, session_id: uuid.UUID) -> LoginSession | None:
    return db.session.scalar(
        select(LoginSession).where(LoginSession.id == session_id, LoginSession.user_id == user_id)
    )


def state(session_id: uuid.UUID) -> tuple[datetime | None, datetime] | None:
    """(revoked_at, expires_at) of a session, or None when there is no such session."""
    row = db.session.execute(
        select(LoginSession.revoked_at, LoginSession.expires_at).where(
            LoginSession.id == session_id
        )
    ).first()
    return None if row is None else (row.revoked_at, row.expires_at)


def list_for_user(user_id: uuid.UUID, now: datetime) -> list[LoginSession]:
    """The user's sessions, the active ones first, each group most recently used first."""
    active = case((LoginSession.revoked_at.is_(None) & (LoginSession.expires_at > now), 0), else_=1)
    query = (
        select(LoginSession)
        .where(LoginSession.user_id == user_id)
        .order_by(active, LoginSession.last_used_at.desc(), LoginSession.id)
    )
    return list(db.session.scalars(query))


def rotate(
    session_id: uuid.UUID,
    user_id: uuid.UUID,
    old_jti: str,
    new_jti: str,
    *,
    now: datetime,
    expires_at: datetime,
    ip: str | None,
    user_agent: str | None,
) -> bool:
    """Make `new_jti` the session's refresh token if `old_jti` still is and it is active.

    One conditional UPDATE: of two requests presenting the same refresh token, the second
    waits for the first's row lock, then finds the jti changed and matches nothing.
    """
    rotated = db.session.execute(
        update(LoginSession)
        .where(
            LoginSession.id == session_id,
            LoginSession.user_id == user_id,
            LoginSession.current_refresh_jti == old_jti,
            LoginSession.revoked_at.is_(None),
            LoginSession.expires_at > now,
        )
        .values(
            current_refresh_jti=new_jti,
            last_used_at=now,
            expires_at=expires_at,
            ip=ip,
            user_agent=user_agent,
        )
        .returning(LoginSession.id)
        .execution_options(synchronize_session=False)
    )
    return rotated.first() is not None


def revoke(
    user_id: uuid.UUID, reason: str, now: datetime, *, session_id: uuid.UUID | None = None
) -> list[uuid.UUID]:
    """End the user's active sessions (or only `session_id`); the ids of those it ended.

    An ended or expired session keeps its first reason.
    """
    query = update(LoginSession).where(
        LoginSession.user_id == user_id,
        LoginSession.revoked_at.is_(None),
        LoginSession.expires_at > now,
    )
    if session_id is not None:
        query = query.where(LoginSession.id == session_id)
    ended = db.session.execute(
        query.values(revoked_at=now, revoked_reason=reason)
        .returning(LoginSession.id)
        .execution_options(synchronize_session=False)
    )
    return list(ended.scalars())


def delete_ended_before(user_id: uuid.UUID, cutoff: datetime) -> int:
    """Delete the user's sessions that expired or were revoked before `cutoff`."""
    deleted = db.session.execute(
        delete(LoginSession)
        .where(
            LoginSession.user_id == user_id,
            or_(LoginSession.expires_at < cutoff, LoginSession.revoked_at < cutoff),
        )
        .execution_options(synchronize_session=False)
    )
    return deleted.rowcount
