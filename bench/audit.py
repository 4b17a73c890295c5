"""Audit append benchmark: appends per second to one chain, side by side, through the two locks a writer
can take: flock on a local folder (one machine, no Prefect API) and the Prefect server's `ppcmk-audit`
limit (every worker). Each is measured with one writer, with several threads of one process (a run's
waves) and with several processes (workers). Prints each case's rate and the server lock's cost as a
ratio to flock's.

    python bench/audit.py [--appends 100] [--writers 3]
"""

from __future__ import annotations

import argparse
import contextvars
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `python bench/audit.py` from a clone

from prefect.settings import PREFECT_API_URL, temporary_settings  # noqa: E402

from ppcmk.audit.store import AUDIT_STORAGE_SETTING  # noqa: E402
from ppcmk.audit.trail import AuditLog  # noqa: E402
from ppcmk_cli.demo_backend import throwaway_prefect  # noqa: E402

WRITER = """
import sys
from ppcmk.audit.trail import AuditLog
log = AuditLog()
for number in range(int(sys.argv[1])):
    log.record({"event": "bench", "number": number})
"""


def threads(log: AuditLog, writers: int, appends: int) -> float:
    """Seconds for `writers` threads of this process to append `appends` entries each."""
    def write() -> None:
        for number in range(appends):
            log.record({"event": "bench", "number": number})

    started = time.perf_counter()
    # each thread runs in a copy of this one's context, as Prefect's task runner threads do: its settings
    workers = [threading.Thread(target=contextvars.copy_context().run, args=(write,)) for _ in range(writers)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - started


def processes(env: dict[str, str], writers: int, appends: int) -> float:
    """Seconds for `writers` processes to append `appends` entries each (their start-up included)."""
    started = time.perf_counter()
    running = [subprocess.Popen([sys.executable, "-c", WRITER, str(appends)], cwd=ROOT, env=env)
               for _ in range(writers)]
    if any(process.wait() for process in running):
        raise SystemExit("a writer process failed")
    return time.perf_counter() - started


def measure(home: Path, appends: int, writers: int, api_url: str | None) -> dict[str, float]:
    """Appends per second for one writer, threads and processes, against a fresh chain each."""
    # the processes keep their chain in $PPCMK_HOME/audit; with a Prefect API they lock it through the server
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PPCMK_HOME": str(home / "procs")}
    env.pop("PREFECT_API_URL", None)
    env.pop(AUDIT_STORAGE_SETTING, None)
    if api_url:
        env["PREFECT_API_URL"] = api_url
    one = threads(AuditLog(home / "one"), 1, appends)
    many = threads(AuditLog(home / "threads"), writers, appends)
    spawned = processes(env, writers, appends)
    return {"1 writer": appends / one, f"{writers} threads": writers * appends / many,
            f"{writers} processes": writers * appends / spawned}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appends", type=int, default=100, help="entries each writer appends")
    parser.add_argument("--writers", type=int, default=3, help="threads, then processes, writing at once")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        flock = measure(home / "flock", args.appends, args.writers, None)
        with throwaway_prefect(home / "prefect") as ready:
            api_url = ready()
            with temporary_settings(updates={PREFECT_API_URL: api_url}):
                server = measure(home / "server", args.appends, args.writers, api_url)
    print(f"{'case':<14}{'flock /s':>10}{'server /s':>11}{'flock / server':>16}")
    for case, rate in flock.items():
        print(f"{case:<14}{rate:>10.0f}{server[case]:>11.1f}{rate / server[case]:>16.1f}")


if __name__ == "__main__":
    main()
