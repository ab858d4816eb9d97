"""The local model server: a portable llama.cpp build, and how make dev starts it."""

from __future__ import annotations

import json
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from config.settings import load_config
from tests.conftest import ROOT, free_port

sys.path.insert(0, str(ROOT / "scripts"))
import build_llama_server as build
import local_llm

V3_FLAGS = {"sse4_2", "avx", "avx2", "fma", "f16c", "bmi2"}
# Instructions no portable x86-64 build may hold: AVX-512 (zmm registers, opmask
# registers, the 16 upper xmm/ymm registers only EVEX reaches) and AMX (tiles).
AVX512_OR_AMX = re.compile(
    r"%zmm\d|%k[0-7]\b|%[xy]mm(1[6-9]|2\d|3[01])\b"
    r"|\b(ldtilecfg|sttilecfg|tileloadd|tileloaddt1|tilestored|tilerelease|tilezero|tdp\w+)\b"
)
INSTALLED = ROOT / ".venv" / "bin" / "llama-server"


def test_an_x86_cpu_with_avx512_and_amx_gets_the_avx2_level_and_nothing_above():
    # The CPU this broke on: a Xeon with AVX-512 and AMX in a VM.
    flags = V3_FLAGS | {"avx512f", "avx512bw", "avx512_vnni", "amx_tile", "amx_int8"}
    level = build.choose_level("x86_64", flags)
    assert level.name == "x86-64-v3"
    options = [*build.COMMON_CMAKE, *level.cmake]
    assert "-DGGML_NATIVE=OFF" in options
    assert not [o for o in options if re.search(r"(AVX512|AMX).*=ON", o)], options
    for name in ("AVX512", "AMX_TILE", "AMX_INT8"):
        assert f"-DGGML_{name}=OFF" in options


def test_an_x86_cpu_without_avx2_gets_the_sse_level():
    level = build.choose_level("x86_64", {"sse4_2", "avx"})
    assert level.name == "x86-64-v2"
    assert "-DGGML_AVX2=OFF" in level.cmake and "-DGGML_AVX=OFF" in level.cmake


def test_arm64_gets_the_baseline_armv8():
    assert build.choose_level("aarch64", {"fp", "asimd", "sve"}).cmake == (
        "-DGGML_CPU_ARM_ARCH=armv8-a",
    )


def test_an_unsupported_cpu_is_refused_with_its_reason():
    with pytest.raises(SystemExit, match="no portable build level"):
        build.choose_level("riscv64", set())
    with pytest.raises(SystemExit, match="lacks sse4_2"):
        build.choose_level("x86_64", {"sse2"})


def test_each_level_has_its_own_cached_build(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    v3, v2 = build.LEVELS["x86_64"]
    assert build.cache_dir(v3) != build.cache_dir(v2)
    assert build.cache_dir(v3).is_relative_to(tmp_path)


def test_the_launcher_refuses_a_build_this_cpu_cannot_run(tmp_path, monkeypatch):
    info = tmp_path / build.BUILD_INFO
    info.write_text(json.dumps({"level": "x86-64-v3", "cpu_flags": sorted(V3_FLAGS)}))
    monkeypatch.setattr(local_llm, "cpu_flags", lambda: {"sse4_2", "avx"})
    with pytest.raises(SystemExit, match=r"lacks avx2, bmi2, f16c, fma: run `make install`"):
        local_llm.check_cpu(info)
    monkeypatch.setattr(local_llm, "cpu_flags", lambda: V3_FLAGS | {"avx512f"})
    local_llm.check_cpu(info)  # a CPU with more than the build needs runs it


def test_the_server_serves_both_tiers_with_a_slot_per_worker_thread():
    env = {
        "WORKER_CONCURRENCY_LIGHT": "4",
        "WORKER_CONCURRENCY_HEAVY": "2",
        "LOCAL_LLM_PORT": "9999",
    }
    args = local_llm.server_args(env)
    option = dict(zip(args[1::2], args[2::2], strict=False))
    config = load_config()
    assert option["--alias"] == f"{config.MODEL_LIGHT},{config.MODEL_HEAVY}"
    assert option["--parallel"] == "6"
    assert option["--ctx-size"] == str(6 * local_llm.CONTEXT_PER_SLOT)
    assert option["--port"] == "9999"
    assert local_llm.server_args({**env, "LOCAL_LLM_PARALLEL": "2"})[
        args.index("--parallel") + 1
    ] == ("2")


def test_the_model_file_is_installed():
    path = local_llm.model_path()
    with open(path, "rb") as handle:
        assert handle.read(4) == b"GGUF"


def avx512_or_amx_instructions(binary) -> list[str]:
    listing = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", str(binary)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in listing.splitlines() if AVX512_OR_AMX.search(line)]


needs_x86_objdump = pytest.mark.skipif(
    platform.machine() != "x86_64" or not shutil.which("objdump"),
    reason="checks x86-64 machine code with binutils' objdump",
)


def avx512_program(folder: Path) -> Path:
    """A program that runs one AVX-512 instruction: what a native build on such a CPU has."""
    source = folder / "wide.c"
    source.write_text(
        "#include <immintrin.h>\n"
        "int main(void) {\n"
        "  volatile float x[16] = {1};\n"
        "  __m512 a = _mm512_loadu_ps((const float *)x);\n"
        "  _mm512_storeu_ps((float *)x, _mm512_add_ps(a, a));\n"
        "  return x[0] == 2 ? 0 : 1;\n"
        "}\n"
    )
    compiler = shutil.which("cc") or shutil.which("gcc")
    subprocess.run(
        [compiler, "-O2", "-mavx512f", str(source), "-o", str(folder / "wide")], check=True
    )
    return folder / "wide"


@needs_x86_objdump
def test_the_instruction_check_finds_avx512_where_there_is_some(tmp_path):
    assert avx512_or_amx_instructions(avx512_program(tmp_path))


@needs_x86_objdump
def test_the_installed_llama_server_holds_no_avx512_or_amx_instruction():
    # What crashed on a VM that reports AVX-512 and AMX: a build for the build machine.
    info = json.loads((INSTALLED.parent / build.BUILD_INFO).read_text())
    assert info["level"] in {level.name for level in build.LEVELS["x86_64"]}
    assert "-DGGML_NATIVE=OFF" in info["cmake"]
    found = avx512_or_amx_instructions(INSTALLED)
    assert not found, found[:10]


needs_qemu = pytest.mark.skipif(
    platform.machine() != "x86_64" or not shutil.which("qemu-x86_64"),
    reason="emulates an x86-64 CPU with qemu-user (make test installs Debian's)",
)
# QEMU's model of a Haswell: AVX2, FMA and F16C, and neither AVX-512 nor AMX; an
# instruction the CPU lacks ends the program with SIGILL, as on real hardware.
EMULATED_CPU = ["qemu-x86_64", "-cpu", "Haswell"]


@needs_qemu
def test_the_emulated_cpu_refuses_avx512(tmp_path):
    program = avx512_program(tmp_path)
    result = subprocess.run([*EMULATED_CPU, str(program)], capture_output=True, check=False)
    assert result.returncode == -signal.SIGILL


def http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


@needs_qemu
def test_the_model_answers_on_a_cpu_without_avx512(tmp_path):
    port = free_port()
    env = {"LOCAL_LLM_PORT": str(port), "LOCAL_LLM_PARALLEL": "1", "LOCAL_LLM_THREADS": "2"}
    log_path = tmp_path / "llama-server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [*EMULATED_CPU, *local_llm.server_args(env)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 120  # emulated: some 50 times slower than the real CPU
        while not http_ok(f"http://127.0.0.1:{port}/health"):
            assert server.poll() is None, log_path.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "llama-server did not load its model"
            time.sleep(0.5)
        reply = requests.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            json={
                "model": "light",
                "messages": [{"role": "user", "content": "Hi."}],
                "max_tokens": 3,
            },
            timeout=120,
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["usage"]["completion_tokens"] >= 1
        assert reply.json()["choices"][0]["message"]["content"]
        assert server.poll() is None  # still serving
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_installed_llama_server_runs():
    result = subprocess.run([str(INSTALLED), "--version"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "version" in (result.stdout + result.stderr)


def test_a_failed_build_step_shows_its_output_and_stops_the_install(capsys):
    with pytest.raises(SystemExit, match="the build failed: sh -c"):
        build.run_logged(["sh", "-c", "echo compiling; echo 'error: no such file' >&2; exit 2"])
    assert "error: no such file" in capsys.readouterr().err
