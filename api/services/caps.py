"""Caps on what one account holds at once (streams, conversations, batches), by role.

Each cap is the pair of settings MAX_<name>_PER_USER / MAX_<name>_PER_ADMIN (the typed
fields max_<name>_per_user / _per_admin of config.settings.AccountCapSettings); 0 means no
cap.
"""

from __future__ import annotations

import uuid

from config.settings import get_settings
from core.models import User
from core.repositories import users as users_repo


def limit(user: User, name: str) -> int:
    """The cap `name` (e.g. "CONVERSATIONS") for the user's role; 0: none."""
    role = "admin" if user.is_admin else "user"
    return getattr(get_settings().caps, f"max_{name.lower()}_per_{role}")


def lock_account(user_id: uuid.UUID) -> None:
    """Make the caller's count-then-insert exact: until the transaction commits or rolls
    back, every other capped creation of this user waits here, so two creations at the cap
    cannot both count the same rows and both pass."""
    users_repo.lock(user_id)
