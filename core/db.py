"""The SQLAlchemy extension every process uses, attached in its app factory."""

from __future__ import annotations

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


# Objects stay readable after commit: services commit and resources then serialize them.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
