"""Development secrets: generated once per checkout into a private, git-ignored file, and
what `make dev` (scripts/dev.py) does with them."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from config import dev_secrets
from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import dev

NAMES = set(dev_secrets.GENERATORS)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- the file ---------------------------------------------------------------------------


def test_two_checkouts_get_different_secrets_and_each_keeps_its_own(tmp_path):
    first_path, second_path = tmp_path / "one" / ".dev-secrets", tmp_path / "two" / ".dev-secrets"
    first_path.parent.mkdir()
    second_path.parent.mkdir()

    first, second = dev_secrets.ensure(first_path), dev_secrets.ensure(second_path)

    assert set(first) == set(second) == NAMES
    for name in NAMES:
        assert first[name] != second[name]
    assert len(first["JWT_SECRET"]) >= 32
    user, _, password = first["FLOWER_BASIC_AUTH"].partition(":")
    assert user and len(password) >= 16
    # The second start of each reads what the first wrote.
    assert dev_secrets.ensure(first_path) == first
    assert dev_secrets.ensure(second_path) == second
    assert dev_secrets.parse(first_path.read_text()) == first


def test_the_file_is_private_even_under_a_permissive_umask(tmp_path):
    path = tmp_path / ".dev-secrets"
    old = os.umask(0)
    try:
        dev_secrets.ensure(path)
    finally:
        os.umask(old)

    assert mode_of(path) == 0o600


def test_a_copy_readable_by_others_is_made_private_again_and_kept(tmp_path):
    path = tmp_path / ".dev-secrets"
    path.write_text("JWT_SECRET=kept-from-before\n")
    path.chmod(0o644)

    values = dev_secrets.ensure(path)

    assert mode_of(path) == 0o600
    assert values["JWT_SECRET"] == "kept-from-before"
    assert values["FLOWER_BASIC_AUTH"]  # only the missing one is added


def test_lines_the_developer_wrote_stay_and_an_emptied_value_is_made_again(tmp_path):
    path = tmp_path / ".dev-secrets"
    path.write_text("# mine\nOTHER=1\nJWT_SECRET=\nFLOWER_BASIC_AUTH=me:pw")  # no final newline

    values = dev_secrets.ensure(path)

    text = path.read_text()
    assert text.startswith("# mine\nOTHER=1\nJWT_SECRET=\nFLOWER_BASIC_AUTH=me:pw\n")
    assert values["OTHER"] == "1" and values["FLOWER_BASIC_AUTH"] == "me:pw"
    assert len(values["JWT_SECRET"]) >= 32
    assert dev_secrets.parse(text) == values


def test_processes_starting_together_agree_on_one_secret(tmp_path):
    # A stack's processes start at once (gunicorn's workers, the Celery workers): without
    # the file lock each would write its own secret and refuse the others' tokens.
    path = tmp_path / ".dev-secrets"
    code = "from config import dev_secrets; print(dev_secrets.ensure()['JWT_SECRET'])"
    env = {**os.environ, dev_secrets.PATH_VARIABLE: str(path)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(8)
    ]
    outputs = {process.communicate(timeout=60)[0].strip() for process in processes}

    assert all(process.returncode == 0 for process in processes)
    assert outputs == {dev_secrets.parse(path.read_text())["JWT_SECRET"]}


def test_an_unwritable_place_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError) as excinfo:
        dev_secrets.ensure(tmp_path / "missing-directory" / ".dev-secrets")

    assert "JWT_SECRET" in str(excinfo.value)
    assert dev_secrets.PATH_VARIABLE in str(excinfo.value)


def test_the_checkouts_file_is_at_its_root_and_never_committed_or_built_into_an_image():
    default = dev_secrets.path_from({})
    assert default == ROOT / ".dev-secrets"
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", str(default)], cwd=ROOT, check=False
    )
    assert ignored.returncode == 0, ".dev-secrets is not in .gitignore"
    dockerignore = (ROOT / ".dockerignore").read_text().split()
    assert ".dev-secrets" in dockerignore


def test_dev_secrets_file_moves_it_relative_to_the_checkout(tmp_path):
    assert dev_secrets.path_from({"DEV_SECRETS_FILE": "elsewhere/s"}) == ROOT / "elsewhere/s"
    absolute = tmp_path / "s"
    assert dev_secrets.path_from({"DEV_SECRETS_FILE": str(absolute)}) == absolute


# --- make dev ---------------------------------------------------------------------------


def dev_env(tmp_path, **values) -> dict[str, str]:
    return {"APP_ENV": "development", "DEV_SECRETS_FILE": str(tmp_path / ".dev-secrets"), **values}


def test_make_dev_gives_every_process_the_checkouts_secrets_on_every_start(tmp_path):
    first, second = dev_env(tmp_path), dev_env(tmp_path)

    sources = dev.secret_settings(first)
    dev.secret_settings(second)

    stored = dev_secrets.parse((tmp_path / ".dev-secrets").read_text())
    for name in NAMES:
        assert first[name] == second[name] == stored[name]
        assert sources[name] == str(tmp_path / ".dev-secrets")


def test_make_dev_keeps_values_given_in_the_environment(tmp_path):
    env = dev_env(tmp_path, JWT_SECRET="given", FLOWER_BASIC_AUTH="me:given")

    sources = dev.secret_settings(env)

    assert (env["JWT_SECRET"], env["FLOWER_BASIC_AUTH"]) == ("given", "me:given")
    assert set(sources.values()) == {"the environment (or .env)"}
    assert not (tmp_path / ".dev-secrets").exists()


def test_make_dev_never_hands_a_generated_jwt_secret_to_production(tmp_path):
    env = dev_env(tmp_path, APP_ENV="production")

    dev.secret_settings(env)

    assert "JWT_SECRET" not in env  # the production config then refuses to start
    assert env["FLOWER_BASIC_AUTH"]


def test_the_banner_says_where_the_flower_password_is_without_printing_it(tmp_path):
    env = dev_env(tmp_path, OPENAI_BASE_URL="http://127.0.0.1:8081/v1", LLM_PROVIDER="openai")
    sources = dev.secret_settings(env)
    dev.flower_settings(env)

    text = dev.banner(env, ["llm", "web", "flower"], tmp_path / "run", sources)

    user, _, password = env["FLOWER_BASIC_AUTH"].partition(":")
    assert password not in text
    assert env["JWT_SECRET"] not in text
    assert f"user {user}" in text
    assert f"FLOWER_BASIC_AUTH in {tmp_path / '.dev-secrets'}" in text
