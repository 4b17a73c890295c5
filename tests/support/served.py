"""A served process for the tests that take the UI's path (`ppcmk serve`, or `python -m
ppcmk_deployments.serve` as it starts it): started from the checkout in its own session with its output in a
log file, waited on while it is alive, and stopped."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect.client.orchestration import get_client

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def serving(
    args: list[str], env: dict[str, str], log_path: Path, stop: signal.Signals = signal.SIGINT,
    stop_timeout: float = 20,
) -> Iterator[subprocess.Popen[bytes]]:
    """`python <args>` running until the block ends, then sent `stop` (killed after `stop_timeout` s)."""
    log = log_path.open("wb")
    child = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
    try:
        yield child
    finally:
        child.send_signal(stop)
        try:
            child.wait(timeout=stop_timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        log.close()


def wait_for(what: str, check: Callable[[], Any], timeout: float, child: subprocess.Popen[bytes]) -> Any:
    """`check()`'s first true value within `timeout` s (real time: the served process runs on its own);
    fails at once when the served process has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        served = " ".join(map(str, child.args[1:3]))  # type: ignore[index]  # -m and the module
        assert child.poll() is None, f"{served} exited with {child.returncode} while waiting: {what}"
        time.sleep(0.25)
    raise TimeoutError(f"{what} did not happen within {timeout} s")


def deployment_ready(name: str) -> bool:
    """The deployment is on the Prefect API the settings name (a client per call: the server may be
    starting)."""
    try:
        with get_client(sync_client=True) as client:
            client.read_deployment_by_name(name)
    except Exception:  # the server or the deployment is not there yet
        return False
    return True
