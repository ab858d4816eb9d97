"""Configuration from the environment: class selection, typed values, production checks."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from config.settings import (
    DEFAULT_JWT_SECRET,
    MIN_PRODUCTION_SECRET_LENGTH,
    DevelopmentConfig,
    ProductionConfig,
    TestingConfig,
    load_config,
)

# Variables that change what the configs read; each test starts without them.
ENV_VARS = [
    "APP_ENV",
    "JWT_SECRET",
    "ACCESS_TOKEN_MINUTES",
    "REFRESH_TOKEN_DAYS",
    "BCRYPT_ROUNDS",
    "MAX_CONTENT_LENGTH",
    "DATABASE_URL",
    "REDIS_URL",
    "REDIS_KEY_PREFIX",
    "TEST_DATABASE_URL",
    "TEST_REDIS_URL",
    "TEST_REDIS_KEY_PREFIX",
    "TEST_BCRYPT_ROUNDS",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def strong_secret() -> str:
    return secrets.token_urlsafe(48)


def production_error(monkeypatch, secret: str | None) -> str:
    if secret is not None:
        monkeypatch.setenv("JWT_SECRET", secret)
    with pytest.raises(RuntimeError) as excinfo:
        load_config("production")
    return str(excinfo.value)


# --- production refuses weak JWT secrets ---------------------------------------------------


def test_production_refuses_to_start_without_jwt_secret(monkeypatch):
    assert "JWT_SECRET" in production_error(monkeypatch, None)


@pytest.mark.parametrize("secret", ["", "   "], ids=["empty", "blank"])
def test_production_refuses_an_empty_jwt_secret(monkeypatch, secret):
    assert "JWT_SECRET" in production_error(monkeypatch, secret)


def test_production_refuses_the_development_default_secret(monkeypatch):
    assert "JWT_SECRET" in production_error(monkeypatch, DEFAULT_JWT_SECRET)


def test_production_refuses_a_short_secret(monkeypatch):
    secret = secrets.token_hex(MIN_PRODUCTION_SECRET_LENGTH)[: MIN_PRODUCTION_SECRET_LENGTH - 1]

    message = production_error(monkeypatch, secret)

    assert "JWT_SECRET" in message
    assert str(MIN_PRODUCTION_SECRET_LENGTH) in message


def test_the_error_never_echoes_the_rejected_secret(monkeypatch):
    secret = "short-but-secret-value"

    assert secret not in production_error(monkeypatch, secret)


def test_production_accepts_a_long_random_secret(monkeypatch):
    secret = strong_secret()
    monkeypatch.setenv("JWT_SECRET", secret)

    config = load_config("production")

    assert isinstance(config, ProductionConfig)
    assert {config.JWT_SECRET, config.JWT_SECRET_KEY} == {secret}


def test_production_accepts_a_secret_of_exactly_the_minimum_length(monkeypatch):
    monkeypatch.setenv("JWT_SECRET", secrets.token_hex(16))

    assert len(load_config("production").JWT_SECRET) == MIN_PRODUCTION_SECRET_LENGTH


@pytest.mark.parametrize("name", ["development", "testing"])
def test_other_environments_allow_the_default_secret(name):
    assert load_config(name).JWT_SECRET == DEFAULT_JWT_SECRET


# --- APP_ENV selects the class --------------------------------------------------------------


@pytest.mark.parametrize(
    ("app_env", "expected"),
    [
        ("development", DevelopmentConfig),
        ("testing", TestingConfig),
        ("production", ProductionConfig),
        (" Production ", ProductionConfig),
        ("TESTING", TestingConfig),
    ],
)
def test_app_env_selects_the_config_class(monkeypatch, app_env, expected):
    monkeypatch.setenv("APP_ENV", app_env)
    monkeypatch.setenv("JWT_SECRET", strong_secret())

    config = load_config()

    assert type(config) is expected
    assert config.ENV_NAME == expected.ENV_NAME


def test_without_app_env_the_config_is_development():
    assert type(load_config()) is DevelopmentConfig


def test_an_explicit_name_wins_over_app_env(monkeypatch):
    monkeypatch.setenv("APP_ENV", "production")

    assert type(load_config("testing")) is TestingConfig


@pytest.mark.parametrize("app_env", ["staging", "prod", "dev elopment"])
def test_an_unknown_app_env_is_a_clear_error(monkeypatch, app_env):
    monkeypatch.setenv("APP_ENV", app_env)

    with pytest.raises(RuntimeError) as excinfo:
        load_config()

    message = str(excinfo.value)
    assert "APP_ENV" in message
    assert app_env in message
    for valid in ("development", "testing", "production"):
        assert valid in message


# --- typed values ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["abc", "15m", "1.5"])
def test_a_non_integer_access_token_minutes_is_a_clear_error(monkeypatch, value):
    monkeypatch.setenv("ACCESS_TOKEN_MINUTES", value)

    with pytest.raises(RuntimeError) as excinfo:
        load_config("development")

    message = str(excinfo.value)
    assert "ACCESS_TOKEN_MINUTES" in message
    assert "integer" in message
    assert value in message


def test_access_token_minutes_sets_the_jwt_lifetime(monkeypatch):
    monkeypatch.setenv("ACCESS_TOKEN_MINUTES", "5")

    config = load_config("development")

    assert config.ACCESS_TOKEN_MINUTES == 5
    assert config.JWT_ACCESS_TOKEN_EXPIRES == 300


def test_an_empty_integer_variable_falls_back_to_the_default(monkeypatch):
    monkeypatch.setenv("ACCESS_TOKEN_MINUTES", "")

    assert load_config("development").ACCESS_TOKEN_MINUTES == 15


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ACCESS_TOKEN_MINUTES", "0"),
        ("ACCESS_TOKEN_MINUTES", "-5"),
        ("REFRESH_TOKEN_DAYS", "0"),
        ("BCRYPT_ROUNDS", "3"),
        ("BCRYPT_ROUNDS", "32"),
        ("MAX_CONTENT_LENGTH", "0"),
    ],
)
def test_values_that_cannot_work_are_refused(monkeypatch, name, value):
    monkeypatch.setenv(name, value)

    with pytest.raises(RuntimeError, match=name):
        load_config("development")


def test_the_default_body_limit_is_one_mebibyte():
    assert load_config("development").MAX_CONTENT_LENGTH == 1024 * 1024


# --- the testing config never touches development data -----------------------------------------


def test_testing_uses_its_own_database_and_redis_db_by_default():
    development, testing = DevelopmentConfig(), TestingConfig()

    dev_db, test_db = make_url(development.DATABASE_URL), make_url(testing.DATABASE_URL)
    assert test_db.database != dev_db.database
    assert testing.REDIS_URL != development.REDIS_URL
    assert make_url(testing.SQLALCHEMY_DATABASE_URI).database == test_db.database
    assert testing.RATELIMIT_STORAGE_URI == testing.REDIS_URL
    assert testing.REDIS_KEY_PREFIX != development.REDIS_KEY_PREFIX


def test_testing_ignores_the_development_database_and_redis_variables(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/llm_gateway")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")

    testing = TestingConfig()

    assert make_url(testing.DATABASE_URL).database != "llm_gateway"
    assert testing.REDIS_URL != "redis://127.0.0.1:6379/0"
    assert testing.RATELIMIT_STORAGE_URI != "redis://127.0.0.1:6379/0"


def test_testing_reads_its_own_variables(monkeypatch):
    monkeypatch.setenv("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/other_test")
    monkeypatch.setenv("TEST_REDIS_URL", "redis://127.0.0.1:6379/14")

    testing = TestingConfig()

    assert make_url(testing.DATABASE_URL).database == "other_test"
    assert testing.REDIS_URL == "redis://127.0.0.1:6379/14"
    assert testing.RATELIMIT_STORAGE_URI == "redis://127.0.0.1:6379/14"


def test_testing_is_flagged_as_testing_and_hashes_fast():
    testing = TestingConfig()

    assert testing.TESTING is True
    assert DevelopmentConfig().TESTING is False
    assert testing.BCRYPT_ROUNDS < DevelopmentConfig().BCRYPT_ROUNDS


def test_database_urls_are_pinned_to_psycopg2():
    config = DevelopmentConfig()

    assert make_url(config.SQLALCHEMY_DATABASE_URI).drivername == "postgresql+psycopg2"


def test_every_setting_is_documented_in_env_example():
    root = Path(__file__).resolve().parent.parent
    source = (root / "config" / "settings.py").read_text()
    names = set(re.findall(r'env_(?:str|int|float)\(\s*"([A-Z0-9_]+)"', source))
    documented = set(re.findall(r"^#?\s*([A-Z0-9_]+)=", (root / ".env.example").read_text(), re.M))
    assert names, "no settings found: the pattern no longer matches config/settings.py"
    assert sorted(names - documented) == []
