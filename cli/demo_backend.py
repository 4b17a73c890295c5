"""The demo's throwaway Prefect backend: a temporary API server on 127.0.0.1 over a copy of a migrated SQLite
database.

Measured on 2 busy cores: Prefect's test harness (a fresh database) needs 30-100 s to start, about 40 s of it
the schema migrations; an in-thread uvicorn server was slower still. Migrating once into a cached template
(`make install` does it, `ppcmk demo --prepare` too) and copying it per demo leaves the server's own start-up,
which runs in the background while the demo's doctor reads the sandbox.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import prefect

from ppcmk_cli.exit_codes import CliError, ExitCode
from ppcmk_cli.prefect_app import server_command
from ppcmk_cli.serve import healthy, stop_process

SERVER_START_TIMEOUT_S = 180


def template_path() -> Path:
    """The migrated, empty database for this Prefect version (a new version migrates again)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ppcmk"
    return cache / f"prefect-{prefect.__version__}.db"


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def ensure_template() -> Path:
    """Migrate an empty database once into the cache; later calls return it at once."""
    template = template_path()
    if template.exists():
        return template
    template.parent.mkdir(parents=True, exist_ok=True)
    building = template.with_suffix(f".{os.getpid()}.tmp")
    env = {**os.environ, "PREFECT_SERVER_DATABASE_CONNECTION_URL": sqlite_url(building),
           "PREFECT_HOME": str(template.parent / "prefect-home")}
    done = subprocess.run([sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0 or not building.exists():
        building.unlink(missing_ok=True)
        tail = done.stdout.decode(errors="replace").strip().splitlines()[-3:]
        raise CliError(f"could not prepare the Prefect database in {template.parent}: {' / '.join(tail)}",
                       ExitCode.FAILED)
    building.replace(template)
    return template


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_api_server(home: Path, database: Path, port: int) -> subprocess.Popen[bytes]:
    """Prefect's API (no UI) under uvicorn in a child process, the way Prefect's own temporary server runs it;
    started directly so that this process never imports the server code (seconds of CPU on a busy machine).
    Its 503 answers say when to retry (ppcmk_cli.prefect_app)."""
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": sqlite_url(database),
        # the copy is already at this Prefect version's schema head: skip the migration check at start-up
        "PREFECT_SERVER_DATABASE_MIGRATE_ON_START": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    log = (home / "server.log").open("ab")
    return subprocess.Popen(
        server_command(port, log_level="error"), env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@contextmanager
def throwaway_prefect(home: Path) -> Iterator[Callable[[], str]]:
    """A Prefect API server for this process only, on a copy of the template, starting in the background at
    once (the demo's doctor runs meanwhile). Yields `ready()`: waits until it answers, returns its API URL."""
    home.mkdir(parents=True, exist_ok=True)
    database = home / "prefect.db"
    shutil.copyfile(ensure_template(), database)
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    server = start_api_server(home, database, port)

    def ready() -> str:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not healthy(api_url):
            if server.poll() is not None or time.monotonic() > deadline:
                raise CliError(f"the throwaway Prefect server did not start; see {home / 'server.log'}",
                               ExitCode.UNAVAILABLE)
            time.sleep(0.2)
        return api_url

    try:
        yield ready
    finally:
        deliver_queued_events_and_logs()
        stop_process(server)


def deliver_queued_events_and_logs(timeout_s: float = 30) -> None:
    """Send what Prefect still queues for the server before it stops: otherwise the process's exit tries to
    send it to a server that is gone and prints a traceback per event."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for service in (EventsWorker, APILogWorker):
        service.drain_all(timeout=timeout_s, at_exit=False)
