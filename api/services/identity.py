"""Who is asking: the authenticated caller every service acts for (api/security finds it)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from core.models import User


@dataclass(frozen=True)
class Identity:
    """The authenticated caller of the current request."""

    user: User
    method: str  # "jwt" or "api_key"
    api_key_id: uuid.UUID | None = None
    token: dict[str, Any] | None = None

    @property
    def user_id(self) -> uuid.UUID:
        return self.user.id

    @property
    def role(self) -> str:
        return self.user.role

    @property
    def is_admin(self) -> bool:
        return self.user.role == "admin"
