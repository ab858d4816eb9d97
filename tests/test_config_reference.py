"""The settings are declared once (config/settings.py); .env.example and the configuration
reference page are generated from them and must not drift."""

from __future__ import annotations

import os
import re

import pytest
from flask import Flask

from config import reference
from config.settings import (
    APP_GROUPS,
    DOCUMENTED_GROUPS,
    Settings,
    TestingConfig,
    doc_of,
    get_settings,
    load_config,
)
from tests.conftest import ROOT

REGENERATE = f"run `{reference.COMMAND}` (or `{reference.MODULE_COMMAND}`) and commit the result"


def documented() -> dict[str, object]:
    return {
        name: field for group in DOCUMENTED_GROUPS for name, field in reference.variables(group)
    }


@pytest.mark.parametrize("relative", list(reference.OUTPUTS))
def test_the_generated_file_is_up_to_date(relative):
    diff = reference.stale(ROOT).get(relative)

    assert diff is None, (
        f"{relative} differs from what config/settings.py declares: {REGENERATE}.\n{diff}"
    )


def test_the_page_says_it_is_generated_and_by_what():
    page = reference.reference_page()

    assert page.startswith("# Configuration\n")
    assert reference.COMMAND in page.split("\n## ")[0]


def test_every_variable_is_declared_once():
    names = [name for group in DOCUMENTED_GROUPS for name, _ in reference.variables(group)]

    assert [name for name in set(names) if names.count(name) > 1] == []
    assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", name) for name in names)
    assert all(field.description for field in documented().values())


def test_every_variable_other_programs_read_is_documented():
    read = set(
        re.findall(r'environ\.get\("([A-Z0-9_]+)"', (ROOT / "config/gunicorn.conf.py").read_text())
    )
    for name in ("docker-compose.yml", "Procfile"):
        # ${NAME} and ${NAME:-default}; $${NAME} is the container's own variable.
        read |= set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", (ROOT / name).read_text()))

    assert read, "no variables found: the patterns no longer match"
    assert sorted(read - set(documented())) == []


def test_no_secret_has_a_value_in_the_code_or_the_generated_files():
    secrets = {name: field for name, field in documented().items() if doc_of(field).get("secret")}
    example = (ROOT / ".env.example").read_text()

    assert {"JWT_SECRET", "FLOWER_BASIC_AUTH", "POSTGRES_PASSWORD"} <= set(secrets)
    for name, field in secrets.items():
        assert not field.default, name
        assert re.search(rf"^{name}=$", example, re.M), name
    # The test run's secret (tests/conftest.py sets one) appears in neither file.
    for text in (reference.env_example(), reference.reference_page()):
        assert os.environ["JWT_SECRET"] not in text


def test_every_variable_production_requires_is_marked():
    page = reference.reference_page()
    required = {name for name, _ in reference.required_in_production()}

    assert required == {"JWT_SECRET", "FLOWER_BASIC_AUTH", "POSTGRES_PASSWORD"}
    for name in required:
        assert f"| `{name}`<br>**required in production** |" in page


def test_the_check_command_names_the_stale_file_and_the_command(tmp_path, capsys, monkeypatch):
    for relative in reference.OUTPUTS:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("edited by hand\n")
    monkeypatch.setattr(reference, "ROOT", tmp_path)

    assert reference.main(["--check"]) == 1
    error = capsys.readouterr().err
    assert reference.COMMAND in error and ".env.example" in error

    assert reference.main([]) == 0
    assert reference.stale(tmp_path) == {}


# --- the typed settings and the config Flask reads agree ----------------------------------------


def test_flask_reads_every_setting_and_the_typed_settings():
    config = TestingConfig()
    app = Flask(__name__)
    app.config.from_object(config)

    settings = get_settings(app)
    assert settings is config.SETTINGS
    assert isinstance(settings, Settings)
    for name, value in settings.by_variable().items():
        if name != "CELERY_BROKER_URL":  # empty means REDIS_URL
            assert app.config[name] == value, name
    assert app.config["CELERY_BROKER_URL"] == settings.broker_url
    assert app.config["JOB_TIME_LIMIT"] == settings.queue.time_limit
    assert app.config["JWT_SECRET_KEY"] == settings.auth.jwt_secret
    with app.app_context():
        assert get_settings() is settings


def test_values_are_read_into_their_area_with_their_types(monkeypatch):
    monkeypatch.setenv("JOB_TIME_LIMIT", "11")
    monkeypatch.setenv("VISION_MODELS", " a, ,b ")
    monkeypatch.setenv("SSE_HEARTBEAT_SECONDS", "0.5")

    settings = load_config("testing").SETTINGS

    assert settings.queue.time_limit == 11
    assert settings.models.vision_models == ("a", "b")
    assert settings.streaming.sse_heartbeat_seconds == 0.5
    assert set(APP_GROUPS) == {name for name in Settings.model_fields if name != "env_name"}


def test_several_problems_are_reported_together(monkeypatch):
    monkeypatch.setenv("DATABASE_POOL_SIZE", "many")
    monkeypatch.setenv("CACHE_SCOPE", "everyone")

    with pytest.raises(RuntimeError) as excinfo:
        load_config("testing")

    message = str(excinfo.value)
    assert "DATABASE_POOL_SIZE must be an integer" in message
    assert "CACHE_SCOPE must be 'global' or 'user'" in message
    assert message.startswith("2 configuration problems:")


def test_a_secret_never_shows_in_the_settings_repr(monkeypatch):
    monkeypatch.setenv("METRICS_TOKEN", "scrape-token-value")

    settings = load_config("testing").SETTINGS

    assert settings.auth.jwt_secret not in repr(settings)
    assert "scrape-token-value" not in repr(settings)
