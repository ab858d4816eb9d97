"""make dev's supervision: the Procfile as supervisord programs, and supervisord restarting
what dies (with throwaway processes; tests/e2e does it to the real stack)."""

from __future__ import annotations

import itertools
import os
import re
import shlex
import signal
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from supervisor.options import ServerOptions

from tests.conftest import ROOT
from tests.helpers import alive, descendants

sys.path.insert(0, str(ROOT / "scripts"))
from dev_supervisor import Supervisor, read_procfile, supervisord_config


def parsed(config_text: str, tmp_path: Path) -> ServerOptions:
    """The configuration as supervisord itself reads it."""
    path = tmp_path / "supervisord.conf"
    path.write_text(config_text)
    (tmp_path / "logs").mkdir()
    options = ServerOptions()
    options.realize(args=["-c", str(path)])
    return options


def test_the_procfile_lists_the_stack_in_start_order():
    processes = read_procfile(ROOT / "Procfile")
    assert list(processes) == ["llm", "web", "worker-light", "worker-heavy", "flower"]
    assert all(command.startswith("exec .venv/bin/") for command in processes.values())


def test_a_procfile_line_without_a_name_is_refused(tmp_path):
    path = tmp_path / "Procfile"
    path.write_text("web: exec gunicorn\njust a command\n")
    with pytest.raises(ValueError, match="just a command"):
        read_procfile(path)


def test_supervisord_runs_each_command_unchanged_and_restarts_it(tmp_path):
    processes = read_procfile(ROOT / "Procfile")
    options = parsed(supervisord_config(tmp_path, ROOT, processes), tmp_path)
    programs = {group.name: group.process_configs[0] for group in options.process_group_configs}
    assert list(programs) == list(processes)  # started in the Procfile's order
    priorities = [programs[name].priority for name in processes]
    assert priorities == sorted(priorities)
    for name, command in processes.items():
        program = programs[name]
        # Unchanged through supervisord's own %-expansion (Celery's `%h` included).
        assert program.command == shlex.join(["/bin/sh", "-c", command])
        assert program.autorestart is not False
        assert program.stopasgroup and program.killasgroup
        assert program.directory == str(ROOT)
        assert program.stdout_logfile == str(tmp_path / "logs" / f"{name}.log")
    assert "-n light@%h" in programs["worker-light"].command


def spawn_times(log: str, name: str) -> list[float]:
    stamps = re.findall(rf"^(\S+ \S+) INFO spawned: '{name}'", log, re.MULTILINE)
    return [datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f").timestamp() for s in stamps]


@pytest.fixture
def supervised(tmp_path):
    lines: list[str] = []
    python = sys.executable
    processes = {
        "steady": f"exec {python} -c 'import time; time.sleep(600)'",
        # A child of its own, as gunicorn has workers: it must go with its parent.
        "victim": f"sleep 600 & exec {python} -c 'import time; time.sleep(600)'",
        "crasher": "exit 3",
    }
    # Short, but longer than supervisord may take to notice an exit on a busy machine (an
    # exit noticed after it counts as a crash of a running process: no delay).
    supervisor = Supervisor(tmp_path, tmp_path, processes, dict(os.environ), startsecs=3)
    supervisor.follower.write = lines.append
    supervisor.start()
    yield supervisor, lines
    if supervisor.running():
        supervisor.stop()


def wait_for(condition, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return result


def test_a_killed_process_is_restarted_and_named_while_the_others_keep_running(supervised):
    supervisor, lines = supervised
    first = wait_for(lambda: (p := supervisor.running_pids()).keys() >= {"steady", "victim"} and p)
    os.kill(first["victim"], signal.SIGKILL)
    again = wait_for(
        lambda: (
            (p := supervisor.running_pids()).get("victim", first["victim"]) != first["victim"] and p
        )
    )
    assert again["steady"] == first["steady"]
    wait_for(lambda: any("exited: victim (terminated by SIGKILL" in line for line in lines))
    exit_line = next(line for line in lines if "exited: victim (terminated by SIGKILL" in line)
    assert exit_line.startswith("supervisor ")  # printed under the supervisor's name


def test_a_process_that_keeps_failing_is_retried_with_a_growing_delay(supervised):
    supervisor, lines = supervised
    log = supervisor.logs / "supervisor.log"
    times = wait_for(
        lambda: log.exists() and len(t := spawn_times(log.read_text(), "crasher")) >= 4 and t
    )
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # supervisord waits at least 1 s, then 2 s, then 3 s… between tries (its loop wakes
    # once a second, so each wait may run up to a second longer).
    assert all(gap > n - 0.1 for n, gap in enumerate(gaps[:3], start=1)), gaps
    assert "exited: crasher (exit status 3; not expected)" in log.read_text()
    # Each process's output is printed under its name.
    assert any(line.startswith("supervisor | ") for line in lines)


def test_stopping_the_supervisor_ends_every_process_and_their_children(supervised):
    supervisor, _lines = supervised
    wait_for(lambda: supervisor.running_pids().keys() >= {"steady", "victim"})
    tree = descendants(supervisor.process.pid)
    assert len(tree) >= 3, tree  # steady, victim and victim's child
    supervisor.stop()
    wait_for(lambda: not any(alive(pid) for pid in tree), timeout=10)
