"""What the fleet benchmark measures: calls seen by the sandbox, Prefect task runs, CPU and memory."""

from __future__ import annotations

import math
import os
import re
import resource
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx

BAP_PREFIX = "/providers/microsoft.businessappplatform/"
OPERATION_POLL = re.compile(r"/lifecycleOperations/", re.IGNORECASE)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of other processes so far (Linux /proc; 0 for one that has gone)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


def child_pids() -> list[int]:
    """This process's direct children (the Prefect test server, the bench's sandbox); empty without /proc."""
    me, children = os.getpid(), []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(entry.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent == me:
            children.append(int(entry.parent.name))
    return children


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def minimum_calls(environments: int, link_seconds: float, retry_after_seconds: float) -> int:
    """Per environment: read, link, the polls Retry-After asks for until the end, the read-back; plus the
    one listing of the run (its selection)."""
    polls = math.ceil(link_seconds / retry_after_seconds)
    return environments * (3 + polls) + 1


class SandboxAdmin:
    """The sandbox's `/_sandbox` routes: clear and read the request log."""

    def __init__(self, url: str, ca: str) -> None:
        self._http = httpx.Client(base_url=url, verify=ca, timeout=120)

    def clear_log(self) -> None:
        self._http.delete("/_sandbox/log").raise_for_status()

    def log(self) -> list[dict[str, Any]]:
        response = self._http.get("/_sandbox/log")
        response.raise_for_status()
        entries: list[dict[str, Any]] = response.json()["value"]
        return entries


@dataclass
class CallCounts:
    bap: int
    polls: int
    throttled: int
    other: int

    @classmethod
    def of(cls, entries: list[dict[str, Any]], caller: str) -> CallCounts:
        mine = [e for e in entries if e["caller"] == caller]
        bap = [e for e in mine if e["path"].lower().startswith(BAP_PREFIX)]
        return cls(bap=len(bap), polls=sum(bool(OPERATION_POLL.search(e["path"])) for e in bap),
                   throttled=sum(e["status"] == 429 for e in mine), other=len(mine) - len(bap))


def count_task_runs(flow_run_id: UUID, expected_at_least: int, settle_s: float = 15.0) -> int:
    """Task runs the server recorded for a flow run (they arrive as events: wait for the count to settle)."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flow_runs = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
    deadline = time.monotonic() + settle_s
    with get_client(sync_client=True) as client:
        while True:
            total, page = 0, 200
            while True:
                batch = client.read_task_runs(flow_run_filter=flow_runs, limit=page, offset=total)
                total += len(batch)
                if len(batch) < page:
                    break
            if total >= expected_at_least or time.monotonic() > deadline:
                return total
            time.sleep(0.5)


@dataclass
class CpuSampler:
    """Samples this process's CPU time in the background, to cost a window of pure waiting."""

    interval: float = 0.25
    samples: list[tuple[float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    @contextmanager
    def running(self) -> Iterator[CpuSampler]:
        thread = threading.Thread(target=self._run, name="bench-cpu-sampler", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), cpu_seconds()))
            self._stop.wait(self.interval)

    def between(self, start: float, end: float) -> tuple[float, float]:
        """(CPU seconds, wall seconds) spent between two monotonic instants, from the nearest samples."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return 0.0, 0.0
        return inside[-1][1] - inside[0][1], inside[-1][0] - inside[0][0]
