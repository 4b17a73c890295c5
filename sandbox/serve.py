"""``serve_forever``: the body of ``ppcmk sandbox up`` / ``python -m ppcmk_sandbox up``."""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from ppcmk_sandbox.server import Sandbox


def serve_forever(
    port: int = 0,
    state_file: str | Path | None = None,
    scenario: str | Path = "default",
    clock_speed: float = 0.0,
    out: TextIO | None = None,
    on_ready: Callable[[Sandbox], None] | None = None,
) -> None:
    """Start the sandbox, call ``on_ready(sandbox)`` (the CLI publishes its profile there), print ONE JSON
    line with its endpoints, serve until SIGINT/SIGTERM, stop cleanly."""
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with Sandbox(scenario=scenario, state_file=state_file, port=port, clock_speed=clock_speed) as sandbox:
            if on_ready is not None:  # first, so whoever reads the line finds e.g. the CLI profile in place
                on_ready(sandbox)
            endpoints = sandbox.endpoints.to_dict()
            endpoints["now"] = sandbox.clock.now().isoformat()
            stream = out or sys.stdout
            stream.write(json.dumps(endpoints) + "\n")
            stream.flush()
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
