"""Read benchmark (`make bench`'s read phase): doctor, report and watch over a tenant of N environments,
side by side with the same over the default scenario, each sandbox in its own process with a per-request
latency. Prints each phase's wall time, the ratio tenant / default, and the calls made (per environment).

doctor is what `ppcmk doctor` runs (every key of every vault scanned; a tenant-wide survey, which reads the
lifecycle operations only of environments whose one problem is not being a Managed Environment); report and
watch are the runbooks, run as local flow runs on a throwaway Prefect server.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python bench/reads.py` from a clone

from bench.measure import SandboxAdmin, cpu_seconds, process_cpu_seconds
from bench.sandbox_process import FleetCloud, SandboxProcess
from ppcmk.cloud.parallel import DEFAULT_CONCURRENCY as READ_CONCURRENCY
from ppcmk.cloud.settings import ConnectionSettings, TargetSettings
from ppcmk_cli.sandbox_blocks import service_credential

READER = "runbook"
PP_ADMIN = "pp-admin@contoso.example"
TARGET = "ep-existing"


@dataclass
class Phase:
    name: str
    environments: int
    wall_s: float
    cpu_s: float
    sandbox_cpu_s: float
    calls: int


class Tenant:
    """One sandbox process, its connection and a block for the runbooks."""

    def __init__(self, label: str, size: int, latency: float) -> None:
        self.label = label
        self.process = SandboxProcess(FleetCloud(size=size, link_seconds=60, retry_after_seconds=5,
                                                 latency_seconds=latency))
        endpoints = self.process.endpoints
        self.admin = SandboxAdmin(endpoints["url"], endpoints["ca"])
        self.connection_data = {
            "cloud": "sandbox", "tenant_id": endpoints["tenant_id"],
            "subscription_id": endpoints["subscription_id"],
            "sandbox_url": endpoints["url"], "ca_bundle": endpoints["ca"], "time_mode": "real",
            **service_credential(endpoints["credentials"], READER)}
        self.conn = ConnectionSettings.model_validate(self.connection_data)
        vault = (f"/subscriptions/{endpoints['subscription_id']}/resourceGroups/rg-cmk/providers/"
                 "Microsoft.KeyVault/vaults/kv-cmk-prod")
        self.target = TargetSettings(vault_id=vault, key_name="cmk-prod", key_size=3072, policy_name=TARGET,
                                     resource_group="rg-cmk", geo="europe")
        self.block = f"bench-reads-{label}"

    def save_block(self) -> None:
        from ppcmk_blocks import CmkConnection

        CmkConnection.model_validate(self.connection_data).save(self.block, overwrite=True)

    def measure(self, name: str, environments: int, run: Callable[[], Any]) -> Phase:
        self.admin.clear_log()
        sandbox_cpu = process_cpu_seconds([self.process.pid])
        cpu, started = cpu_seconds(), time.monotonic()
        run()
        wall, cpu = time.monotonic() - started, cpu_seconds() - cpu
        sandbox_cpu = process_cpu_seconds([self.process.pid]) - sandbox_cpu
        calls = sum(1 for entry in self.admin.log() if entry["caller"] == READER)
        return Phase(name, environments, wall, cpu, sandbox_cpu, calls)

    def phases(self, environments: int, out: Path, only: set[str]) -> list[Phase]:
        from ppcmk_cli.doctor import DoctorInputs, run_checks
        from ppcmk_flows.report import report
        from ppcmk_flows.watch import watch

        inputs = DoctorInputs(self.conn, [self.target], self.label, scan_by_default=True)
        runs: dict[str, Callable[[], Any]] = {
            "doctor": lambda: run_checks(inputs, None, PP_ADMIN, scan=True),
            "report": lambda: report(connection=self.block, output_dir=str(out)),
            "watch": lambda: watch(connection=self.block, pp_admins=[PP_ADMIN]),
        }
        return [self.measure(name, environments, run) for name, run in runs.items() if name in only]

    def stop(self) -> None:
        self.process.stop()


def print_results(small: list[Phase], large: list[Phase], latency: float) -> None:
    print(f"\nppcmk read benchmark: {latency * 1000:g} ms per request; default scenario "
          f"({small[0].environments} environments) vs a tenant of {large[0].environments}\n")
    header = (f"{'phase':<8}{'default s':>10}{'calls':>7}{'tenant s':>10}{'calls':>7}{'calls/env':>11}"
              f"{'ratio':>7}{'CPU s':>8}{'sandbox':>9}")
    print(header)
    print("-" * len(header))
    for a, b in zip(small, large, strict=True):
        extra = (b.calls - a.calls) / max(b.environments - a.environments, 1)
        print(f"{a.name:<8}{a.wall_s:>10.2f}{a.calls:>7}{b.wall_s:>10.2f}{b.calls:>7}{extra:>11.3f}"
              f"{b.wall_s / a.wall_s:>7.2f}{b.cpu_s:>8.1f}{b.sandbox_cpu_s:>9.1f}")
    for a, b in zip(small, large, strict=True):
        if a.name == "doctor":
            print(f"\ndoctor over {b.environments} environments = {b.wall_s / a.wall_s:.2f} x the default "
                  f"scenario (target <= 3), {READ_CONCURRENCY} reads in flight")
    print("calls/env: calls beyond the default scenario's, per additional environment (none: the listing "
          "covers the tenant's managed environments)")
    print(f"CPU s: this process over the tenant; sandbox: the tenant sandbox's process; {os.cpu_count()} "
          "cores, load average "
          f"{' '.join(f'{load:.1f}' for load in os.getloadavg())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=5000, help="environments in the large tenant")
    parser.add_argument("--latency", type=float, default=0.03, help="per-request latency (s)")
    parser.add_argument("--phases", default="doctor,report,watch", help="which reads, comma-separated")
    args = parser.parse_args()
    only = set(args.phases.split(","))

    from prefect.settings import PREFECT_API_URL, temporary_settings

    from ppcmk_cli.demo_backend import throwaway_prefect

    print(f"starting a Prefect server and two sandboxes (default, {args.size} environments) ...", flush=True)
    with tempfile.TemporaryDirectory(prefix="ppcmk-bench-reads-") as scratch:
        os.environ["PPCMK_HOME"] = str(Path(scratch) / "home")
        tenants = [Tenant("default", 0, args.latency), Tenant("tenant", args.size, args.latency)]
        try:
            with throwaway_prefect(Path(scratch) / "prefect") as ready, \
                    temporary_settings(updates={PREFECT_API_URL: ready()}):
                results = []
                tenants[0].save_block()
                tenants[0].phases(12, Path(scratch) / "warm-up", only)  # imports, TLS, the first flow runs
                for tenant in tenants:
                    tenant.save_block()
                    print(f"measuring {tenant.label} ...", flush=True)
                    results.append(tenant.phases(12 + (args.size if tenant.label == "tenant" else 0),
                                                 Path(scratch) / tenant.label, only))
                print_results(results[0], results[1], args.latency)
        finally:
            for tenant in tenants:
                tenant.stop()


if __name__ == "__main__":
    main()
