"""The production stack's files: compose, nginx, gunicorn, and the commands they run.

No Docker engine runs here, so the compose file is checked by the compose tool's own
`config` (parse, interpolation, schema), nginx's config by Debian's nginx (`nginx -t`),
and every command the containers run is run here with --help against this checkout.
"""

from __future__ import annotations

import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

BIN = Path(sys.executable).parent
APP_SERVICES = ("migrate", "api", "worker-light", "worker-heavy", "flower")
ONE_SHOT = {"migrate", "ollama-pull"}
# What the README asks an operator to set in .env before `docker compose up`.
OPERATOR_SECRETS = {
    "JWT_SECRET": "a-long-random-production-secret-0123456789",
    "POSTGRES_PASSWORD": "pg-secret",
    "FLOWER_BASIC_AUTH": "ops:flower-secret",
}


def compose_tool() -> list[str] | None:
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def env_file(secrets: dict[str, str]) -> str:
    """.env.example with `secrets` set, as an operator edits it."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    for name, value in secrets.items():
        lines = [f"{name}={value}" if line.startswith(f"{name}=") else line for line in lines]
    return "\n".join(lines) + "\n"


def copy_stack(where: Path, secrets: dict[str, str]) -> Path:
    """The compose file, nginx config and Dockerfile with a .env made from .env.example."""
    for name in ("docker-compose.yml", "Dockerfile", ".env.example"):
        shutil.copy(ROOT / name, where / name)
    shutil.copytree(ROOT / "nginx", where / "nginx")
    (where / ".env").write_text(env_file(secrets))
    return where


def compose_config(where: Path) -> subprocess.CompletedProcess:
    tool = compose_tool()
    if tool is None:
        pytest.skip("no docker compose or docker-compose here (make test installs one)")
    # Only the .env file speaks: variables of this shell must not fill in for it.
    env = {k: v for k, v in os.environ.items() if k not in OPERATOR_SECRETS}
    return subprocess.run(
        [*tool, "config"], cwd=where, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture(scope="module")
def compose_dir(tmp_path_factory) -> Path:
    return copy_stack(tmp_path_factory.mktemp("compose"), OPERATOR_SECRETS)


@pytest.fixture(scope="module")
def resolved(compose_dir) -> dict:
    """The compose file as the compose tool resolves it (anchors, merges, variables)."""
    result = compose_config(compose_dir)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.mark.parametrize("secret", ["POSTGRES_PASSWORD", "FLOWER_BASIC_AUTH"])
def test_compose_refuses_to_start_without_a_secret(tmp_path, secret):
    result = compose_config(copy_stack(tmp_path, {**OPERATOR_SECRETS, secret: ""}))
    assert result.returncode != 0
    assert f"set {secret}" in result.stderr


def test_the_secrets_reach_the_services(resolved):
    services = resolved["services"]
    password = OPERATOR_SECRETS["POSTGRES_PASSWORD"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == password
    assert f":{password}@postgres:" in services["api"]["environment"]["DATABASE_URL"]
    flower = services["flower"]["environment"]
    assert flower["FLOWER_BASIC_AUTH"] == OPERATOR_SECRETS["FLOWER_BASIC_AUTH"]
    # Inside its container Flower listens beyond loopback, for nginx.
    assert flower["FLOWER_ADDRESS"] == "0.0.0.0"  # noqa: S104
    assert flower["FLOWER_URL_PREFIX"] == "flower"


def test_the_compose_tool_accepts_the_file(resolved):
    assert set(resolved["services"]) == {
        "nginx",
        "api",
        "migrate",
        "worker-light",
        "worker-heavy",
        "flower",
        "redis",
        "postgres",
        "ollama",
        "ollama-pull",
    }


def test_only_nginx_publishes_a_port(resolved):
    published = {name for name, service in resolved["services"].items() if service.get("ports")}
    assert published == {"nginx"}


def test_every_long_running_service_has_a_healthcheck(resolved):
    missing = [
        name
        for name, service in resolved["services"].items()
        if name not in ONE_SHOT and "healthcheck" not in service
    ]
    assert missing == []


def test_start_order_waits_on_health_and_one_shot_jobs(resolved):
    services = resolved["services"]
    depends = {name: service.get("depends_on", {}) for name, service in services.items()}
    assert depends["api"]["migrate"]["condition"] == "service_completed_successfully"
    assert depends["migrate"]["postgres"]["condition"] == "service_healthy"
    assert depends["nginx"]["api"]["condition"] == "service_healthy"
    assert depends["nginx"]["flower"]["condition"] == "service_healthy"
    assert depends["ollama-pull"]["ollama"]["condition"] == "service_healthy"
    for worker in ("worker-light", "worker-heavy"):
        assert depends[worker]["ollama-pull"]["condition"] == "service_completed_successfully"
        assert depends[worker]["redis"]["condition"] == "service_healthy"


def test_ollama_serves_as_many_at_once_as_the_light_worker_runs(compose_dir, resolved):
    services = resolved["services"]
    light = services["worker-light"]["command"]
    concurrency = light[light.index("-c") + 1]
    assert services["ollama"]["environment"]["OLLAMA_NUM_PARALLEL"] == concurrency
    # Both come from the same variable, so changing it in .env moves them together.
    raw = (compose_dir / "docker-compose.yml").read_text()
    assert raw.count("${WORKER_CONCURRENCY_LIGHT:-4}") == 2


def test_redis_persists_and_never_evicts(resolved):
    command = resolved["services"]["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"


def test_the_apps_run_in_production_behind_one_proxy_hop(resolved):
    for name in APP_SERVICES:
        environment = resolved["services"][name]["environment"]
        assert environment["APP_ENV"] == "production"
        assert environment["PROXY_FIX_HOPS"] == "1"


def _help_command(command: list[str]) -> list[str]:
    executable, *args = command
    return [str(BIN / executable), *args, "--help"]


@pytest.mark.parametrize("service", APP_SERVICES)
def test_each_service_command_exists_in_this_checkout(resolved, service):
    command = resolved["services"][service]["command"]
    if command[0] == "gunicorn":
        config = command[command.index("-c") + 1]
        assert (ROOT / config).is_file()
        module, _, factory = command[-1].partition(":")
        app = getattr(__import__(module), factory.removesuffix("()"))
        assert callable(app)
        return
    env = {**os.environ, "APP_ENV": "testing", "FLASK_APP": "api"}
    result = subprocess.run(
        _help_command(command), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_dockerfile_copies_and_runs_what_exists():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (?:--chown=\S+ )?(\S+) ", dockerfile, re.M):
        if not source.startswith("--from"):
            assert (ROOT / source).exists(), source
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.M)  # not root
    cmd = re.search(r"^CMD (\[.*\])$", dockerfile, re.M).group(1)
    assert yaml.safe_load(cmd) == ["gunicorn", "-c", "config/gunicorn.conf.py", "api:create_app()"]


def test_the_gunicorn_config_imports():
    settings = runpy.run_path(str(ROOT / "config" / "gunicorn.conf.py"))
    assert settings["bind"] and settings["workers"] >= 1
    assert settings["worker_class"] == "gevent"
    assert settings["worker_connections"] >= 2000
    # Streams end within the grace period, before compose's own kill delay.
    assert settings["graceful_timeout"] < 40
    assert callable(settings["post_fork"])


def test_the_api_may_hold_many_open_connections(resolved):
    api = resolved["services"]["api"]
    nofile = api["ulimits"]["nofile"]
    limit = nofile if isinstance(nofile, int) else nofile["soft"]
    settings = runpy.run_path(str(ROOT / "config" / "gunicorn.conf.py"))
    # A client socket per open stream, the pools' connections, and some to spare.
    assert limit > settings["worker_connections"] + 200
    assert api["stop_grace_period"] in ("40s", "40")


def test_workers_may_finish_their_jobs_when_stopped(resolved):
    example = (ROOT / ".env.example").read_text()
    time_limit = int(re.search(r"^JOB_TIME_LIMIT=(\d+)$", example, re.M).group(1))
    for name in ("worker-light", "worker-heavy"):
        grace = resolved["services"][name]["stop_grace_period"]
        seconds = int(grace[:-1]) * {"s": 1, "m": 60}[grace[-1]]
        assert seconds > time_limit


def procfile_commands() -> dict[str, list[str]]:
    """The Procfile's commands as argument lists, without `exec` and the virtualenv path."""
    commands = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, command = line.partition(": ")
        args = shlex.split(command)
        assert args[0] == "exec"
        commands[name] = [args[1].removeprefix(".venv/bin/"), *args[2:]]
    return commands


@pytest.mark.parametrize(
    ("process", "service"),
    [
        ("web", "api"),
        ("worker-light", "worker-light"),
        ("worker-heavy", "worker-heavy"),
        ("flower", "flower"),
    ],
)
def test_make_dev_and_compose_run_the_same_commands(process, service):
    # Compared before interpolation: both expand ${WORKER_CONCURRENCY_…:-N} the same way.
    raw = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert raw["services"][service]["command"] == procfile_commands()[process]


def test_nginx_accepts_its_config(tmp_path):
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if nginx is None:
        pytest.skip("no nginx here (make test installs Debian's)")
    # The compose service names do not resolve outside compose: map them for the test.
    text = (ROOT / "nginx" / "nginx.conf").read_text()
    text = text.replace("server api:8000;", "server 127.0.0.1:8000;")
    text = text.replace("server flower:5555;", "server 127.0.0.1:5555;")
    config = tmp_path / "nginx.conf"
    config.write_text(text)
    result = subprocess.run(
        [nginx, "-t", "-c", str(config), "-g", f"pid {tmp_path}/nginx.pid;"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


def test_nginx_streams_events_unbuffered_and_keeps_metrics_inside():
    text = (ROOT / "nginx" / "nginx.conf").read_text()
    events = re.search(r"location ~ \^/\(api/jobs.*?\{(.*?)\}", text, re.S).group(1)
    assert "proxy_buffering off;" in events
    timeout = int(re.search(r"proxy_read_timeout (\d+)s;", events).group(1))
    assert timeout > 15  # above SSE_HEARTBEAT_SECONDS
    assert re.search(r"location = /metrics \{[^}]*return 404 ", text)
    assert "client_max_body_size 1m;" in text  # MAX_CONTENT_LENGTH
