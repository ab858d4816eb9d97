"""Who is calling: JWT and API-key authentication, the current identity, role checks."""

from api.security.decorators import admin_required, auth_required
from api.security.identity import Identity, current_identity

__all__ = ["Identity", "admin_required", "auth_required", "current_identity"]
