from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from core.db import db
from core.models.base import created_at_column, uuid_pk

# Why a session ended, as its owner sees it in the listing.
REVOKE_REASONS = (
    "logout",  # POST /api/auth/logout with one of its access tokens
    "refresh_reuse",  # a refresh token that was not the current one came back (stolen?)
    "user",  # the owner ended it from the session listing
    "admin",  # an admin ended the user's sessions
    "password_changed",
    "deactivated",  # an admin deactivated the account
    "role_changed",
)
# Longest user agent kept: enough to tell a browser from a script in the listing.
USER_AGENT_MAX = 200


class LoginSession(db.Model):
    """One login: the refresh-token family whose id every token of it carries as `fam`.

    The truth about whether the session's tokens still count; Redis only caches it.
    """

    __tablename__ = "login_sessions"
    __table_args__ = (
        Index("ix_login_sessions_user_id", "user_id"),
        CheckConstraint(
            "(revoked_at IS NULL) = (revoked_reason IS NULL)",
            name="ck_login_sessions_revoked_reason",
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    created_at: Mapped[datetime] = created_at_column()
    # Set at login and at each refresh: the request path writes nothing, so this is as
    # recent as the last refresh (at most one access-token lifetime behind).
    last_used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # Sliding: REFRESH_TOKEN_DAYS after the login or the last refresh.
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # The jti of the one refresh token that may be exchanged next; any other refresh token
    # of this family that comes back is a reused (stolen, or raced) one.
    current_refresh_jti: Mapped[str] = mapped_column(String(36), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_reason: Mapped[str | None] = mapped_column(String(32))
    # Where the session was last refreshed from (or logged in), for its owner to recognise it.
    ip: Mapped[str | None] = mapped_column(String(45))  # the longest IPv6 text
    user_agent: Mapped[str | None] = mapped_column(String(USER_AGENT_MAX))

    def is_active(self, now: datetime) -> bool:
        return self.revoked_at is None and self.expires_at > now
