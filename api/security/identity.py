"""The current request's caller, as the auth decorators (api/security) found it."""

from __future__ import annotations

from flask import g

from api.services.identity import Identity


def current_identity() -> Identity:
    identity = g.get("identity")
    if identity is None:  # a view forgot @auth_required: fail closed
        raise RuntimeError("current_identity() called on an unauthenticated request")
    return identity
