"""Fleet benchmark (`make bench`): ppcmk linking 1, 50, 200 and 500 environments, side by side in one run.

What is measured: the Power Platform half of onboarding after the handoff (`bench.link_fleet`: onboard's own
link step per environment, one task run: read, Managed Environment where needed, link, wait inside the task
honouring Retry-After, read back; then onboard's verification, one listing), in one wave with every
environment in flight, against a sandbox in its own process whose clock follows real time, with a
per-request latency and link operations lasting a fixed real time. The approval pause of the full onboard
flow is left out: it is one human wait per run, whatever the fleet size. The one-at-a-time baseline runs the
same step for a few environments with one in flight, as the scripts do.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # 500 "Finished in state Completed" lines apiece
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python bench/fleet.py` from a clone

from bench.link_fleet import link_fleet, read_linkable_policy
from bench.measure import (
    CallCounts,
    CpuSampler,
    SandboxAdmin,
    child_pids,
    count_task_runs,
    cpu_seconds,
    minimum_calls,
    peak_rss_mib,
    process_cpu_seconds,
)
from bench.sandbox_process import FleetCloud, SandboxProcess
from ppcmk.cloud.settings import ConnectionSettings, TargetSettings
from ppcmk.fleet.selection import FleetSelector
from ppcmk.fleet.waves import WaveSpec
from ppcmk.models.azure import PolicyInfo
from ppcmk_cli.sandbox_blocks import service_credential

CALLER = "pp-admin"


@dataclass
class Phase:
    label: str
    environments: int
    in_flight: int
    wall_s: float
    cpu_s: float
    sandbox_cpu_s: float
    server_cpu_s: float
    calls: CallCounts
    minimum: int
    task_runs: int
    started_at: float


class Bench:
    def __init__(self, cloud: FleetCloud, conn: ConnectionSettings, policy: PolicyInfo, admin: SandboxAdmin,
                 sampler: CpuSampler, sandbox_pid: int) -> None:
        self.cloud, self.conn, self.policy = cloud, conn, policy
        self.admin, self.sampler = admin, sampler
        self.sandbox_pids = [sandbox_pid]
        self.server_pids = [pid for pid in child_pids() if pid != sandbox_pid]  # the Prefect test server
        self._next = 0

    def take(self, count: int) -> list[str]:
        """Names of `count` environments no earlier phase touched."""
        names = [f"Fleet europe {i:04d}" for i in range(self._next, self._next + count)]
        self._next += count
        return names

    def run(self, label: str, names: list[str], in_flight: int) -> Phase:
        self.admin.clear_log()
        sandbox_cpu = process_cpu_seconds(self.sandbox_pids)
        server_cpu = process_cpu_seconds(self.server_pids)
        cpu, started = cpu_seconds(), time.monotonic()
        state = link_fleet(self.conn, self.policy, FleetSelector(environment_ids=names) if names else
                           FleetSelector(name_pattern="no environment is called this"),
                           WaveSpec(canary_skus=[], max_in_flight=in_flight), return_state=True)
        wall, cpu = time.monotonic() - started, cpu_seconds() - cpu
        # the other processes' CPU before the log read and the task-run count below add to it
        sandbox_cpu = process_cpu_seconds(self.sandbox_pids) - sandbox_cpu
        server_cpu = process_cpu_seconds(self.server_pids) - server_cpu
        report = state.result()
        # "unchanged" is verified too: a task retried after a transient error found its link already done
        unfinished = [r for r in report.results if r.state not in ("succeeded", "unchanged")]
        if unfinished:
            raise SystemExit(f"{label}: {len(unfinished)} environment(s) not linked, e.g. {unfinished[0]}")
        flow_run_id = state.state_details.flow_run_id
        assert flow_run_id is not None
        return Phase(label, len(names), in_flight, wall, cpu, sandbox_cpu, server_cpu,
                     CallCounts.of(self.admin.log(), CALLER),
                     minimum_calls(len(names), self.cloud.link_seconds, self.cloud.retry_after_seconds),
                     count_task_runs(flow_run_id, expected_at_least=len(names) + 1), started)

    def waiting_cost(self, phase: Phase) -> tuple[float, float]:
        """CPU seconds per environment per minute while all of a phase's links were running (between half
        and nine tenths of the link duration, when every link has started and none has finished)."""
        start = phase.started_at + self.cloud.link_seconds * 0.5
        cpu, wall = self.sampler.between(start, phase.started_at + self.cloud.link_seconds * 0.9)
        return (cpu / phase.environments / wall * 60 if wall else 0.0), wall


def print_results(cloud: FleetCloud, phases: list[Phase], baseline: Phase, bench: Bench) -> None:
    single = phases[0]
    print(f"\nppcmk fleet benchmark: link {cloud.link_seconds:g} s (real), Retry-After "
          f"{cloud.retry_after_seconds} s, latency {cloud.latency_seconds * 1000:g} ms per request, "
          f"all environments of a run in flight\n")
    header = (f"{'run':<22}{'N':>5}{'wall s':>9}{'T_N/T1':>8}{'calls/env':>11}{'min/env':>9}{'ratio':>7}"
              f"{'polls/env':>11}{'429s':>6}{'tasks/env':>11}{'CPU s/env':>11}{'sandbox':>9}{'server':>8}")
    print(header)
    print("-" * len(header))
    for phase in [*phases, baseline]:
        n = phase.environments
        print(f"{phase.label:<22}{n:>5}{phase.wall_s:>9.1f}{phase.wall_s / single.wall_s:>8.2f}"
              f"{phase.calls.bap / n:>11.2f}{phase.minimum / n:>9.2f}{phase.calls.bap / phase.minimum:>7.2f}"
              f"{phase.calls.polls / n:>11.2f}{phase.calls.throttled:>6}{phase.task_runs / n:>11.2f}"
              f"{phase.cpu_s / n:>11.3f}{phase.sandbox_cpu_s / n:>9.3f}{phase.server_cpu_s / n:>8.3f}")
    largest = phases[-1]
    per_minute, window = bench.waiting_cost(largest)
    one_at_a_time = baseline.wall_s / baseline.environments
    print(f"\nT_{largest.environments} / T1 = {largest.wall_s / single.wall_s:.2f} (target <= 1.3)")
    print(f"one at a time: {baseline.environments} environments took {baseline.wall_s:.1f} s = "
          f"{baseline.wall_s / single.wall_s:.2f} x T1; {largest.environments} that way would take about "
          f"{one_at_a_time * largest.environments / 60:.0f} min, ppcmk took {largest.wall_s:.1f} s "
          f"({one_at_a_time * largest.environments / largest.wall_s:.0f}x faster)")
    print(f"calls: {largest.calls.bap / largest.minimum:.2f} x the minimum at N={largest.environments} "
          "(read + link + ceil(duration / Retry-After) polls + read-back per environment, one listing "
          "per run; target <= 1.1)")
    print(f"waiting: {per_minute * 1000:.2f} ms CPU per environment per minute of waiting "
          f"(N={largest.environments}, {window:.1f} s window); "
          f"{largest.calls.polls / largest.environments:.2f} polls per environment, all inside its one link "
          "task run")
    print("CPU s/env: the ppcmk process; sandbox, server: the sandbox's and the Prefect server's processes "
          f"(all share this machine's {os.cpu_count()} cores; load average now "
          f"{' '.join(f'{load:.1f}' for load in os.getloadavg())})")
    print(f"peak memory of the ppcmk process: {peak_rss_mib():.0f} MiB (target <= 1024; the sandbox and the "
          "Prefect server run in their own processes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,200,500", help="fleet sizes, comma-separated")
    parser.add_argument("--link-seconds", type=float, default=20.0, help="real duration of a link operation")
    parser.add_argument("--retry-after", type=int, default=5, help="Retry-After of a running operation (s)")
    parser.add_argument("--latency", type=float, default=0.03, help="per-request latency (s)")
    parser.add_argument("--baseline", type=int, default=2, help="environments linked one at a time")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    cloud = FleetCloud(size=1 + sum(sizes) + args.baseline, link_seconds=args.link_seconds,
                       retry_after_seconds=args.retry_after, latency_seconds=args.latency)

    from prefect.testing.utilities import prefect_test_harness

    print(f"starting a Prefect server and a sandbox with {cloud.size} environments ...", flush=True)
    sandbox = SandboxProcess(cloud)
    try:
        with prefect_test_harness(server_startup_timeout=120), CpuSampler().running() as sampler:
            endpoints = sandbox.endpoints
            conn = ConnectionSettings.model_validate({
                "cloud": "sandbox", "tenant_id": endpoints["tenant_id"],
                "subscription_id": endpoints["subscription_id"], "sandbox_url": endpoints["url"],
                "ca_bundle": endpoints["ca"], "time_mode": "real",
                "operation_poll_floor": float(args.retry_after),
                **service_credential(endpoints["credentials"], CALLER)})
            vault = (f"/subscriptions/{endpoints['subscription_id']}/resourceGroups/rg-cmk/providers/"
                     "Microsoft.KeyVault/vaults/kv-cmk-prod")
            target = TargetSettings(vault_id=vault, key_name="cmk-prod", policy_name="ep-existing",
                                    resource_group="rg-cmk", geo="europe")
            bench = Bench(cloud, conn, read_linkable_policy(conn, target),
                          SandboxAdmin(endpoints["url"], endpoints["ca"]), sampler, sandbox.pid)
            bench.run("warm-up (no environment)", [], 1)
            phases = [bench.run("T1 (one environment)", bench.take(1), 1)]
            for size in sizes:
                print(f"linking {size} environments ...", flush=True)
                phases.append(bench.run(f"T_{size}", bench.take(size), size))
            print(f"linking {args.baseline} environments one at a time ...", flush=True)
            baseline = bench.run("one at a time", bench.take(args.baseline), 1)
            print_results(cloud, phases, baseline, bench)
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main()
