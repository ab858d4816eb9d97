"""`make dev`: the whole stack natively — migrations, then honcho runs the Procfile.

Picks the model server: OPENAI_BASE_URL if set and answering, else OLLAMA_URL if set and
answering, else a local llama.cpp server with a real tiny model (scripts/local_llm.py),
which the workers then reach as an OpenAI-compatible server.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def load_dotenv() -> None:
    from dotenv import load_dotenv as load

    load(ROOT / ".env", override=False)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (operator-configured URL)
            return True
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
    print(f"model server: local llama.cpp (SmolLM2-135M) at {env['OPENAI_BASE_URL']}")
    return [*processes, "llm"]


def flower_settings(env: dict[str, str]) -> None:
    """Flower on loopback, and never open: without FLOWER_BASIC_AUTH a password is made."""
    # Flower reads FLOWER_* variables as its options (the compose file sets its own).
    env.setdefault("FLOWER_ADDRESS", "127.0.0.1")
    env.setdefault("FLOWER_PORT", "5555")
    if not env.get("FLOWER_BASIC_AUTH"):
        env["FLOWER_BASIC_AUTH"] = f"flower:{secrets.token_urlsafe(12)}"
        print(
            f"Flower at http://{env['FLOWER_ADDRESS']}:{env['FLOWER_PORT']}/ — user flower, "
            f"password {env['FLOWER_BASIC_AUTH'].split(':', 1)[1]} (set FLOWER_BASIC_AUTH)"
        )


def main() -> None:
    load_dotenv()
    env = dict(os.environ)
    processes = [*choose_model_server(env), "flower"]
    flower_settings(env)
    flask = [str(BIN / "flask"), "--app", "api"]
    subprocess.run([*flask, "ensure-database"], cwd=ROOT, env=env, check=True)
    subprocess.run([*flask, "db", "upgrade"], cwd=ROOT, env=env, check=True)
    honcho = [str(BIN / "honcho"), "start", "--no-colour", "-f", str(ROOT / "Procfile")]
    os.chdir(ROOT)
    os.execve(honcho[0], [*honcho, *processes], env)


if __name__ == "__main__":
    main()
