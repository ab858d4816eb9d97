"""Run the Procfile's processes under supervisord, for `make dev`.

supervisord restarts a process that dies, at once if it had been running and with a
growing delay (1 s, 2 s, 3 s…) while it keeps dying within STARTSECS of its start; it logs
a line naming the process and its exit status ("exited: llm (terminated by SIGSEGV;
not expected)"), and the other processes keep serving. honcho, which ran the Procfile
before, stopped every process when one exited.

Each process writes to its own log file in the run folder; this module prints every line
with the process name in front, as honcho did, and supervisord's own log as `supervisor`.
"""

from __future__ import annotations

import configparser
import ctypes
import io
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

# A process must stay up this long to count as started; until then, a failed start is
# retried after 1, 2, 3… s, and after STARTRETRIES such retries it is given up.
STARTSECS = 5
STARTRETRIES = 10
# How long a process gets to stop on SIGTERM (a worker finishing its jobs) before SIGKILL.
STOPWAITSECS = 10
SUPERVISOR_LOG = "supervisor"


def read_procfile(path: Path) -> dict[str, str]:
    """Process name → shell command, in the file's order."""
    processes = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, command = line.partition(":")
        if not sep or not name.strip().replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"{path.name}: not a `name: command` line: {line!r}")
        processes[name.strip()] = command.strip()
    return processes


def supervisord_config(
    run_dir: Path, workdir: Path, processes: dict[str, str], *, startsecs: int = STARTSECS
) -> str:
    """supervisord's configuration for `processes` (name → shell command)."""
    config = configparser.RawConfigParser()
    config.optionxform = str  # keys are case-sensitive names

    def escaped(value: object) -> str:
        return str(value).replace("%", "%%")  # supervisord expands %(name)s in values

    logs = run_dir / "logs"
    config["supervisord"] = {
        "nodaemon": "true",
        "logfile": escaped(logs / f"{SUPERVISOR_LOG}.log"),
        "logfile_maxbytes": "0",
        "pidfile": escaped(run_dir / "supervisord.pid"),
        "childlogdir": escaped(logs),
        "loglevel": "info",
        # The user it already runs as: no privileges to drop (as root it would warn).
        "user": str(os.getuid()),
    }
    # supervisorctl's way in: a socket only this user can open, with a password made for
    # this run (this file, which holds it, is readable by this user alone).
    password = secrets.token_urlsafe(16)
    socket = escaped(run_dir / "supervisor.sock")
    config["unix_http_server"] = {
        "file": socket,
        "chmod": "0700",
        "username": "dev",
        "password": escaped(password),
    }
    config["rpcinterface:supervisor"] = {
        "supervisor.rpcinterface_factory": "supervisor.rpcinterface:make_main_rpcinterface"
    }
    config["supervisorctl"] = {
        "serverurl": f"unix://{socket}",
        "username": "dev",
        "password": escaped(password),
    }
    for priority, (name, command) in enumerate(processes.items(), start=1):
        config[f"program:{name}"] = {
            # Through the shell for the Procfile's ${VAR:-default}; its `exec` makes the
            # process supervisord's own child, so signals and exit statuses are its own.
            "command": escaped(shlex.join(["/bin/sh", "-c", command])),
            "directory": escaped(workdir),
            "priority": str(priority * 10),  # started in the Procfile's order, stopped reversed
            "autostart": "true",
            "autorestart": "true",
            "startsecs": str(startsecs),
            "startretries": str(STARTRETRIES),
            "stopsignal": "TERM",
            "stopwaitsecs": str(STOPWAITSECS),
            # The whole process group: gunicorn's and Flower's children go with them.
            "stopasgroup": "true",
            "killasgroup": "true",
            "redirect_stderr": "true",
            "stdout_logfile": escaped(logs / f"{name}.log"),
            "stdout_logfile_maxbytes": "0",
        }
    out = io.StringIO()
    config.write(out)
    return out.getvalue()


def running_pids(conf: Path) -> dict[str, int]:
    """Name → pid of each RUNNING process of the supervisord that `conf` configures."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "supervisorctl"), "-c", str(conf), "status"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,  # it exits non-zero when a process is not running
    )
    return {
        match["name"]: int(match["pid"])
        for match in re.finditer(
            r"^(?P<name>\S+)\s+RUNNING\s+pid (?P<pid>\d+),", result.stdout, re.M
        )
    }


def _die_with_parent() -> None:
    """In the child: SIGTERM when the parent dies, even by SIGKILL (Linux), so supervisord
    and through it every process stop with `make dev` instead of being orphaned."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: Ctrl-C still reaches supervisord
        pass


class LogFollower(threading.Thread):
    """Prints the new lines of every log file in a folder, prefixed with the file's name."""

    def __init__(self, folder: Path, names: list[str], write: Callable[[str], None] = print):
        super().__init__(daemon=True, name="log-follower")
        self.folder = folder
        self.width = max(len(name) for name in names)
        self.write = write
        self.files: dict[str, io.BufferedReader] = {}
        self.partial: dict[str, bytes] = {}
        self.stopping = threading.Event()

    def poll(self) -> None:
        for path in sorted(self.folder.glob("*.log")):
            name = path.stem
            handle = self.files.get(name)
            if handle is None:
                handle = self.files[name] = path.open("rb")
            data = self.partial.pop(name, b"") + handle.read()
            *complete, rest = data.split(b"\n")
            if rest:
                self.partial[name] = rest
            for raw in complete:
                line = raw.decode(errors="replace").rstrip("\r")
                self.write(f"{name:<{self.width}} | {line}")

    def run(self) -> None:
        while not self.stopping.is_set():
            self.poll()
            self.stopping.wait(0.1)
        self.poll()

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=5)
        for handle in self.files.values():
            handle.close()


class Supervisor:
    """supervisord with the given processes, its logs followed on standard output."""

    def __init__(
        self,
        run_dir: Path,
        workdir: Path,
        processes: dict[str, str],
        env: dict,
        *,
        startsecs: int = STARTSECS,
    ):
        self.startsecs = startsecs
        self.run_dir = run_dir
        self.conf = run_dir / "supervisord.conf"
        self.logs = run_dir / "logs"
        self.processes = processes
        self.env = env
        self.workdir = workdir
        self.process: subprocess.Popen | None = None
        self.follower = LogFollower(self.logs, [SUPERVISOR_LOG, *processes])

    def start(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        for old in self.logs.glob("*.log"):  # each start begins with empty logs
            old.unlink()
        self.conf.touch(mode=0o600)
        self.conf.chmod(0o600)
        self.conf.write_text(
            supervisord_config(self.run_dir, self.workdir, self.processes, startsecs=self.startsecs)
        )
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "supervisord"), "-c", str(self.conf)],
            env=self.env,
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,  # it writes the same lines to its log, followed below
            # preexec_fn is unsafe with threads; the log follower starts only after this.
            preexec_fn=_die_with_parent,
        )
        self.follower.start()

    def log_of(self, name: str) -> str:
        """What a process has written since this start."""
        try:
            return (self.logs / f"{name}.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def running_pids(self) -> dict[str, int]:
        return running_pids(self.conf)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = STOPWAITSECS + 20) -> int:
        """Stop supervisord and so every process (each gets SIGTERM, then SIGKILL)."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        time.sleep(0.2)  # its last log lines
        self.follower.stop()
        return self.process.returncode
