"""Fleet runs of the link step against the sandbox: wave order, the failure gate, the in-flight bound,
throttling and busy environments, asserted on the sandbox's request log and its state (virtual time)."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from bench.link_fleet import link_fleet
from ppcmk.cloud.settings import ConnectionSettings
from ppcmk.fleet.selection import FleetSelector
from ppcmk.fleet.waves import FleetReport, WaveSpec
from ppcmk.models.azure import PolicyInfo
from tests.support.scenario import BUSY_SANDBOX, FLEET_PATTERN, FLEET_SIZE

LINK_POST = re.compile(r"/environments/([^/]+)/enterprisePolicies/Encryption/link$", re.IGNORECASE)
ENVIRONMENT_GET = re.compile(r"/scopes/admin/environments/([^/]+)$", re.IGNORECASE)
FLEET = FleetSelector(name_pattern=FLEET_PATTERN)


def linked_ids(cloud: Any, policy: PolicyInfo) -> set[str]:
    """Environments the sandbox itself has linked to the policy (ground truth, not our report)."""
    return {env.id for env in cloud.world.powerplatform.environments.values()
            if env.cmk is not None and env.cmk.system_id.lower() == (policy.system_id or "").lower()}


def lifecycle_spans(cloud: Any) -> dict[str, tuple[int, int]]:
    """Per environment, log positions from its first accepted link to its last read (the verify)."""
    starts: dict[str, int] = {}
    ends: dict[str, int] = {}
    for index, entry in enumerate(cloud.log.entries):
        linking = LINK_POST.search(entry.path)
        if entry.method == "POST" and linking and entry.status == 202:
            starts.setdefault(linking[1].lower(), index)
        reading = ENVIRONMENT_GET.search(entry.path)
        if entry.method == "GET" and reading:
            ends[reading[1].lower()] = index
    return {env: (start, ends[env]) for env, start in starts.items()}


def peak_overlap(spans: dict[str, tuple[int, int]]) -> int:
    events = sorted([(start, 1) for start, _ in spans.values()] + [(end, -1) for _, end in spans.values()])
    peak = current = 0
    for _, change in events:
        current += change
        peak = max(peak, current)
    return peak


def first_link_attempts(cloud: Any) -> dict[str, int]:
    attempts: dict[str, int] = {}
    for index, entry in enumerate(cloud.log.entries):
        linking = LINK_POST.search(entry.path)
        if entry.method == "POST" and linking:
            attempts.setdefault(linking[1].lower(), index)
    return attempts


def run(conn: ConnectionSettings, policy: PolicyInfo, waves: WaveSpec,
        selector: FleetSelector = FLEET, claimed: bool = False) -> FleetReport:
    return link_fleet(conn, policy, selector, waves, claimed=claimed)


def test_waves_run_in_order_canary_first(
    fleet: Any, pp_admin: ConnectionSettings, policy: PolicyInfo
) -> None:
    spec = WaveSpec(canary_skus=["Sandbox"], wave_sizes=[4], max_in_flight=4)
    report = run(pp_admin, policy, spec)

    assert [r.state for r in report.results] == ["succeeded"] * FLEET_SIZE
    by_wave: dict[int, list[str]] = defaultdict(list)
    for result in report.results:
        by_wave[result.wave].append(result.environment_id.lower())
    assert [len(by_wave[w]) for w in sorted(by_wave)] == [3, 4, 4, 1]  # 3 Sandbox-type canaries, then 4s
    canaries = {r.environment_id for r in report.results if r.wave == 1}
    assert {fleet.world.powerplatform.environment(e).sku for e in canaries} == {"Sandbox"}
    spans, attempts = lifecycle_spans(fleet), first_link_attempts(fleet)
    for wave in sorted(by_wave)[:-1]:
        finished = max(spans[env][1] for env in by_wave[wave])
        next_started = min(attempts[env] for env in by_wave[wave + 1])
        assert finished < next_started, f"wave {wave + 1} started linking before wave {wave} was verified"
    assert len(linked_ids(fleet, policy)) == FLEET_SIZE + 1  # + Finance on CMK, linked by the scenario


def test_a_failed_canary_stops_the_later_waves(
    fleet: Any, pp_admin: ConnectionSettings, policy: PolicyInfo
) -> None:
    canary = next(env for env in fleet.world.powerplatform.environments.values()
                  if env.display_name == "Fleet europe 0005")
    fleet.faults.add(method="POST", path=rf"/environments/{canary.id}/enterprisePolicies/Encryption/link$",
                     status=400, times=None)
    spec = WaveSpec(canary_skus=["Sandbox"], max_in_flight=4, max_failures_per_wave=0)
    report = run(pp_admin, policy, spec)

    results = {r.environment_id: r for r in report.results}
    assert results[canary.id].state == "failed" and "400" in results[canary.id].detail
    assert sorted(r.state for r in report.results if r.wave == 1 and r.environment_id != canary.id) == [
        "succeeded", "succeeded"]
    later = [r for r in report.results if r.wave == 2]
    assert len(later) == 9 and {r.state for r in later} == {"not-started"}  # verified, the reason kept
    assert all("wave 1 exceeded its failure threshold" in r.detail for r in later)
    assert report.stopped_after_wave == 1
    attempted = set(first_link_attempts(fleet))
    production = {r.environment_id.lower() for r in report.results if r.wave == 2}
    assert not attempted & production, "a later wave sent a link call after the canary failed"
    assert linked_ids(fleet, policy).isdisjoint({r.environment_id for r in report.results if r.wave == 2})


def test_the_in_flight_bound_is_never_exceeded(
    fleet: Any, pp_admin: ConnectionSettings, policy: PolicyInfo
) -> None:
    spec = WaveSpec(canary_skus=[], max_in_flight=3)
    report = run(pp_admin, policy, spec)

    assert {r.state for r in report.results} == {"succeeded"}
    spans = lifecycle_spans(fleet)
    assert len(spans) == FLEET_SIZE
    assert peak_overlap(spans) == 3  # reached (so the check means something) and never exceeded


def test_each_environment_is_read_once_before_and_once_after_its_link(
    fleet: Any, pp_admin: ConnectionSettings, policy: PolicyInfo
) -> None:
    report = run(pp_admin, policy, WaveSpec(canary_skus=[], max_in_flight=12))

    assert {r.state for r in report.results} == {"succeeded"}
    reads: dict[str, int] = defaultdict(int)
    for entry in fleet.log.entries:
        reading = ENVIRONMENT_GET.search(entry.path)
        if entry.method == "GET" and reading:
            reads[reading[1].lower()] += 1
    assert set(reads.values()) == {2}, reads  # Managed Environment check and link share one read
    listings = fleet.log.count(method="GET", path=r"/scopes/admin/environments$")
    assert listings == 2  # the selection and the verification of the whole fleet, not a read per environment


def test_an_environment_busy_with_another_operation_is_waited_for(
    fleet: Any, pp_admin: ConnectionSettings, policy: PolicyInfo
) -> None:
    # Busy Sandbox: a Managed Environment change runs for 2 hours; linking must wait for it, not fail.
    members = ["Fleet europe 0001", "Fleet europe 0002"]
    selector = FleetSelector(environment_ids=[BUSY_SANDBOX, *members])
    report = run(pp_admin, policy, WaveSpec(canary_skus=[], max_in_flight=3), selector)

    assert {r.state for r in report.results} == {"succeeded"}, report.rows()
    busy_posts = [e.status for e in fleet.log.entries if e.method == "POST" and BUSY_SANDBOX in e.path]
    # the running operation is read before the start, so the link is sent once, after it ended (never a 409)
    assert busy_posts == [202]
    assert BUSY_SANDBOX in linked_ids(fleet, policy)


def test_a_throttled_fleet_slows_down_and_converges(
    fleet: Any, pp_admin: ConnectionSettings, policy: PolicyInfo
) -> None:
    # Per caller, 3 admin API calls a minute (on the sandbox clock). Each wait moves the shared clock, so how
    # many calls share a minute depends on how the threads interleave; even one at a time, an environment's
    # last poll, its verify read, the next one's read and its link share an instant, which goes over.
    fleet.world.settings.throttle_bap_per_minute = 3
    # claimed as the runbooks claim: a link task retried after a throttled poll waits on its own link
    report = run(pp_admin, policy, WaveSpec(canary_skus=[], max_in_flight=6), claimed=True)

    assert {r.state for r in report.results} == {"succeeded"}, report.rows()
    assert fleet.log.count(status=429, caller="pp-admin") > 0  # it was throttled, and waited it out
    assert {r.environment_id for r in report.results} <= linked_ids(fleet, policy)


def test_a_global_concurrency_limit_bounds_every_run_sharing_it(
    fleet: Any, pp_admin: ConnectionSettings, policy: PolicyInfo
) -> None:
    from prefect import get_client

    with get_client(sync_client=True) as client:  # what `prefect gcl create ppcmk-bap-test --limit 2` does
        client.upsert_global_concurrency_limit_by_name("ppcmk-bap-test", 2)
    spec = WaveSpec(canary_skus=[], max_in_flight=4, concurrency_limit="ppcmk-bap-test")
    four = FleetSelector(environment_ids=[f"Fleet europe 000{i}" for i in range(4)])
    report = run(pp_admin, policy, spec, four)

    assert {r.state for r in report.results} == {"succeeded"}
    # the service-wide limit wins over max_in_flight (slots are handed out through the Prefect server, whose
    # acquire retries pace the runs, so the peak may stay below the limit)
    assert 1 <= peak_overlap(lifecycle_spans(fleet)) <= 2
