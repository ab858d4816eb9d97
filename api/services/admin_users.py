"""What admins may do to accounts."""

from __future__ import annotations

import uuid

from api.services import accounts, sessions
from core.db import db
from core.errors import Conflict, NotFound
from core.models import User
from core.repositories import users as users_repo
from core.repositories.pagination import Page


def list_page(page: int, page_size: int, **filters) -> Page:
    return users_repo.list_page(page, page_size, **filters)


UNSET = object()


def update(
    admin: User,
    user_id: uuid.UUID,
    *,
    role: str | None = None,
    is_active: bool | None = None,
    rate_limit_per_minute: int | object | None = UNSET,
) -> User:
    user = users_repo.get(user_id)
    if user is None:
        raise NotFound("User not found.")
    changes = {
        name: value
        for name, value in (("role", role), ("is_active", is_active))
        if value is not None and value != getattr(user, name)
    }
    # An admin demoting or deactivating themselves could leave nobody able to administer.
    if changes and user.id == admin.id:
        raise Conflict("Admins cannot change their own role or active status.")
    if rate_limit_per_minute is not UNSET:
        user.rate_limit_per_minute = rate_limit_per_minute
    if changes:
        for name, value in changes.items():
            setattr(user, name, value)
        # Tokens carry the role; old ones must not keep the old role or outlive deactivation.
        user.token_version += 1
        # Their sessions end too (committed with the change): a demoted user keeps no
        # session of the old role, a deactivated one none to come back to.
        if changes.get("is_active") is False:
            sessions.end_all(user.id, "deactivated")
        elif "role" in changes:
            sessions.end_all(user.id, "role_changed")
    db.session.commit()
    return user


def end_sessions(user_id: uuid.UUID) -> int:
    """End every login session of a user (their API keys keep working); how many."""
    if users_repo.get(user_id) is None:
        raise NotFound("User not found.")
    return sessions.end_all(user_id, "admin")


def create_or_promote_admin(
    email: str, password: str | None, name: str | None
) -> tuple[User, bool]:
    """Make `email` an admin, creating the account when `password` is given. (user, created)"""
    existing = users_repo.get_by_email(accounts.normalize_email(email))
    if existing is not None:
        if existing.role != "admin" or not existing.is_active:
            promoted = existing.role != "admin"
            existing.role = "admin"
            existing.is_active = True
            existing.token_version += 1
            if promoted:  # as for a role change by an admin (update above)
                sessions.end_all(existing.id, "role_changed")
            db.session.commit()
        return existing, False
    if not password:
        raise NotFound("No account with this email; give a password to create it.")
    return accounts.register(email, password, name, role="admin"), True
