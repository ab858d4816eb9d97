"""LiteLLM's proxy as a peer of this gateway, for compat.py and peers.py: found, configured, run.

The proxy comes from bench/peers/.venv-litellm (`make peers`, i.e. bash bench/peers/install.sh:
LiteLLM 1.82.6, pinned by bench/peers/litellm-constraints.txt; never 1.82.7 or 1.82.8, which
were compromised). It runs as a process group of the benchmark's `Stack` (so its CPU is
accounted and it is stopped with the rest), in the run's log directory, with a config that
maps the gateway's model names to the same fake Ollama server, a master key and no database.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import subprocess
import time
from pathlib import Path

import httpx
from stack import HOST, MODEL, ROOT, Log, Stack, StackError, free_port

LITELLM = ROOT / "bench" / "peers" / ".venv-litellm" / "bin" / "litellm"
VISION_MODEL = "qwen2.5:7b"  # the gateway's heavy tier; the fake takes images for it
EMBEDDING_MODEL = "nomic-embed-text"
NOT_INSTALLED = "not installed (make peers)"


def add_litellm_arguments(parser: argparse.ArgumentParser) -> None:
    """--litellm PATH and --no-litellm."""
    parser.add_argument(
        "--litellm", default=str(LITELLM), help="LiteLLM's proxy executable (litellm)"
    )
    parser.add_argument("--no-litellm", action="store_true", help="leave LiteLLM out")


def litellm_binary(args: argparse.Namespace, log: Log) -> tuple[Path | None, str]:
    """(the proxy's executable, "") when it is to run; else (None, why not), for its column."""
    binary = Path(args.litellm)
    if args.no_litellm:
        return None, "not run (--no-litellm)"
    if not binary.exists():
        log(f"LiteLLM not found at {binary}: its column stays empty")
        return None, NOT_INSTALLED
    return binary, ""


def litellm_config(fake_url: str, master_key: str, *, drop_params: bool) -> str:
    """LiteLLM's proxy config: the gateway's model names on the same fake server."""
    chat = {
        "light": MODEL,
        MODEL: MODEL,
        "heavy": VISION_MODEL,
        VISION_MODEL: VISION_MODEL,
    }
    lines = ["model_list:"]
    for name, model in chat.items():
        lines += [
            f'  - model_name: "{name}"',
            "    litellm_params:",
            f'      model: "ollama_chat/{model}"',
            f'      api_base: "{fake_url}"',
        ]
    lines += [
        f'  - model_name: "{EMBEDDING_MODEL}"',
        "    litellm_params:",
        f'      model: "ollama/{EMBEDDING_MODEL}"',
        f'      api_base: "{fake_url}"',
        "litellm_settings:",
        # LiteLLM's default: a parameter the provider does not take is a 400.
        f"  drop_params: {'true' if drop_params else 'false'}",
        "  telemetry: false",
        "general_settings:",
        f'  master_key: "{master_key}"',
    ]
    return "\n".join(lines) + "\n"


def litellm_env() -> dict[str, str]:
    """The proxy's environment: none of the caller's database, Redis or provider settings."""
    dropped = ("DATABASE_URL", "REDIS_", "OPENAI_", "LITELLM_", "OLLAMA_", "STORE_MODEL")
    env = {name: value for name, value in os.environ.items() if not name.startswith(dropped)}
    return {
        **env,
        "LITELLM_MODE": "PRODUCTION",  # no .env file read from the working directory
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # the packaged price map, no download
        "LITELLM_LOG": "ERROR",
        "PYTHONUNBUFFERED": "1",
    }


def start_litellm(
    stack: Stack, fake_url: str, binary: Path, *, drop_params: bool = False, workers: int = 1
) -> tuple[str, str]:
    """LiteLLM's proxy (`workers` uvicorn processes) on a free port; (base URL, master key)."""
    master_key = "sk-bench-" + secrets.token_hex(8)
    config = stack.log_dir / "litellm.yaml"
    config.write_text(litellm_config(fake_url, master_key, drop_params=drop_params))
    port = free_port()
    stack.spawn(
        "litellm",
        [
            *(str(binary), "--config", str(config), "--host", HOST, "--port", str(port)),
            *("--num_workers", str(workers)),
        ],
        litellm_env(),
        cwd=stack.log_dir,
    )
    base = f"http://{HOST}:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        stack.check_alive("litellm")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/health/liveliness", timeout=2).status_code == 200:
                return base, master_key
        time.sleep(0.5)
    raise StackError(f"LiteLLM was not up within 120 s:\n{stack.tail('litellm')}")


def litellm_version(binary: Path) -> str:
    done = subprocess.run(  # noqa: S603 - the virtualenv's own interpreter
        [
            str(binary.parent / "python"),
            "-c",
            "import importlib.metadata as m; print(m.version('litellm'))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout.strip() or "(version unknown)"
