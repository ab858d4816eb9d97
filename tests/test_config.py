"""Configuration from the environment: class selection, typed values, production checks."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from config import dev_secrets
from config.settings import (
    ACCOUNT_CAPS,
    MIN_PRODUCTION_SECRET_LENGTH,
    DevelopmentConfig,
    ProductionConfig,
    TestingConfig,
    load_config,
)

ROOT = Path(__file__).resolve().parent.parent
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
def clean_env(monkeypatch, tmp_path):
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    # A development config without JWT_SECRET generates one into this file: never the
    # checkout's own.
    monkeypatch.setenv(dev_secrets.PATH_VARIABLE, str(tmp_path / ".dev-secrets"))


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


@pytest.mark.parametrize(
    "secret",
    [
        "dev-only-insecure-jwt-secret-change-me",  # the default this project once had
        "CHANGE-ME-to-a-long-random-value-before-deploying",
        "changeme" + secrets.token_hex(20),
        "replace-with-your-secret-" + secrets.token_hex(10),
        "an-example-secret-that-is-certainly-long-enough",
        "a" * 64,
        "0123456789" * 4,
        "ab" * 32,
    ],
    ids=[
        "old-default",
        "change-me",
        "changeme",
        "your-secret",
        "example",
        "one-char",
        "digits-repeated",
        "pair-repeated",
    ],
)
def test_production_refuses_a_placeholder_however_long(monkeypatch, secret):
    message = production_error(monkeypatch, secret)

    assert "JWT_SECRET" in message and "placeholder" in message
    assert secret not in message


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


def test_production_never_reads_the_development_secrets(monkeypatch, tmp_path):
    dev_secrets.ensure(tmp_path / ".dev-secrets")

    assert "JWT_SECRET is missing" in production_error(monkeypatch, None)


# --- development and testing generate their secret -------------------------------------------


def test_development_without_a_secret_uses_the_checkouts_generated_one(tmp_path):
    path = tmp_path / ".dev-secrets"

    first, again = load_config("development"), load_config("development")

    stored = dev_secrets.parse(path.read_text())["JWT_SECRET"]
    assert first.JWT_SECRET == first.JWT_SECRET_KEY == first.SECRET_KEY == stored
    assert stored == again.JWT_SECRET  # a later start reuses it
    assert len(stored) >= MIN_PRODUCTION_SECRET_LENGTH


def test_another_checkout_generates_another_secret(monkeypatch, tmp_path):
    mine = load_config("development").JWT_SECRET
    monkeypatch.setenv(dev_secrets.PATH_VARIABLE, str(tmp_path / "other-checkout-secrets"))
    theirs = load_config("development").JWT_SECRET

    assert theirs.strip() and theirs != mine


@pytest.mark.parametrize("value", ["", "  "], ids=["empty", "blank"])
def test_an_empty_jwt_secret_in_development_counts_as_unset(monkeypatch, tmp_path, value):
    # `make run` and the flask commands read .env, whose template leaves JWT_SECRET empty.
    monkeypatch.setenv("JWT_SECRET", value)

    secret = load_config("development").JWT_SECRET

    stored = dev_secrets.parse((tmp_path / ".dev-secrets").read_text())["JWT_SECRET"]
    assert secret.strip()
    assert secret == stored


def test_a_secret_from_the_environment_wins_and_no_file_is_written(monkeypatch, tmp_path):
    monkeypatch.setenv("JWT_SECRET", "given-by-the-developer")

    assert load_config("development").JWT_SECRET == "given-by-the-developer"
    assert not (tmp_path / ".dev-secrets").exists()


def test_a_new_development_process_reads_the_same_secret(tmp_path):
    code = "from config.settings import load_config; print(load_config('development').JWT_SECRET)"
    env = dict(os.environ)  # without JWT_SECRET and APP_ENV (clean_env)
    runs = [
        subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
        )
        for _ in range(2)
    ]

    assert [run.returncode for run in runs] == [0, 0], runs[0].stderr
    outputs = {run.stdout.strip() for run in runs}
    assert outputs == {dev_secrets.parse((tmp_path / ".dev-secrets").read_text())["JWT_SECRET"]}


def test_testing_without_a_secret_makes_a_random_one_per_process(tmp_path):
    config, again = load_config("testing"), load_config("testing")

    assert config.JWT_SECRET == again.JWT_SECRET  # one process's apps accept each other's
    assert len(config.JWT_SECRET) >= MIN_PRODUCTION_SECRET_LENGTH
    assert not (tmp_path / ".dev-secrets").exists()
    code = "from config.settings import load_config; print(load_config('testing').JWT_SECRET)"
    other = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert other.stdout.strip() not in ("", config.JWT_SECRET)


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
        ("SESSION_CACHE_SECONDS", "0"),
        ("BCRYPT_ROUNDS", "3"),
        ("BCRYPT_ROUNDS", "32"),
        ("MAX_CONTENT_LENGTH", "0"),
        ("MAX_OPEN_STREAMS_PER_USER", "-1"),
        ("MAX_CONVERSATIONS_PER_ADMIN", "-1"),
        ("STREAM_LEASE_TTL_SECONDS", "1"),
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


def cap_defaults(monkeypatch) -> dict[str, tuple[int, int]]:
    """Each account cap's (user, admin) default, read without the suite's overrides."""
    for cap in ACCOUNT_CAPS:
        for role in ("USER", "ADMIN"):
            monkeypatch.delenv(f"MAX_{cap}_PER_{role}", raising=False)
    config = load_config("development")
    return {
        cap: (getattr(config, f"MAX_{cap}_PER_USER"), getattr(config, f"MAX_{cap}_PER_ADMIN"))
        for cap in ACCOUNT_CAPS
    }


def test_every_account_cap_is_on_by_default_and_higher_for_admins(monkeypatch):
    for cap, (user, admin) in cap_defaults(monkeypatch).items():
        assert 0 < user < admin, cap


def test_the_security_page_lists_every_account_cap_with_its_defaults(monkeypatch):
    lines = (ROOT / "docs" / "security.md").read_text(encoding="utf-8").splitlines()

    for cap, (user, admin) in cap_defaults(monkeypatch).items():
        row = next((line for line in lines if f"`MAX_{cap}_PER_USER`" in line), None)
        assert row is not None, f"MAX_{cap}_PER_USER is missing from docs/security.md"
        assert f"`MAX_{cap}_PER_ADMIN`" in row, row
        assert f"{user:,} / {admin:,}" in row, row


def test_every_setting_is_documented_in_env_example():
    root = Path(__file__).resolve().parent.parent
    source = (root / "config" / "settings.py").read_text()
    names = set(re.findall(r'env_(?:str|int|float)\(\s*"([A-Z0-9_]+)"', source))
    documented = set(re.findall(r"^#?\s*([A-Z0-9_]+)=", (root / ".env.example").read_text(), re.M))
    assert names, "no settings found: the pattern no longer matches config/settings.py"
    assert sorted(names - documented) == []
