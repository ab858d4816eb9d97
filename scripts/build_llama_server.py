"""Build llama.cpp's `llama-server` for a portable CPU target and install it in the venv.

`make install` runs this. The source is the llama.cpp that llama-cpp-python's sdist
vendors (a PyPI package, pinned by version and hash below): we need only its server, not
the Python bindings.

Portable, never native: llama.cpp's default (GGML_NATIVE=ON) compiles for the build
machine's own instruction set, and on a VM that reports AVX-512 and AMX that build dies
with a general protection fault on its first request. Here the target is one of a few
fixed instruction-set levels, the highest that the build machine runs, and never above
x86-64-v3 (AVX2): no AVX-512, no AMX. The level is recorded beside the binary, and
scripts/local_llm.py refuses to start it on a CPU that lacks the level.

Built once per machine: the result is kept in the user's cache directory, keyed by the
source's hash and the build options, and copied into each virtualenv.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

SOURCE_PACKAGE = "llama-cpp-python"
SOURCE_VERSION = "0.3.36"
SOURCE_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
BUILD_INFO = "llama-server.json"


@dataclass(frozen=True)
class Level:
    """An instruction-set level: the CPU flags it needs and the CMake options for it."""

    name: str
    cpu_flags: tuple[str, ...]
    cmake: tuple[str, ...]


_X86_OFF = tuple(
    f"-DGGML_{option}=OFF"
    for option in ("AVX512", "AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16", "AVX_VNNI")
) + tuple(f"-DGGML_AMX_{kind}=OFF" for kind in ("TILE", "INT8", "BF16"))
# ggml's x86 options and the /proc/cpuinfo flag each one needs.
_X86_OPTIONS = {
    "SSE42": "sse4_2",
    "AVX": "avx",
    "AVX2": "avx2",
    "FMA": "fma",
    "F16C": "f16c",
    "BMI2": "bmi2",
}


def _x86_level(name: str, on: set[str]) -> Level:
    """A level with ggml's options in `on` enabled, every other x86 extension off."""
    return Level(
        name,
        tuple(flag for option, flag in _X86_OPTIONS.items() if option in on),
        tuple(f"-DGGML_{option}={'ON' if option in on else 'OFF'}" for option in _X86_OPTIONS)
        + _X86_OFF,
    )


# Highest first. Linux names of the flags, as /proc/cpuinfo lists them.
LEVELS: dict[str, tuple[Level, ...]] = {
    "x86_64": (
        _x86_level("x86-64-v3", {"SSE42", "AVX", "AVX2", "FMA", "F16C", "BMI2"}),
        _x86_level("x86-64-v2", {"SSE42"}),
    ),
    # Every arm64 CPU runs armv8-a; the extensions above it (dotprod, SVE…) are left out.
    "aarch64": (Level("armv8-a", (), ("-DGGML_CPU_ARM_ARCH=armv8-a",)),),
}
LEVELS["amd64"] = LEVELS["x86_64"]
LEVELS["arm64"] = LEVELS["aarch64"]

COMMON_CMAKE = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=OFF",
    "-DBUILD_SHARED_LIBS=OFF",  # one self-contained binary to copy into each venv
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_SERVER=ON",
    # No web UI: building it needs npm, downloading it needs the internet; we use the API.
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_OPENSSL=OFF",  # it serves plain HTTP on loopback and downloads nothing
)


def cpu_flags() -> set[str]:
    """The running CPU's feature flags (Linux); empty where they cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def choose_level(machine: str, flags: set[str]) -> Level:
    """The highest portable level of `machine` whose flags the CPU has."""
    levels = LEVELS.get(machine.lower())
    if levels is None:
        raise SystemExit(f"llama-server: no portable build level for the CPU type {machine!r}")
    for level in levels:
        if set(level.cpu_flags) <= flags:
            return level
    raise SystemExit(
        f"llama-server: this CPU lacks {', '.join(levels[-1].cpu_flags)}, "
        f"the least that the {machine} build needs"
    )


def missing_flags(info: dict, flags: set[str]) -> list[str]:
    """The flags a built binary needs (from its build info) that this CPU lacks."""
    return sorted(set(info["cpu_flags"]) - flags)


def cache_dir(level: Level) -> Path:
    """Where the build of this source with these options is kept, per user."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    recipe = json.dumps([SOURCE_SHA256, COMMON_CMAKE, level.cmake])
    key = hashlib.sha256(recipe.encode()).hexdigest()[:12]
    return base / "llm-gateway" / f"llama-server-{SOURCE_VERSION}-{level.name}-{key}"


def fetch_source(python: str, into: Path) -> Path:
    """Download the pinned sdist with pip, check its hash, unpack llama.cpp from it."""
    subprocess.run(
        [
            python,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--dest",
            str(into),
            f"{SOURCE_PACKAGE}=={SOURCE_VERSION}",
        ],
        check=True,
    )
    (archive,) = into.glob("*.tar.gz")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != SOURCE_SHA256:
        raise SystemExit(f"llama-server: {archive.name} has sha256 {digest}, not {SOURCE_SHA256}")
    prefix = f"{archive.name.removesuffix('.tar.gz')}/vendor/llama.cpp/"
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
        tar.extractall(into, members=members, filter="data")
    source = into / prefix
    # A git submodule's pointer to a checkout that is not there: CMake's version lookup
    # would print git's errors for it.
    (source / ".git").unlink(missing_ok=True)
    return source


def cmake_command(python: str) -> str:
    """cmake from PATH, else the PyPI wheel of it in the venv."""
    found = shutil.which("cmake")
    if found:
        return found
    subprocess.run([python, "-m", "pip", "install", "--quiet", "cmake"], check=True)
    return str(Path(python).parent / "cmake")


def run_logged(command: list[str]) -> None:
    """Run a build step quietly (CMake's notes about the web UI and git are expected);
    on failure, show the end of its output."""
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).splitlines()
        print("\n".join(output[-80:]), file=sys.stderr)
        raise SystemExit(f"llama-server: the build failed: {shlex.join(command)}")


def build(python: str, level: Level, out: Path) -> None:
    if not (shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")):
        raise SystemExit("llama-server: a C++ compiler is needed (Debian: apt-get install g++)")
    cmake = cmake_command(python)
    jobs = str(os.cpu_count() or 2)
    with tempfile.TemporaryDirectory(prefix="llama-server-build-") as tmp:
        source = fetch_source(python, Path(tmp))
        build_dir = Path(tmp) / "build"
        print(
            f"llama-server: building llama.cpp for {level.name} with {jobs} jobs "
            "(once per machine; about 7 minutes on 2 cores)",
            flush=True,
        )
        run_logged([cmake, "-S", str(source), "-B", str(build_dir), *COMMON_CMAKE, *level.cmake])
        run_logged([cmake, "--build", str(build_dir), "--target", "llama-server", "-j", jobs])
        staging = out.with_name(out.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        shutil.copy2(build_dir / "bin" / "llama-server", staging / "llama-server")
        info = {
            "source": f"{SOURCE_PACKAGE}=={SOURCE_VERSION} (vendored llama.cpp)",
            "level": level.name,
            "cpu_flags": list(level.cpu_flags),
            "cmake": [*COMMON_CMAKE, *level.cmake],
        }
        (staging / BUILD_INFO).write_text(json.dumps(info, indent=2) + "\n")
        # Renamed into place only when complete: an interrupted build is never reused.
        shutil.rmtree(out, ignore_errors=True)
        staging.rename(out)


def install(venv: Path, python: str) -> Path:
    level = choose_level(platform.machine(), cpu_flags())
    cached = cache_dir(level)
    if not (cached / "llama-server").exists():
        build(python, level, cached)
    target = venv / "bin"
    for name in ("llama-server", BUILD_INFO):
        shutil.copy2(cached / name, target / name)
    print(f"llama-server: {level.name} build installed in {target} (from {cached})")
    return target / "llama-server"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("venv", type=Path, help="the virtualenv to install llama-server into")
    args = parser.parse_args()
    install(args.venv, str(args.venv / "bin" / "python"))


if __name__ == "__main__":
    main()
