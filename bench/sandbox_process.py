"""A fleet sandbox in its own process, so the benchmark's CPU and memory figures are ppcmk's alone.

Run as `python -m bench.sandbox_process <FleetCloud JSON>`: the clock follows real time,
link operations last `link_seconds`, lifecycle polls are asked back after `retry_after_seconds`, every
request takes `latency_seconds`. Prints the endpoints as one JSON line, serves until stdin closes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel


class FleetCloud(BaseModel):
    """How the benchmark's sandbox behaves."""

    size: int
    link_seconds: float
    retry_after_seconds: int
    latency_seconds: float


def write_scenario(cloud: FleetCloud, directory: Path) -> Path:
    from ppcmk_sandbox.scenarios.fleet import fleet_scenario

    data = fleet_scenario(cloud.size, sandbox_every=0)  # one wave: every environment Production
    data["settings"].update(link_duration_seconds=cloud.link_seconds,
                            lifecycle_retry_after_seconds=cloud.retry_after_seconds)
    for section, content in data.items():
        (directory / f"{section}.json").write_text(json.dumps(content))
    return directory


def serve(cloud: FleetCloud) -> None:
    from ppcmk_sandbox import Sandbox

    with (
        tempfile.TemporaryDirectory(prefix="ppcmk-bench-") as scratch,
        Sandbox(scenario=write_scenario(cloud, Path(scratch)), clock_speed=1.0) as server,
    ):
        server.latency = cloud.latency_seconds
        print(json.dumps(server.endpoints.to_dict()), flush=True)
        sys.stdin.read()  # the benchmark closes our stdin when it is done


class SandboxProcess:
    """Starts `serve` in a child process; `.endpoints` once it listens; `.stop()` ends it."""

    def __init__(self, cloud: FleetCloud) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.sandbox_process", cloud.model_dump_json()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        assert self.process.stdout is not None and self.process.stdin is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the benchmark sandbox did not start (see its output above)")
        self.endpoints: dict[str, Any] = json.loads(line)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


if __name__ == "__main__":
    serve(FleetCloud.model_validate_json(sys.argv[1]))
