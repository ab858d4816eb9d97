"""Operator commands run through Flask's CLI."""

from __future__ import annotations

from api import create_app
from config.settings import TestingConfig
from tests.conftest import _maintenance


def test_ensure_database_creates_a_missing_database_once(monkeypatch, migrated_database):
    url = migrated_database + "_ensure"
    name = url.rsplit("/", 1)[1]
    _maintenance(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    monkeypatch.setenv("TEST_DATABASE_URL", url)
    runner = create_app(TestingConfig()).test_cli_runner()
    try:
        first = runner.invoke(args=["ensure-database"])
        second = runner.invoke(args=["ensure-database"])
    finally:
        _maintenance(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    assert first.exit_code == 0, first.output
    assert f"Created database {name}" in first.output
    assert second.exit_code == 0
    assert f"Database {name} exists" in second.output
