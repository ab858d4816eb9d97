"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect

from api import create_app
from config.settings import TestingConfig, sqlalchemy_url
from core.db import db
from tests.conftest import _maintenance


def _schema_diff(connection) -> list:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    return compare_metadata(context, db.metadata)


def test_migrated_database_matches_the_models(app):
    with app.app_context(), db.engine.connect() as connection:
        assert _schema_diff(connection) == []


def test_migrations_have_a_single_head_and_the_database_is_at_it(app):
    with app.app_context():
        script = ScriptDirectory.from_config(app.extensions["migrate"].migrate.get_config())
        heads = script.get_heads()
        with db.engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_heads()
    assert len(heads) == 1
    assert tuple(current) == tuple(heads)


def test_upgrade_from_empty_downgrade_to_base_and_upgrade_again(monkeypatch, migrated_database):
    scratch_url = migrated_database + "_scratch"
    name = scratch_url.rsplit("/", 1)[1]
    _maintenance(
        scratch_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'
    )
    monkeypatch.setenv("TEST_DATABASE_URL", scratch_url)
    app = create_app(TestingConfig())
    engine = create_engine(sqlalchemy_url(scratch_url))
    try:
        with app.app_context():
            upgrade()
            assert {"users", "api_keys", "conversations", "messages"} <= set(
                inspect(engine).get_table_names()
            )
            downgrade(revision="base")
            assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
            upgrade()
            with engine.connect() as connection:
                assert _schema_diff(connection) == []
            db.engine.dispose()
    finally:
        engine.dispose()
        _maintenance(scratch_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
