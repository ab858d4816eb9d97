"""API keys: `gw_` + 43 random URL-safe characters, stored only as a SHA-256 hash.

SHA-256 rather than bcrypt: the secret has 256 bits of entropy, so a fast hash is safe
and lets every request authenticate with one indexed lookup.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from api.services import caps
from config.settings import get_settings
from core.db import db
from core.errors import Conflict, NotFound, Unauthorized
from core.models import ApiKey, User
from core.models.base import utcnow
from core.repositories import api_keys as api_keys_repo

KEY_PREFIX = "gw_"
DISPLAY_PREFIX_LENGTH = len(KEY_PREFIX) + 8
_KEY_SHAPE = re.compile(r"^gw_[A-Za-z0-9_-]{32,128}$")
# last_used_at is a hint for people, not an audit log: write it at most once a minute
# instead of on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class CreatedKey:
    """A new key and its secret, which exists only in this object and the response."""

    key: ApiKey
    secret: str

    def __getattr__(self, name: str):
        return getattr(self.key, name)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create(user: User, name: str) -> CreatedKey:
    limit = get_settings().auth.max_api_keys_per_user
    caps.lock_account(user.id)  # two creations at the limit must not both pass
    if api_keys_repo.count_active_for_user(user.id) >= limit:
        raise Conflict(
            f"You already have {limit} API keys (the limit); delete one before creating another.",
            details={"limit": limit},
        )
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        user_id=user.id,
        name=name.strip(),
        prefix=secret[:DISPLAY_PREFIX_LENGTH],
        key_hash=hash_secret(secret),
    )
    api_keys_repo.add(key)
    db.session.commit()
    return CreatedKey(key=key, secret=secret)


def list_for_user(user: User) -> list[ApiKey]:
    return api_keys_repo.list_active_for_user(user.id)


def revoke(user: User, key_id: uuid.UUID) -> None:
    key = api_keys_repo.get_active_for_user(user.id, key_id)
    if key is None:
        raise NotFound("API key not found.")
    key.revoked_at = utcnow()
    db.session.commit()


def authenticate(secret: str) -> ApiKey:
    """The active key for this secret, its user active too; 401 otherwise."""
    if not _KEY_SHAPE.match(secret):
        raise Unauthorized("Invalid API key.", code="invalid_api_key")
    key = api_keys_repo.get_active_by_hash(hash_secret(secret))
    if key is None or not key.user.is_active:
        raise Unauthorized("Invalid API key.", code="invalid_api_key")
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        api_keys_repo.touch_last_used(key.id, now)
        db.session.commit()
    return key
