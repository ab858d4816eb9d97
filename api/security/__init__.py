"""Who is calling: JWT and API-key authentication, the current identity, role checks."""

from api.security.decorators import admin_required, auth_required
from api.security.identity import current_identity

__all__ = ["admin_required", "auth_required", "current_identity"]
