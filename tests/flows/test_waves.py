"""Fleet machinery: selection, wave order, the in-flight bound, the failure gate, known end states."""

from __future__ import annotations

import threading

import pytest

from ppcmk.fleet.selection import FleetMember, FleetSelector
from ppcmk.fleet.waves import StepResult, WaveSpec, plan_waves, run_waves

FLEET = [
    FleetMember(id="e1", name="fin-prod", sku="Production", geo="europe"),
    FleetMember(id="e2", name="fin-dev", sku="Sandbox", geo="europe"),
    FleetMember(id="e3", name="hr-prod", sku="Production", geo="unitedstates"),
    FleetMember(id="e4", name="hr-dev", sku="Sandbox", geo="unitedstates"),
    FleetMember(id="e5", name="ops", sku="Production", geo="europe"),
    FleetMember(id="e6", name="ops-2", sku="Production", geo="europe"),
]


def test_selector_filters_combine_and_unknown_ids_are_named() -> None:
    europe_prod = FleetSelector(geo="Europe", skus=["production"])
    assert [m.id for m in europe_prod.select(FLEET)] == ["e1", "e5", "e6"]
    assert [m.id for m in FleetSelector(name_pattern="hr-*").select(FLEET)] == ["e3", "e4"]
    assert [m.id for m in FleetSelector(environment_ids=["ops", "e1"]).select(FLEET)] == ["e1", "e5"]
    with pytest.raises(ValueError, match=r"environment_ids: nope not found"):
        FleetSelector(environment_ids=["nope", "e1"]).select(FLEET)


def test_canary_wave_first_then_sized_waves_with_the_last_size_repeating() -> None:
    waves = plan_waves(FLEET, WaveSpec(wave_sizes=[1, 2]))
    assert [[m.id for m in wave] for wave in waves] == [["e2", "e4"], ["e1"], ["e3", "e5"], ["e6"]]
    assert [[m.id for m in w] for w in plan_waves(FLEET, WaveSpec(canary_skus=[]))] == [[m.id for m in FLEET]]


def test_wave_sizes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="wave_sizes"):
        WaveSpec(wave_sizes=[0])


def test_waves_run_in_order_and_the_in_flight_bound_holds() -> None:
    lock = threading.Lock()
    in_flight, peak, order = [0], [0], []
    barrier_free = threading.Event()

    def step(member: FleetMember) -> StepResult:
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
            order.append(member.id)
        barrier_free.wait(0.02)  # overlap the steps so the bound is actually exercised
        with lock:
            in_flight[0] -= 1
        return StepResult(state="succeeded")

    spec = WaveSpec(canary_skus=["Sandbox"], max_in_flight=2)
    report = run_waves(plan_waves(FLEET, spec), step, spec)
    assert peak[0] == 2
    assert set(order[:2]) == {"e2", "e4"}  # the canary wave finished before the rest started
    assert [r.state for r in report.results] == ["succeeded"] * 6


def test_a_failing_wave_stops_the_next_and_every_environment_is_reported() -> None:
    def step(member: FleetMember) -> StepResult:
        if member.id == "e4":
            raise RuntimeError("link operation Failed twice")
        return StepResult(state="unchanged", detail="already linked")

    spec = WaveSpec(wave_sizes=[2], max_failures_per_wave=0)
    report = run_waves(plan_waves(FLEET, spec), step, spec)
    states = {r.environment_id: r.state for r in report.results}
    assert states == {"e2": "unchanged", "e4": "failed", "e1": "not-started", "e3": "not-started",
                      "e5": "not-started", "e6": "not-started"}
    assert report.stopped_after_wave == 1
    assert "RuntimeError: link operation Failed twice" in report.failed[0].detail
    assert "wave 1 exceeded" in report.not_started[0].detail


def test_a_tolerated_failure_lets_the_next_wave_run() -> None:
    spec = WaveSpec(wave_sizes=[4], max_failures_per_wave=1)

    def step(member: FleetMember) -> StepResult:
        if member.id == "e2":
            raise RuntimeError("boom")
        return StepResult(state="succeeded")

    report = run_waves(plan_waves(FLEET, spec), step, spec)
    assert report.stopped_after_wave is None
    assert len(report.failed) == 1 and not report.not_started
