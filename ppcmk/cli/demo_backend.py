"""The demo's throwaway Prefect backend: a temporary API server on 127.0.0.1 over a copy of a migrated SQLite
database.

Measured on 2 busy cores: Prefect's test harness (a fresh database) needs 30-100 s to start, most of it
running the schema migrations; an in-thread uvicorn server was slower still. Migrating once into a cached
template (`make install` does it, `ppcmk demo --prepare` too) and copying it per demo leaves only the server's
own start-up.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import prefect
from prefect.settings import (
    PREFECT_API_URL,
    PREFECT_HOME,
    PREFECT_SERVER_DATABASE_CONNECTION_URL,
    PREFECT_SERVER_DATABASE_MIGRATE_ON_START,
    temporary_settings,
)

from ppcmk.cli.exit_codes import CliError, ExitCode

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


@contextmanager
def throwaway_prefect(home: Path) -> Iterator[str]:
    """A Prefect API server for this process only, on a copy of the template; yields its API URL."""
    from prefect.server.api.server import SubprocessASGIServer

    home.mkdir(parents=True, exist_ok=True)
    database = home / "prefect.db"
    shutil.copyfile(ensure_template(), database)
    # the copy is already at this Prefect version's schema head: skip the migration check at start-up
    settings = {PREFECT_HOME: str(home), PREFECT_SERVER_DATABASE_CONNECTION_URL: sqlite_url(database),
                PREFECT_SERVER_DATABASE_MIGRATE_ON_START: False}
    with temporary_settings(updates=settings):
        server = SubprocessASGIServer(port=free_port())
        try:
            server.start(timeout=SERVER_START_TIMEOUT_S)
        except RuntimeError as error:
            server.stop()
            raise CliError(f"the throwaway Prefect server did not start: {error}", ExitCode.UNAVAILABLE
                           ) from error
        try:
            with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
                yield server.api_url
        finally:
            server.stop()
