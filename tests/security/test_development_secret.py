"""A development app trusts only its checkout's generated JWT secret: a token signed with any
string written in the code, or with another checkout's secret, is refused.

Before, development fell back to a secret written in config/settings.py, and a token
signed with it for an admin's user id was served by /api/admin/users of any `make dev`
stack.
"""

from __future__ import annotations

import ast
import re

import jwt
import pytest

from api import create_app
from config import dev_secrets
from config.settings import DevelopmentConfig
from core.db import db
from tests.conftest import ROOT
from tests.helpers import assert_unauthorized, bearer

ADMIN_USERS = "/api/admin/users"
# Names under which a secret would be written.
SECRET_NAME = re.compile(r"secret|passw|token|auth|key", re.IGNORECASE)
SCANNED = ("config", "api", "worker", "scripts")
# What this project's development secret once was: kept here to prove it no longer opens
# anything (the scan below would find it if it came back into the code).
OLD_DEFAULT = "dev-only-insecure-jwt-secret-change-me"


def _target_names(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        return [node.attr]
    if isinstance(node, ast.Tuple | ast.List):
        return [name for element in node.elts for name in _target_names(element)]
    return []


def _text(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.strip():
        return node.value
    return None


def _named_values(node: ast.AST) -> list[tuple[list[str], ast.AST]]:
    """(names, value) pairs by which a string could be given a secret's name."""
    if isinstance(node, ast.Assign):
        return [(_target_names(target), node.value) for target in node.targets]
    if isinstance(node, ast.AnnAssign) and node.value is not None:
        return [(_target_names(node.target), node.value)]
    if isinstance(node, ast.keyword) and node.arg:
        return [([node.arg], node.value)]
    if isinstance(node, ast.Dict):
        pairs = zip(node.keys, node.values, strict=True)
        return [([_text(key)], value) for key, value in pairs if _text(key)]
    if isinstance(node, ast.Call) and node.args and _text(node.args[0]):
        # env_str("JWT_SECRET", "default"), os.environ.get(…), setdefault(…)
        return [([_text(node.args[0])], value) for value in node.args[1:]]
    return []


def named_strings(source: str) -> set[str]:
    """The string literals `source` assigns to a name that looks like a secret's."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        for names, value in _named_values(node):
            text = _text(value)
            if text and any(name and SECRET_NAME.search(name) for name in names):
                found.add(text)
    return found


def constant_secret_candidates() -> set[str]:
    """Every string literal the code assigns to a name that looks like a secret's."""
    return {
        text
        for folder in SCANNED
        for path in sorted((ROOT / folder).rglob("*.py"))
        for text in named_strings(path.read_text(encoding="utf-8"))
    }


def test_the_scan_finds_secrets_written_the_ways_defaults_are_written():
    # Guards the scan itself: a scan that sees nothing would let the test below pass.
    source = (
        f'DEFAULT_JWT_SECRET = "{OLD_DEFAULT}"\n'
        'self.FLOWER_PASSWORD: str = "flower-default"\n'
        'x = env_str("METRICS_TOKEN", "token-default")\n'
        'CONFIG = {"api_key": "key-default"}\n'
        'connect(password="pw-default", host="db")\n'
    )

    assert named_strings(source) == {
        OLD_DEFAULT,
        "flower-default",
        "token-default",
        "key-default",
        "pw-default",
    }
    assert all((ROOT / folder).is_dir() for folder in SCANNED)


@pytest.fixture
def development_app(app, monkeypatch, tmp_path):
    """An app of the development config, without JWT_SECRET, on the test run's database."""
    monkeypatch.delenv("JWT_SECRET", raising=False)
    monkeypatch.setenv(dev_secrets.PATH_VARIABLE, str(tmp_path / ".dev-secrets"))
    # Development's storage defaults are the developer's own data: point them at the run's.
    monkeypatch.setenv("DATABASE_URL", app.config["DATABASE_URL"])
    monkeypatch.setenv("REDIS_URL", app.config["REDIS_URL"])
    monkeypatch.setenv("REDIS_KEY_PREFIX", app.config["REDIS_KEY_PREFIX"])
    monkeypatch.setenv("BCRYPT_ROUNDS", "4")
    built = create_app(DevelopmentConfig())
    yield built
    with built.app_context():
        db.session.remove()
        db.engine.dispose()


# Signing with short strings is the point here: PyJWT's warning about them is expected.
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_a_development_app_trusts_only_its_generated_secret(development_app, admin, tmp_path):
    client = development_app.test_client()
    generated = dev_secrets.parse((tmp_path / ".dev-secrets").read_text())["JWT_SECRET"]
    assert development_app.config["JWT_SECRET_KEY"] == generated
    claims = jwt.decode(admin.access_token, options={"verify_signature": False})

    # The admin's claims are good: signed with the checkout's secret they are served.
    own = jwt.encode(claims, generated, algorithm="HS256")
    assert client.get(ADMIN_USERS, headers=bearer(own)).status_code == 200

    candidates = constant_secret_candidates() | {OLD_DEFAULT}
    for constant in sorted(candidates):
        forged = jwt.encode(claims, constant, algorithm="HS256")
        assert_unauthorized(client.get(ADMIN_USERS, headers=bearer(forged)))
    # Nor does a token of another process or checkout (this one is the test run's own).
    assert_unauthorized(client.get(ADMIN_USERS, headers=bearer(admin.access_token)))
