"""The stack the several-workers test runs, as an operator starts it (docs/WORKERS.md): a PostgreSQL cluster
(Debian's package, on 127.0.0.1), a Prefect server on it and process workers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import prefect
import pytest

ROOT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))
POOL = "ppcmk-process"
SCHEMA_CACHE = Path.home() / ".cache" / "ppcmk" / f"prefect-{prefect.__version__}-postgresql.sql"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.5)
    raise TimeoutError(f"{what} did not happen within {timeout} s")


def descendants(pid: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


class Stack:
    """PostgreSQL, the Prefect server and the workers, as an operator starts them (docs/WORKERS.md)."""

    def __init__(self, home: Path, sandbox: Any) -> None:
        self.home, self.sandbox = home, sandbox
        self.shared = home / "shared"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.pg_data = ""
        self.pg_port = 0
        self.api_url = ""
        self.env: dict[str, str] = {}
        self.started_in = 0.0

    def start_postgres(self) -> str:
        self.pg_port = free_port()
        started = subprocess.run(["bash", str(ROOT / ".ci" / "start-postgres.sh"), str(self.pg_port)],
                                 capture_output=True, text=True, timeout=300)
        if started.returncode == 3:
            pytest.skip(f"PostgreSQL cannot be installed here: {started.stderr.strip()}")
        assert started.returncode == 0, started.stderr
        values = dict(line.split("=", 1) for line in started.stdout.split())
        self.pg_data = values["PPCMK_PG_DATA"]
        if SCHEMA_CACHE.exists():  # Prefect's migrations cost ~30 s of CPU: replay a dump of their result
            self.psql("psql", "-q", "-f", str(SCHEMA_CACHE))
        return values["PREFECT_API_DATABASE_CONNECTION_URL"]

    def psql(self, tool: str, *arguments: str) -> str:
        done = subprocess.run([tool, "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", "postgres", "-d",
                               "prefect", *arguments], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def cache_schema(self) -> None:
        """The freshly migrated database, for the next run (nothing but Prefect's own rows is in it yet)."""
        if not SCHEMA_CACHE.exists():
            SCHEMA_CACHE.parent.mkdir(parents=True, exist_ok=True)
            partial = SCHEMA_CACHE.with_suffix(".partial")
            partial.write_text(self.psql("pg_dump", "--no-owner"))
            partial.replace(SCHEMA_CACHE)

    def spawn(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.home / f"{name}.log").open("ab")
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.processes[name] = process
        return process

    def start_server(self, database_url: str) -> None:
        began = time.monotonic()
        port = free_port()
        self.api_url = f"http://127.0.0.1:{port}/api"
        base = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
        self.env = {**base, "PREFECT_API_URL": self.api_url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                    "PREFECT_LOGGING_TO_API_ENABLED": "false"}
        server_env = {**self.env, "PREFECT_HOME": str(self.home / "server-home"),
                      "PREFECT_API_DATABASE_CONNECTION_URL": database_url, "PREFECT_UI_ENABLED": "false"}
        self.spawn("server", [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                   server_env)

        def healthy() -> bool:
            assert self.processes["server"].poll() is None, self.log("server")
            try:
                return httpx.get(f"{self.api_url}/health", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for("the Prefect server", healthy, 240)
        self.started_in = round(time.monotonic() - began)
        self.cache_schema()

    def run(self, *command: str) -> str:
        env = {**self.env, "PREFECT_HOME": str(self.home / "cli")}
        done = subprocess.run(list(command), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{command}: {done.stdout[-2000:]}{done.stderr[-3000:]}"
        return done.stdout

    def worker_env(self, name: str, settings: dict[str, str]) -> dict[str, str]:
        return {**self.env, **settings, "PREFECT_HOME": str(self.home / name),
                "PPCMK_HOME": str(self.home / f"{name}-ppcmk"), "PREFECT_WORKER_QUERY_SECONDS": "1",
                "PPCMK_RETRY_DELAY_SCALE": "0"}

    def start_worker(self, name: str, settings: dict[str, str]) -> None:
        self.spawn(name, [PREFECT, "worker", "start", "--pool", POOL, "--name", name],
                   self.worker_env(name, settings))

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        process = self.processes.pop(name)
        if sig == signal.SIGKILL:
            for pid in [process.pid, *descendants(process.pid)]:
                os.kill(pid, signal.SIGKILL)
        else:
            process.send_signal(sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def log(self, name: str) -> str:
        return (self.home / f"{name}.log").read_text(errors="replace")[-4000:]

    def close(self) -> None:
        for name in list(self.processes):
            self.stop(name, signal.SIGKILL if name != "server" else signal.SIGTERM)
        if self.pg_data:
            script = str(ROOT / ".ci" / "start-postgres.sh")
            subprocess.run(["bash", script, "stop", self.pg_data], timeout=60)
