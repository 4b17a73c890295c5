"""Evidence benchmark: the pack for a year of the demo story, over the default scenario and over a tenant of
N more environments, side by side in one run.

Each tenant is a sandbox of its own (in this process, virtual clock) that lives the same year: the demo's
chapters (onboard, rotate, change policy, revert, migrate BYOK, with the scripted admins' approvals) and two
more rotations, a month or two apart on the cloud's clock. Then every request gets `--latency` and the pack is
built as `ppcmk evidence` builds it (reads, the page, the JSON, the PDF by Debian's chromium, the manifest),
`--repeat` times; the best of them is the figure. Targets: the default scenario's pack under 10 s, the large
tenant's at most 3 times that.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python bench/evidence.py` from a clone

from bench.measure import cpu_seconds
from ppcmk.cloud.settings import ConnectionSettings

DEFAULT_TARGET_S = 10.0
RATIO_TARGET = 3.0
# The year: (chapter of the demo story, days on the cloud's clock before it); then the rest of the year.
YEAR = [("onboard", 0), ("rotate", 20), ("rotate", 45), ("change_policy", 30), ("revert", 60),
        ("rotate", 40), ("migrate_byok", 50)]
REST_OF_YEAR = 90


@dataclass
class Figure:
    label: str
    environments: int
    year_s: float
    pack_s: float
    cpu_s: float
    changes: int
    pack_bytes: int


def live_the_year(cloud: object, label: str, scratch: Path) -> tuple[ConnectionSettings, Path]:
    """The demo's chapters over a year on this sandbox; its connection and its audit chain's folder."""
    from rich.console import Console

    from ppcmk_cli.demo_story import StoryTeller, story
    from ppcmk_cli.doctor import sandbox_inputs
    from ppcmk_cli.profile import SandboxProfile, save_profile
    from ppcmk_cli.sandbox_blocks import register_sandbox_blocks, sandbox_connection_data
    from ppcmk_deployments.catalog import SandboxBlocks

    profile = SandboxProfile.from_endpoints(cloud.endpoints, pid=-1)  # type: ignore[attr-defined]
    save_profile(profile)
    blocks = register_sandbox_blocks(profile, SandboxBlocks.with_prefix(f"bench-{label}"))
    chapters = {chapter.runbook: chapter for chapter in story(blocks, scratch / "report")}
    teller = StoryTeller(Console(file=io.StringIO()), sandbox_inputs(), cloud.clock.now,  # type: ignore[attr-defined]
                         scratch / "report")
    for number, (runbook, days) in enumerate(YEAR, start=1):
        cloud.clock.advance(timedelta(days=days))  # type: ignore[attr-defined]
        outcome = teller.chapter(number, chapters[runbook], blocks)
        if outcome.status not in ("completed", "nothing-to-do"):
            raise RuntimeError(f"{label}: {runbook} ended {outcome.status}: {outcome.message}")
    cloud.clock.advance(timedelta(days=REST_OF_YEAR))  # type: ignore[attr-defined]
    return ConnectionSettings.model_validate(sandbox_connection_data(profile, "runbook")), Path(
        os.environ["PPCMK_HOME"]) / "audit"


def measure(label: str, size: int, latency: float, repeat: int, scratch: Path) -> Figure:
    from ppcmk.audit.trail import AuditLog
    from ppcmk.evidence.model import Scope
    from ppcmk_sandbox import Sandbox
    from ppcmk_tasks.evidence import evidence_pack

    home = scratch / label
    os.environ["PPCMK_HOME"] = str(home)
    with Sandbox(scenario=f"fleet:{size}" if size else "default") as cloud:
        started = time.monotonic()
        conn, audit = live_the_year(cloud, label, home)
        year = time.monotonic() - started
        cloud.latency = latency
        best, cpu, result = float("inf"), 0.0, None
        for attempt in range(repeat):
            cpu_before, started = cpu_seconds(), time.monotonic()
            result = evidence_pack(conn, Scope(), output_dir=str(home / f"pack-{attempt}"),
                                   log=AuditLog(audit))
            took = time.monotonic() - started
            if took < best:
                best, cpu = took, cpu_seconds() - cpu_before
    assert result is not None
    return Figure(label, result.environments, year, best, cpu, result.changes,
                  sum(f.bytes for f in result.files))


def print_results(small: Figure, large: Figure, latency: float) -> None:
    print(f"\nppcmk evidence benchmark: a year of the demo story, {latency * 1000:g} ms per request\n")
    header = (f"{'tenant':<10}{'environments':>13}{'year s':>9}{'pack s':>9}{'CPU s':>8}{'changes':>9}"
              f"{'MB':>7}")
    print(header)
    print("-" * len(header))
    for figure in (small, large):
        print(f"{figure.label:<10}{figure.environments:>13}{figure.year_s:>9.1f}{figure.pack_s:>9.2f}"
              f"{figure.cpu_s:>8.1f}{figure.changes:>9}{figure.pack_bytes / 1e6:>7.1f}")
    ratio = large.pack_s / small.pack_s
    print(f"\ndefault scenario's pack: {small.pack_s:.2f} s (target < {DEFAULT_TARGET_S:g} s); "
          f"{large.environments} environments: {ratio:.2f} x (target <= {RATIO_TARGET:g})")
    print(f"{os.cpu_count()} cores, load average {' '.join(f'{load:.1f}' for load in os.getloadavg())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=5000, help="environments beyond the default scenario's")
    parser.add_argument("--latency", type=float, default=0.03, help="per-request latency (s) of the pack")
    parser.add_argument("--repeat", type=int, default=3, help="packs built per tenant; the best counts")
    args = parser.parse_args()

    from prefect.settings import PREFECT_API_URL, temporary_settings

    from ppcmk_cli.demo_backend import throwaway_prefect

    print(f"starting a Prefect server; a year on the default scenario and on {args.size} more environments "
          "...", flush=True)
    with tempfile.TemporaryDirectory(prefix="ppcmk-bench-evidence-") as scratch, \
            throwaway_prefect(Path(scratch) / "prefect") as ready, \
            temporary_settings(updates={PREFECT_API_URL: ready()}):
        small = measure("default", 0, args.latency, args.repeat, Path(scratch))
        large = measure("tenant", args.size, args.latency, args.repeat, Path(scratch))
    print_results(small, large, args.latency)
    if small.pack_s >= DEFAULT_TARGET_S or large.pack_s > RATIO_TARGET * small.pack_s:
        sys.exit(1)


if __name__ == "__main__":
    main()
