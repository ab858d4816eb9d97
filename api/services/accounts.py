"""Accounts: registration, login, profile and password changes."""

from __future__ import annotations

import uuid

from sqlalchemy.exc import IntegrityError

from api.services import passwords, sessions
from core.db import db
from core.errors import Conflict, InvalidInput, Unauthorized
from core.models import User
from core.repositories import users as users_repo

BAD_CREDENTIALS = "Invalid email or password."


def normalize_email(email: str) -> str:
    return email.strip().lower()


def _check_new_password(password: str, field: str) -> None:
    problems = passwords.password_problems(password)
    if problems:
        raise InvalidInput(
            "The password does not meet the rules.", details={"json": {field: problems}}
        )


def register(email: str, password: str, name: str | None, *, role: str = "user") -> User:
    email = normalize_email(email)
    _check_new_password(password, "password")
    if users_repo.get_by_email(email) is not None:
        raise Conflict("An account with this email already exists.")
    user = User(
        email=email,
        password_hash=passwords.hash_password(password),
        name=(name or "").strip() or email.split("@", 1)[0],
        role=role,
    )
    try:
        users_repo.add(user)
        db.session.commit()
    except IntegrityError as exc:  # two registrations of one email raced past the check
        db.session.rollback()
        raise Conflict("An account with this email already exists.") from exc
    return user


def exists(email: str) -> bool:
    return users_repo.get_by_email(normalize_email(email)) is not None


def authenticate(email: str, password: str) -> User:
    """The user these credentials belong to; one generic 401 for every kind of failure."""
    user = users_repo.get_by_email(normalize_email(email))
    if user is None:
        passwords.burn_verify_time()
        raise Unauthorized(BAD_CREDENTIALS)
    if not passwords.verify_password(password, user.password_hash) or not user.is_active:
        raise Unauthorized(BAD_CREDENTIALS)
    return user


def user_for_token(payload: dict) -> User | None:
    """The user a verified JWT speaks for, or None when the token no longer counts.

    A deactivated user, or a token older than the user's last password or role change,
    is refused even though the signature is valid.
    """
    try:
        user = users_repo.get(uuid.UUID(payload["sub"]))
    except (KeyError, ValueError):
        return None
    if user is None or not user.is_active or payload.get("ver") != user.token_version:
        return None
    return user


def update_profile(user: User, *, name: str) -> User:
    user.name = name.strip()
    if not user.name:
        raise InvalidInput(
            "Name must not be blank.", details={"json": {"name": ["Must not be blank."]}}
        )
    db.session.commit()
    return user


def change_password(user: User, *, current_password: str, new_password: str) -> User:
    if not passwords.verify_password(current_password, user.password_hash):
        raise InvalidInput(
            "The current password is wrong.",
            details={"json": {"current_password": ["Does not match the current password."]}},
        )
    _check_new_password(new_password, "new_password")
    user.password_hash = passwords.hash_password(new_password)
    # Every token issued before this moment stops working...
    user.token_version += 1
    # ...and every session ends with the new password (committed together): whoever knew
    # the old one keeps no session, and the owner's listing says why each one ended.
    sessions.end_all(user.id, "password_changed")
    return user
