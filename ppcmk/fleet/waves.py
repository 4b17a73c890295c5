"""Run one per-environment step over a fleet: waves, a bounded number in flight, a failure gate.

Flows describe the fleet with `FleetSelector` (selection.py) and `WaveSpec` parameters, turn their
environments into `FleetMember`s, and hand `run_waves` a step that performs every lifecycle operation of one
environment in order. Each environment therefore has at most one operation of ours at a time; the service's
own 409 for an operation started elsewhere is waited out by the environment tasks. Every environment ends in
a reported state, including those never started because an earlier wave failed.

A step may also report its environment "parked": the operation runs on at the service and the step stopped
waiting for it (a deployment run frees its worker meanwhile, see parking.py). The wave's other members
finish, the later waves wait, and `run_waves(..., earlier=report)` continues from that report.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ppcmk.fleet.parking import DEFAULT_PARK_AFTER_MINUTES, ParkedOperation
from ppcmk.fleet.selection import FleetMember, parameter_object

EnvironmentState = Literal["succeeded", "unchanged", "failed", "not-started", "parked"]


class WaveSpec(BaseModel):
    """How a fleet is split and paced."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting is refused, not left at its default

    canary_skus: list[str] = Field(
        default_factory=lambda: ["Sandbox"],
        description="environment types that go first as a canary wave; [] for no canary",
    )
    wave_sizes: list[int] = Field(
        default_factory=list,
        description="sizes of the waves after the canary; the last size repeats; [] = the rest in one wave",
    )
    # Up to 1000: a waiting environment is one sleeping thread, and a whole fleet in flight is what keeps
    # T_N close to T_1 (bench/fleet.py); the services' throttling and `concurrency_limit` pace the calls.
    max_in_flight: int = Field(
        default=8, ge=1, le=1000, description="environments processed at the same time"
    )
    max_failures_per_wave: int = Field(
        default=0, ge=0, description="a wave with more failed environments than this stops the later waves"
    )
    concurrency_limit: str | None = Field(
        default=None,
        description="name of a Prefect global concurrency limit shared by all runs (e.g. 'ppcmk-bap'); "
        "it must exist (prefect gcl create ppcmk-bap --limit 20)",
    )
    park_after_minutes: float | None = Field(
        default=DEFAULT_PARK_AFTER_MINUTES,
        description="a top-level deployment run waits this long for a link/unlink, then parks (suspends, "
        "freeing its worker) until the ppcmk-wake flow resumes it; None = always wait inline",
    )

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, value: Any) -> Any:
        return parameter_object(cls, value, '{"wave_sizes": [5, 50]}')

    @field_validator("wave_sizes")
    @classmethod
    def _positive_sizes(cls, sizes: list[int]) -> list[int]:
        if any(size < 1 for size in sizes):
            raise ValueError("waves.wave_sizes: every size must be at least 1, e.g. [5, 50]")
        return sizes

    @field_validator("park_after_minutes")
    @classmethod
    def _positive_patience(cls, minutes: float | None) -> float | None:
        if minutes is not None and not minutes > 0:
            raise ValueError(
                f"waves.park_after_minutes: {minutes} is not above 0; use e.g. 30, or null to never park"
            )
        return minutes


def plan_waves(members: Sequence[FleetMember], spec: WaveSpec) -> list[list[FleetMember]]:
    """The canary wave (canary types) first, then the rest chunked by `wave_sizes`; no empty waves."""
    canary_skus = {s.lower() for s in spec.canary_skus}
    canary = [m for m in members if m.sku.lower() in canary_skus]
    rest = [m for m in members if m.sku.lower() not in canary_skus]
    waves = [canary] if canary else []
    sizes = iter(spec.wave_sizes)
    size = next(sizes, len(rest))
    while rest:
        waves.append(rest[:size])
        rest = rest[size:]
        size = next(sizes, size)
    return waves


class StepResult(BaseModel):
    state: Literal["succeeded", "unchanged", "parked"]
    detail: str = ""
    parked: ParkedOperation | None = None


class EnvironmentResult(BaseModel):
    environment_id: str
    name: str
    wave: int
    state: EnvironmentState
    detail: str = ""
    parked: ParkedOperation | None = None


class FleetReport(BaseModel):
    results: list[EnvironmentResult] = Field(default_factory=list)
    stopped_after_wave: int | None = None
    parked_in_wave: int | None = Field(
        default=None, description="the wave with parked members; later waves have not started (and no result)"
    )

    @property
    def failed(self) -> list[EnvironmentResult]:
        return [r for r in self.results if r.state == "failed"]

    @property
    def not_started(self) -> list[EnvironmentResult]:
        return [r for r in self.results if r.state == "not-started"]

    @property
    def parked(self) -> list[EnvironmentResult]:
        return [r for r in self.results if r.state == "parked"]

    def rows(self) -> list[dict[str, str | int]]:
        return [r.model_dump(exclude={"parked"}) for r in self.results]


Step = Callable[[FleetMember], StepResult]

_environment_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


@contextmanager
def environment_serialised(environment_id: str) -> Iterator[None]:
    """One lifecycle sequence at a time per environment within this process (other runs wait their turn)."""
    with _locks_guard:
        lock = _environment_locks.setdefault(environment_id.lower(), threading.Lock())
    with lock:
        yield


def run_waves(
    waves: Sequence[Sequence[FleetMember]],
    step: Step,
    spec: WaveSpec,
    on_wave_done: Callable[[int, list[EnvironmentResult]], None] | None = None,
    earlier: FleetReport | None = None,
) -> FleetReport:
    """Run `step` for every member, wave by wave, at most `spec.max_in_flight` at once.

    The step runs in a worker thread inside a copy of the caller's context, so Prefect tasks it calls
    belong to the calling flow run. An exception from the step marks that environment failed, with its
    message as the detail. A wave with a parked member ends the run (`parked_in_wave`) once its other
    members are done; the failure gate judges a wave only when none of it is parked.

    `earlier`, a parked report of the same waves, continues it: its results are kept, the parked wave runs
    only its parked members again, then the later waves run.
    """
    report = FleetReport(results=[r for r in (earlier.results if earlier else []) if r.state != "parked"])
    resume_wave = earlier.parked_in_wave if earlier else None
    for number, wave in enumerate(waves, start=1):
        if resume_wave is not None and number < resume_wave:
            continue  # finished before the park: its results are in `earlier`
        if report.parked_in_wave is not None:
            break  # parked: the later waves are for the next entry
        if report.stopped_after_wave is not None:
            report.results += [
                EnvironmentResult(
                    environment_id=m.id,
                    name=m.name,
                    wave=number,
                    state="not-started",
                    detail=f"not started: wave {report.stopped_after_wave} exceeded its failure "
                    f"threshold ({spec.max_failures_per_wave})",
                )
                for m in wave
            ]
            continue
        if number == resume_wave and earlier is not None:
            waiting = {r.environment_id for r in earlier.parked}
            wave = [m for m in wave if m.id in waiting]
        report.results += _run_one_wave(number, wave, step, spec)
        wave_results = [r for r in report.results if r.wave == number]
        if any(r.state == "parked" for r in wave_results):
            report.parked_in_wave = number
            continue
        if on_wave_done is not None:
            on_wave_done(number, wave_results)
        if sum(r.state == "failed" for r in wave_results) > spec.max_failures_per_wave:
            report.stopped_after_wave = number
    return report


def _run_one_wave(
    number: int, wave: Sequence[FleetMember], step: Step, spec: WaveSpec
) -> list[EnvironmentResult]:
    def guarded(member: FleetMember) -> EnvironmentResult:
        try:
            with _global_slot(spec.concurrency_limit), environment_serialised(member.id):
                outcome = step(member)
            return EnvironmentResult(
                environment_id=member.id,
                name=member.name,
                wave=number,
                state=outcome.state,
                detail=outcome.detail,
                parked=outcome.parked,
            )
        except Exception as failure:  # every environment must end in a reported state
            return EnvironmentResult(
                environment_id=member.id,
                name=member.name,
                wave=number,
                state="failed",
                detail=f"{type(failure).__name__}: {failure}",
            )

    with ThreadPoolExecutor(
        max_workers=min(spec.max_in_flight, max(len(wave), 1)), thread_name_prefix=f"ppcmk-wave-{number}"
    ) as pool:
        futures = [pool.submit(contextvars.copy_context().run, guarded, member) for member in wave]
        return [future.result() for future in futures]


def _global_slot(limit_name: str | None) -> AbstractContextManager[object]:
    if limit_name is None:
        return nullcontext()
    from prefect.concurrency.sync import concurrency

    return concurrency(limit_name, occupy=1, strict=True)
