"""The HTTP side's Flask extension objects, created unbound and attached in create_app().

The database and Redis clients every process shares live in core/db.py and core/redis.py.
"""

from __future__ import annotations

from flask_jwt_extended import JWTManager
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate

migrate = Migrate()
jwt = JWTManager()
# Storage, key prefix and header settings come from the app config (RATELIMIT_*).
limiter = Limiter(key_func=get_remote_address)
