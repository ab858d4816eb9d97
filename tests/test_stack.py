"""The process harness of tests and benchmarks (tests/stack.py), on throwaway commands."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from tests.stack import Process, StackError, stop_all, stop_process, storage_env

# Prints a line, then waits; with "ignore" it survives SIGTERM; with "child" it leaves a
# child process of its own (in its process group) that also waits.
SCRIPT = """
import signal, subprocess, sys, time
if "ignore" in sys.argv:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if "child" in sys.argv:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    print("child", child.pid, flush=True)
print("ready on", sys.argv[1], flush=True)
time.sleep(60)
"""


def sleeper(tmp_path, *flags: str, **kwargs) -> Process:
    return Process(
        "sleeper",
        [sys.executable, "-c", SCRIPT, "port-1", *flags],
        {},
        tmp_path / "sleeper.log",
        **kwargs,
    )


def test_waits_for_a_log_line_and_stops_gracefully(tmp_path):
    process = sleeper(tmp_path).start()
    match = process.wait_for_log(r"ready on (\S+)", timeout=20)
    assert match.group(1) == "port-1"
    assert process.running
    process.stop(timeout=10)
    assert process.returncode == -signal.SIGTERM


def test_kills_what_ignores_its_stop_signal(tmp_path):
    process = sleeper(tmp_path, "ignore").start()
    process.wait_for_log("ready", timeout=20)
    started = time.monotonic()
    process.stop(timeout=1)
    assert process.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 10


def test_kill_is_sigkill_and_restart_appends_to_the_log(tmp_path):
    process = sleeper(tmp_path, append=True).start()
    process.wait_for_log("ready", timeout=20)
    process.kill()
    assert process.returncode == -signal.SIGKILL
    process.restart()
    process.wait_for_log("(?s)ready.*ready", timeout=20)
    assert process.starts == 2
    process.stop()


def alive(pid: int) -> bool:
    """Whether `pid` is a live (not zombie) process."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_process_group_is_stopped_whole(tmp_path):
    process = sleeper(tmp_path, "child", own_group=True).start()
    child = int(process.wait_for_log(r"child (\d+)", timeout=20).group(1))
    process.wait_for_log("ready", timeout=20)
    stop_all([process], timeout=10)
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)


def test_waiting_fails_fast_when_the_process_exits(tmp_path):
    process = Process("quick", [sys.executable, "-c", "print('bye')"], {}, tmp_path / "q.log")
    process.start()
    with pytest.raises(StackError, match="quick exited with 0"):
        process.wait_for_log("never", timeout=30)
    with pytest.raises(StackError, match="quick"):
        process.wait_for_url("http://127.0.0.1:9/health", timeout=30)


def test_stops_a_popen_started_elsewhere():
    popen = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stop_process(popen, timeout=10)
    assert popen.returncode == -signal.SIGTERM


def test_storage_env_names_the_variables_each_config_reads():
    assert storage_env("testing", "postgresql://db", "redis://r/1", "p:") == {
        "APP_ENV": "testing",
        "TEST_DATABASE_URL": "postgresql://db",
        "TEST_REDIS_URL": "redis://r/1",
        "TEST_REDIS_KEY_PREFIX": "p:",
    }
    assert storage_env("development", "postgresql://db", "redis://r/1", "p:") == {
        "APP_ENV": "development",
        "DATABASE_URL": "postgresql://db",
        "REDIS_URL": "redis://r/1",
        "REDIS_KEY_PREFIX": "p:",
        "CELERY_BROKER_URL": "redis://r/1",
    }
