"""What admins may do to accounts."""

from __future__ import annotations

import uuid

from api.extensions import db
from api.models import User
from api.repositories import users as users_repo
from api.repositories.pagination import Page
from api.services import accounts
from api.services.errors import Conflict, NotFound


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
    if changes:
        for name, value in changes.items():
            setattr(user, name, value)
        # Tokens carry the role; old ones must not keep the old role or outlive deactivation.
        user.token_version += 1
    if rate_limit_per_minute is not UNSET:
        user.rate_limit_per_minute = rate_limit_per_minute
    db.session.commit()
    return user


def create_or_promote_admin(
    email: str, password: str | None, name: str | None
) -> tuple[User, bool]:
    """Make `email` an admin, creating the account when `password` is given. (user, created)"""
    existing = users_repo.get_by_email(accounts.normalize_email(email))
    if existing is not None:
        if existing.role != "admin" or not existing.is_active:
            existing.role = "admin"
            existing.is_active = True
            existing.token_version += 1
            db.session.commit()
        return existing, False
    if not password:
        raise NotFound("No account with this email; give a password to create it.")
    return accounts.register(email, password, name, role="admin"), True
