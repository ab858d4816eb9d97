"""`make dev`: the whole stack natively — migrations, then the Procfile under supervision.

Picks the model server: OPENAI_BASE_URL if set and answering, else OLLAMA_URL if set and
answering, else a local llama.cpp server with a real tiny model (scripts/local_llm.py),
which the workers then reach as an OpenAI-compatible server. supervisord runs the
processes and restarts one that dies (scripts/dev_supervisor.py); once every one answers,
this prints where each thing is and a first request to try. Ctrl-C stops everything.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from dev_supervisor import Supervisor, read_procfile

from config import dev_secrets
from config.settings import load_config

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
READY_TIMEOUT = 180
READY_LINE = "LLM Gateway is ready"


def load_dotenv() -> None:
    from dotenv import load_dotenv as load

    load(ROOT / ".env", override=False)


def answers(url: str, headers: dict[str, str] | None = None) -> bool:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 (our own URLs)
    try:
        with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310
            return response.status == 200
    except Exception:
        return False


def choose_model_server(env: dict[str, str]) -> list[str]:
    """Set the provider variables in `env`; the Procfile processes to run."""
    processes = ["web", "worker-light", "worker-heavy"]
    base_url = env.get("OPENAI_BASE_URL", "").rstrip("/")
    if base_url and answers(f"{base_url}/models"):
        env["LLM_PROVIDER"] = "openai"
        print(f"model server: OpenAI-compatible at {base_url}")
        return processes
    ollama = env.get("OLLAMA_URL", "").rstrip("/")
    if ollama and answers(f"{ollama}/api/tags"):
        env["LLM_PROVIDER"] = "ollama"
        print(f"model server: Ollama at {ollama}")
        return processes
    host, port = (
        env.setdefault("LOCAL_LLM_HOST", "127.0.0.1"),
        env.setdefault("LOCAL_LLM_PORT", "8081"),
    )
    env["LLM_PROVIDER"] = "openai"
    env["OPENAI_BASE_URL"] = f"http://{host}:{port}/v1"
    print(f"model server: none answers; starting llama.cpp's server at {env['OPENAI_BASE_URL']}")
    return ["llm", *processes]


def secret_settings(env: dict[str, str]) -> dict[str, str]:
    """JWT_SECRET and FLOWER_BASIC_AUTH, from the checkout's generated secrets when unset.

    The same values on every start (config/dev_secrets.py makes them once), so tokens and
    Flower's login outlive a restart. Every process of the stack gets them from here: they
    agree without each reading the file. Returns where each value came from.
    """
    sources = {}
    generated: dict[str, str] | None = None
    for name in dev_secrets.GENERATORS:
        if env.get(name, "").strip():
            sources[name] = "the environment (or .env)"
        elif name == "JWT_SECRET" and env.get("APP_ENV", "").strip().lower() == "production":
            # Production must be given its secret: its config refuses to start without one.
            sources[name] = "unset"
        else:
            path = dev_secrets.path_from(env)
            generated = generated or dev_secrets.ensure(path)
            env[name] = generated[name]
            sources[name] = str(path)
    return sources


def flower_settings(env: dict[str, str]) -> None:
    """Flower on loopback, and never open (secret_settings gives it a login)."""
    # Flower reads FLOWER_* variables as its options (the compose file sets its own).
    env.setdefault("FLOWER_ADDRESS", "127.0.0.1")
    env.setdefault("FLOWER_PORT", "5555")


def web_settings(env: dict[str, str]) -> None:
    """No nginx in front here (its upstream keep-alive is why the default is 75 s), and Ctrl-C
    should not wait on idle connections: gunicorn closes them and exits within 5 s, before
    supervisord's SIGKILL (dev_supervisor.STOPWAITSECS)."""
    env.setdefault("GUNICORN_KEEPALIVE", "5")
    env.setdefault("GUNICORN_GRACEFUL_TIMEOUT", "5")


def api_url(env: dict[str, str]) -> str:
    host, _, port = env.get("GUNICORN_BIND", "0.0.0.0:8000").rpartition(":")
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '', '[::]') else host}:{port}"  # noqa: S104


def flower_url(env: dict[str, str]) -> str:
    return f"http://{env['FLOWER_ADDRESS']}:{env['FLOWER_PORT']}"


def readiness_checks(env: dict[str, str], names: list[str], supervisor: Supervisor) -> dict:
    """Each process → a function that says whether it answers."""
    auth = base64.b64encode(env["FLOWER_BASIC_AUTH"].encode()).decode()
    http = {
        "web": lambda: answers(f"{api_url(env)}/health"),
        "flower": lambda: answers(
            f"{flower_url(env)}/healthcheck", {"Authorization": f"Basic {auth}"}
        ),
        # 200 once the model is loaded (503 while loading).
        "llm": lambda: answers(env["OPENAI_BASE_URL"].removesuffix("/v1") + "/health"),
    }

    def worker_ready(name: str):
        return lambda: " ready." in supervisor.log_of(name)  # Celery's "light@host ready."

    return {name: http.get(name) or worker_ready(name) for name in names}


def banner(env: dict[str, str], names: list[str], run_dir: Path, sources: dict[str, str]) -> str:
    api = api_url(env)
    # Where the password is, never the password: this output ends up in terminals' scrollback
    # and in logs.
    user = env["FLOWER_BASIC_AUTH"].partition(":")[0]
    password = f"FLOWER_BASIC_AUTH in {sources['FLOWER_BASIC_AUTH']}"
    config = load_config()
    tiers = f"{config.MODEL_LIGHT} (light) and {config.MODEL_HEAVY} (heavy)"
    if "llm" in names:
        model = (
            f"{env['OPENAI_BASE_URL']}  llama.cpp llama-server, SmolLM2-135M-Instruct as {tiers}"
        )
    elif env["LLM_PROVIDER"] == "ollama":
        model = f"{env['OLLAMA_URL']}  Ollama, {tiers}"
    else:
        model = f"{env['OPENAI_BASE_URL']}  OpenAI-compatible, {tiers}"
    conf = run_dir / "supervisord.conf"
    return f"""
{READY_LINE}.
  API            {api}   (health: {api}/health)
  Swagger UI     {api}/docs
  Flower         {flower_url(env)}/   user {user}, password: see {password}
  Model server   {model}
  Processes      {", ".join(names)}; logs in {run_dir / "logs"}
                 {BIN / "supervisorctl"} -c {conf} status
Try it (an account, its token, then a chat streamed as Server-Sent Events):
  ACCOUNT='{{"email": "you@example.com", "password": "a long passphrase"}}'
  curl -s {api}/api/auth/register -H 'Content-Type: application/json' -d "$ACCOUNT"
  TOKEN=$(curl -s {api}/api/auth/login -H 'Content-Type: application/json' -d "$ACCOUNT" \\
          | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
  curl -sN {api}/api/chat/stream -H "Authorization: Bearer $TOKEN" \\
       -H 'Content-Type: application/json' -d '{{"message": "What is the capital of France?"}}'
Ctrl-C stops everything.
"""


def wait_until_ready(
    checks: dict, supervisor: Supervisor, timeout: float, stop_signals: list[str]
) -> list[str]:
    """Names of the processes that did not answer within `timeout` (empty: all did)."""
    deadline = time.monotonic() + timeout
    pending = dict(checks)
    while pending and time.monotonic() < deadline and supervisor.running() and not stop_signals:
        pending = {name: check for name, check in pending.items() if not check()}
        time.sleep(0.5)
    return list(pending)


def main() -> None:
    load_dotenv()
    env = dict(os.environ)
    names = choose_model_server(env)
    names.append("flower")
    sources = secret_settings(env)
    flower_settings(env)
    web_settings(env)
    flask = [str(BIN / "flask"), "--app", "api"]
    subprocess.run([*flask, "ensure-database"], cwd=ROOT, env=env, check=True)
    subprocess.run([*flask, "db", "upgrade"], cwd=ROOT, env=env, check=True)

    procfile = read_procfile(ROOT / "Procfile")
    run_dir = Path(env.get("DEV_RUN_DIR") or ROOT / ".run" / "dev").resolve()
    supervisor = Supervisor(run_dir, ROOT, {name: procfile[name] for name in names}, env)

    stop_signals: list[str] = []

    def stop(signum, _frame):
        # Only note it: the main loop stops supervisord (waiting on a process inside a
        # signal handler can deadlock with the wait it interrupted). Ctrl-C reaches
        # supervisord as well (same process group); a `kill` of this process does not.
        stop_signals.append(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    supervisor.start()
    checks = readiness_checks(env, names, supervisor)
    late = wait_until_ready(checks, supervisor, READY_TIMEOUT, stop_signals)
    if supervisor.running() and not stop_signals:
        if late:
            print(f"make dev: not answering after {READY_TIMEOUT} s: {', '.join(late)} (see above)")
        else:
            print(banner(env, names, run_dir, sources), flush=True)
    while supervisor.running() and not stop_signals:
        time.sleep(0.2)
    code = supervisor.stop()
    if stop_signals:
        print(f"make dev: stopped ({stop_signals[0]})", flush=True)
        sys.exit(0)
    sys.exit(f"make dev: supervisord exited ({code}); its log is above")


if __name__ == "__main__":
    main()
