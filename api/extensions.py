"""The Flask extension objects, created unbound and attached in create_app()."""

from __future__ import annotations

from flask_jwt_extended import JWTManager
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase

from api.redis_store import RedisStore


class Base(DeclarativeBase):
    pass


# Objects stay readable after commit: services commit and resources then serialize them.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
migrate = Migrate()
jwt = JWTManager()
redis_store = RedisStore()
# Storage, key prefix and header settings come from the app config (RATELIMIT_*).
limiter = Limiter(key_func=get_remote_address)
