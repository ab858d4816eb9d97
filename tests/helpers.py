"""Assertions and small helpers shared by the API tests."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
from pydantic import BaseModel

from api import create_app
from config.settings import Settings, TestingConfig, env_name_of, get_settings
from core.db import db
from core.models import UsageRecord
from tests.conftest import PASSWORD

ERROR_FIELDS = {"code", "message", "request_id", "details"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(client, email: str, password: str = PASSWORD, ip: str | None = None, **kwargs):
    """POST /api/auth/login through a Flask test client (kwargs: headers, environ_base…);
    `ip`, when given, is the client's address (REMOTE_ADDR)."""
    if ip is not None:
        kwargs["environ_base"] = {**kwargs.get("environ_base", {}), "REMOTE_ADDR": ip}
    return client.post("/api/auth/login", json={"email": email, "password": password}, **kwargs)


def refresh(client, refresh_token: str):
    return client.post("/api/auth/refresh", headers=bearer(refresh_token))


def logout(client, access_token: str):
    return client.post("/api/auth/logout", headers=bearer(access_token))


def error_of(response, status: int, code: str | None = None) -> dict:
    """The `error` object of a response, after checking the gateway's error shape."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"}
    error = body["error"]
    assert {"code", "message", "request_id"} <= set(error) <= ERROR_FIELDS
    assert isinstance(error["message"], str) and error["message"]
    assert error["request_id"] == response.headers["X-Request-ID"]
    if code is not None:
        assert error["code"] == code
    return error


def assert_unauthorized(response, code: str | None = None) -> dict:
    error = error_of(response, 401, code)
    assert response.headers.get("WWW-Authenticate") == "Bearer"
    return error


def field_messages(error: dict, field: str) -> list[str]:
    return error["details"]["json"][field]


def register_over_http(base: str, email: str, password: str = PASSWORD) -> dict:
    """Register and log in on a running server: {"id", "access_token", "refresh_token", …}."""
    created = requests.post(
        f"{base}/api/auth/register", json={"email": email, "password": password}, timeout=10
    )
    assert created.status_code == 201, created.text
    login = requests.post(
        f"{base}/api/auth/login", json={"email": email, "password": password}, timeout=10
    )
    assert login.status_code == 200, login.text
    return {"id": created.json()["id"], **login.json()}


def bearer_over_http(base: str, email: str, password: str = PASSWORD) -> dict[str, str]:
    """A new user's bearer headers on a running server."""
    return bearer(register_over_http(base, email, password)["access_token"])


def app_with(monkeypatch, **env):
    """A fresh app built after setting `env` (the settings are read when the config is built)."""
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    return create_app(TestingConfig())


def settings_with(app, **env) -> Settings:
    """A copy of the app's typed settings with some changed, named as their environment
    variables."""
    settings = get_settings(app)
    groups, known = {}, set()
    for group_name in type(settings).model_fields:
        group = getattr(settings, group_name)
        if not isinstance(group, BaseModel):
            continue
        fields = {env_name_of(field): name for name, field in type(group).model_fields.items()}
        known |= fields.keys()
        if changed := {fields[name]: value for name, value in env.items() if name in fields}:
            groups[group_name] = group.model_copy(update=changed)
    assert known >= env.keys(), f"not settings: {sorted(env.keys() - known)}"
    return settings.model_copy(update=groups)


def change_settings(app, **env) -> None:
    """Change a running app's settings (settings_with), and the Flask config keys of the
    same names."""
    app.config["SETTINGS"] = settings_with(app, **env)
    app.config.update(env)


def add_usage(
    app, user_id: str, prompt: int, completion: int, created_at: datetime | None = None
) -> None:
    """A usage row of a generated light answer, as a finished job leaves one."""
    with app.app_context():
        db.session.add(
            UsageRecord(
                user_id=uuid.UUID(user_id),
                model="llama3.2:3b",
                tier="light",
                status="succeeded",
                prompt_tokens=prompt,
                completion_tokens=completion,
                created_at=created_at or datetime.now(UTC) - timedelta(seconds=5),
            )
        )
        db.session.commit()


def batch_counts(total: int, completed=0, failed=0, cancelled=0, pending=0) -> dict:
    """A batch's request_counts."""
    return {
        "total": total,
        "completed": completed,
        "failed": failed,
        "cancelled": cancelled,
        "pending": pending,
    }


def queued_messages(app, redis_client) -> list[dict]:
    """Every task message waiting on the broker: {queue, priority, task, job_id}.

    kombu's Redis transport keeps one list per priority step; the list of a step other
    than 0 is named "<queue>\\x06\\x16<step>".
    """
    prefix = f"{app.config['REDIS_KEY_PREFIX']}celery:"
    found = []
    for key in redis_client.scan_iter(match=f"{prefix}*", count=1000):
        name = key[len(prefix) :]
        if name.startswith("_kombu") or redis_client.type(key) != "list":
            continue
        queue_name, _, step = name.partition("\x06\x16")
        for raw in redis_client.lrange(key, 0, -1):
            message = json.loads(raw)
            args = json.loads(base64.b64decode(message["body"]))[0]
            found.append(
                {
                    "queue": queue_name,
                    "step": int(step or 0),
                    "priority": message["properties"].get("priority"),
                    "task": message["headers"]["task"],
                    "job_id": args[0],
                }
            )
    return found


def descendants(pid: int) -> set[int]:
    """Every living process below `pid`, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The parent pid is the 2nd field after the command, which may hold spaces.
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited and waits to be reaped
