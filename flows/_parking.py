"""Parking: a deployment run stops holding its worker while the service links or unlinks for hours or days.

An encryption may take days. Waiting inline costs one sleeping thread per environment, but in a deployment
it also holds a worker process the whole time. So a top-level deployment run waits only
`WaveSpec.park_after_minutes` per operation; then the wave's other members finish, the run saves a
checkpoint and suspends (`ppcmk-park-<n>`), and the process exits. The `ppcmk-wake` flow (or `ppcmk runs
wake`) resumes it; Prefect re-runs the flow function from the top, which finds the checkpoint of its own
flow run id, skips planning, the Key Vault half and the approval, and continues the waves: each parked
environment polls its saved operation once (no second link/unlink) and parks again if it still runs.

The checkpoint is JSON (pydantic, never pickle) in Prefect's result storage, keyed by the flow run id, so a
worker on another machine resumes it when the result storage is shared. It holds the approved plan, the
approvers, the approver's connection BLOCK NAME (never its settings: they may hold a client secret), the
waves, the results so far with the parked operations' continuation tokens, and the number of parks.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, TypedDict, TypeVar, cast
from uuid import UUID

from prefect import get_run_logger
from prefect.context import FlowRunContext
from prefect.filesystems import WritableFileSystem
from prefect.flow_runs import suspend_flow_run
from prefect.results import get_default_result_storage, get_result_store
from prefect.utilities.asyncutils import run_coro_as_sync
from pydantic import BaseModel, Field

from ppcmk.approvals.gate import can_suspend
from ppcmk.audit import trail as audit
from ppcmk.cloud import request_log
from ppcmk.cloud.settings import ConnectionSettings
from ppcmk.errors import ConfigError
from ppcmk.fleet.parking import PARK_KEY_PREFIX, ParkedOperation
from ppcmk.fleet.selection import FleetMember
from ppcmk.fleet.waves import EnvironmentResult, FleetReport, StepResult, WaveSpec, plan_waves, run_waves
from ppcmk.models.environments import EnvironmentChange, OperationKind
from ppcmk.safety.plan import Plan
from ppcmk.services.factory import ClientFactory
from ppcmk.services.ppadmin.pollers import ContinuationToken

CHECKPOINT_FOLDER = "ppcmk-park"
# A parked run the waker never resumes fails this long after its last operation's deadline (Prefect's
# pause timeout), so a stopped waker shows up as a failed run instead of a run parked forever.
TIMEOUT_MARGIN = timedelta(hours=1)


class ApprovedWork(BaseModel):
    """What a procedure has settled before its waves: the approved plan and who approved it. Each procedure
    extends it with what its steps need (policies, the approver's connection block name)."""

    plan: Plan
    approvers: list[str]


W = TypeVar("W", bound=ApprovedWork)


class Checkpoint(BaseModel):
    procedure: str
    work: dict[str, Any] = Field(description="the procedure's ApprovedWork, as JSON")
    waves: list[list[FleetMember]]
    report: FleetReport = Field(description="results so far; parked members carry their continuation tokens")
    parks: int = Field(ge=1, description="how often this run parked so far (the next key is parks + 1)")


@dataclass(frozen=True)
class Resumed(Generic[W]):
    """A parked run's state, read back on re-entry."""

    work: W
    waves: list[list[FleetMember]]
    report: FleetReport
    parks: int


class WaitOptions(TypedDict):
    deadline: timedelta | datetime
    patience: timedelta | None
    continuation_token: str | None
    attempts_so_far: int


@dataclass(frozen=True)
class Waiting:
    """How long a step waits inline and which operations an earlier entry of this run parked."""

    patience: timedelta | None = None  # None: wait up to the operation's deadline (never park)
    parked: Mapping[str, ParkedOperation] = field(default_factory=dict)

    def saved(self, environment_id: str, kind: OperationKind) -> ParkedOperation | None:
        """The parked operation of this kind on this environment (change_policy parks unlinks and links)."""
        found = self.parked.get(environment_id)
        return found if found is not None and found.kind == kind else None

    def options(self, saved: ParkedOperation | None, deadline: timedelta) -> WaitOptions:
        """The link/unlink task's wait arguments. A parked operation keeps its own deadline (it does not
        restart with each entry) and is polled once per wake (it parks again while it runs); a new one gets
        `deadline` from now and the full patience."""
        if saved is None:
            return WaitOptions(deadline=deadline, patience=self.patience, continuation_token=None,
                               attempts_so_far=0)
        once = timedelta(0) if self.patience is not None else None
        return WaitOptions(deadline=saved.deadline, patience=once, continuation_token=saved.token,
                           attempts_so_far=saved.attempts)


def waiting_for(spec: WaveSpec, resumed: Resumed[Any] | None = None) -> Waiting:
    """Park only in a top-level deployment run (only a deployment can start a suspended run again); local
    runs and tests hold their process anyway, so they wait inline."""
    if spec.park_after_minutes is None or not can_suspend():
        return Waiting()
    parked = {r.environment_id: r.parked for r in resumed.report.parked if r.parked} if resumed else {}
    return Waiting(patience=timedelta(minutes=spec.park_after_minutes), parked=parked)


def parked_operation(
    conn: ConnectionSettings,
    change: EnvironmentChange,
    saved: ParkedOperation | None,
    deadline: timedelta,
    waiting: Waiting,
) -> ParkedOperation | None:
    """The operation to park when `change` is still running only because the step's patience ran out; None
    when it is done, failed, or past its deadline (a failure, as for a run that never parks)."""
    token = change.continuation_token
    if waiting.patience is None or change.status != "StillRunning" or token is None:
        return None
    if change.kind not in ("link", "unlink"):  # a governance change has its own short deadline
        return None
    now = ClientFactory.for_settings(conn).now()
    until = saved.deadline if saved else ContinuationToken.decode(token).started_at + deadline
    if now >= until:
        return None
    return ParkedOperation(kind=change.kind, token=token, attempts=max(change.attempts, 1), deadline=until)


def parked_step(parked: ParkedOperation) -> StepResult:
    return StepResult(
        state="parked",
        detail=f"{parked.kind} still running after {parked.attempts} attempt(s); parked",
        parked=parked,
    )


# ----------------------------------------------------------------------------------------- checkpoint


def _flow_run_id() -> UUID | None:
    run = FlowRunContext.get()
    return run.flow_run.id if run is not None and run.flow_run is not None else None


def _has_parked() -> bool:
    """Whether this flow run suspended with a park key before: only then is there a checkpoint to read (a
    fresh run never touches the storage, and a missing checkpoint of a parked run is an error, not None)."""
    run = FlowRunContext.get()
    if run is None or run.flow_run is None:
        return False
    return any(key.startswith(PARK_KEY_PREFIX) for key in run.flow_run.empirical_policy.pause_keys or ())


def _settled(value: Any) -> Any:
    """Storage blocks are sync, async or both (Prefect dispatches by context); this flow code is sync."""
    return run_coro_as_sync(value) if inspect.iscoroutine(value) else value


def _storage() -> WritableFileSystem:
    """The flow run's result storage (the flow's, else Prefect's default: settings, server, local path)."""
    storage = get_result_store().result_storage
    if storage is None:
        storage = cast(WritableFileSystem, _settled(get_default_result_storage()))
    return storage


def checkpoint_path(flow_run_id: UUID) -> str:
    return f"{CHECKPOINT_FOLDER}/{flow_run_id}.json"


def _write(path: str, content: bytes) -> None:
    _settled(_storage().write_path(path, content))


def save_checkpoint(flow_run_id: UUID, checkpoint: Checkpoint) -> None:
    _write(checkpoint_path(flow_run_id), checkpoint.model_dump_json().encode())


def load_checkpoint(flow_run_id: UUID) -> Checkpoint | None:
    """The checkpoint, or None once cleared (the run finished its waves)."""
    storage = _storage()
    try:
        content = cast(bytes, _settled(storage.read_path(checkpoint_path(flow_run_id))))
    except Exception as missing:  # each storage block reports a missing path its own way
        raise ConfigError(
            "result storage",
            f"flow run {flow_run_id} parked, but its checkpoint is not in {type(storage).__name__} "
            f"({missing})",
            f"copy {checkpoint_path(flow_run_id)} from the result storage of the worker that parked it into "
            "the result storage every worker shares (PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK, see "
            "docs/WORKERS.md), then retry the run (Retry in the UI); resuming it again cannot work",
        ) from missing
    return Checkpoint.model_validate_json(content) if content.strip() else None


def clear_checkpoint(flow_run_id: UUID) -> None:
    """Empty it: storage blocks can write but not delete, and an empty checkpoint tells a re-run of a run
    that parked once (its park keys stay fired) that nothing is left to continue."""
    _write(checkpoint_path(flow_run_id), b"")


def resumed(procedure: str, work_type: type[W]) -> Resumed[W] | None:
    """The state a parked run of `procedure` saved, when this flow run is such a run re-entering."""
    flow_run_id = _flow_run_id()
    if flow_run_id is None or not _has_parked():
        return None
    checkpoint = load_checkpoint(flow_run_id)
    if checkpoint is None:
        return None
    if checkpoint.procedure != procedure:
        raise ConfigError(
            "checkpoint",
            f"flow run {flow_run_id} parked {checkpoint.procedure}, not {procedure}",
            "resume it with the deployment of the flow that parked it",
        )
    state = Resumed(work=work_type.model_validate(checkpoint.work), waves=checkpoint.waves,
                    report=checkpoint.report, parks=checkpoint.parks)
    _audit(procedure, "resumed", state.work.plan, checkpoint.report, checkpoint.parks)
    return state


# ------------------------------------------------------------------------------------------ the waves


@dataclass(frozen=True)
class ParkableWaves(Generic[W]):
    """The waves of one flow run: a parked run re-entering continues its saved ones, a fresh run plans them.

    `reenter` is the one step every parking flow takes first: its `parked_work` (None for a fresh run)
    tells the flow to skip everything up to its waves."""

    procedure: str
    spec: WaveSpec
    resumed: Resumed[W] | None = None

    @classmethod
    def reenter(cls, procedure: str, work_type: type[W], spec: WaveSpec | None) -> ParkableWaves[W]:
        return cls(procedure, spec or WaveSpec(), resumed(procedure, work_type))

    @property
    def parked_work(self) -> W | None:
        return self.resumed.work if self.resumed is not None else None

    def waiting(self) -> Waiting:
        return waiting_for(self.spec, self.resumed)

    def run(
        self,
        conn: ConnectionSettings,
        work: W,
        step: Callable[[FleetMember], StepResult],
        members: Callable[[], Sequence[FleetMember]],
        on_wave_done: Callable[[int, list[EnvironmentResult]], None] | None = None,
    ) -> FleetReport:
        """Run the waves of `members` (asked for only by a fresh run), parking as `continue_waves` does."""
        return continue_waves(self.procedure, conn, work, lambda: plan_waves(members(), self.spec), step,
                              self.spec, self.resumed, on_wave_done)


def continue_waves(
    procedure: str,
    conn: ConnectionSettings,
    work: ApprovedWork,
    plan_fleet: Callable[[], Sequence[Sequence[FleetMember]]],
    step: Callable[[FleetMember], StepResult],
    spec: WaveSpec,
    resumed_from: Resumed[Any] | None = None,
    on_wave_done: Callable[[int, list[EnvironmentResult]], None] | None = None,
) -> FleetReport:
    """Run the waves `plan_fleet` gives (a parked run continues its saved waves where it stopped). When
    members park: save the checkpoint, audit, and suspend, which ends this process (this function does not
    return then). Otherwise clear the checkpoint and return the report, as for a run that never parked."""
    waves = resumed_from.waves if resumed_from else plan_fleet()
    with request_log.request_ids() as calls:
        report = run_waves(waves, step, spec, on_wave_done=on_wave_done,
                           earlier=resumed_from.report if resumed_from else None)
    flow_run_id = _flow_run_id()
    if not report.parked:
        if resumed_from is not None and flow_run_id is not None:
            clear_checkpoint(flow_run_id)
        return report
    if flow_run_id is None:  # steps park only in deployment runs; a parked report without one is a bug
        raise RuntimeError("environments parked outside a flow run")
    parks = (resumed_from.parks if resumed_from else 0) + 1
    save_checkpoint(flow_run_id, Checkpoint(procedure=procedure, work=work.model_dump(mode="json"),
                                            waves=[list(w) for w in waves], report=report, parks=parks))
    _audit(procedure, "parked", work.plan, report, parks,
           writes=[c.model_dump() for c in calls if c.method not in ("GET", "HEAD")])
    now = ClientFactory.for_settings(conn).now()
    last_deadline = max(r.parked.deadline for r in report.parked if r.parked)
    timeout = max(last_deadline - now, timedelta(0)) + TIMEOUT_MARGIN
    get_run_logger().info(
        "%d environment(s) still running at the service; parking (%s%d) until ppcmk-wake resumes this run",
        len(report.parked), PARK_KEY_PREFIX, parks)
    suspend_flow_run(key=f"{PARK_KEY_PREFIX}{parks}", timeout=int(timeout.total_seconds()))
    # Suspending ends this process; it returns only when the server says the key already fired.
    raise RuntimeError(f"park key {PARK_KEY_PREFIX}{parks} was used before; resume or retry the run")


def _audit(procedure: str, what: str, plan: Plan, report: FleetReport, parks: int, **extra: object) -> None:
    """Counts and operation ids only: no connection settings, tokens or key material."""
    audit.record({
        "event": f"{procedure}-{what}",
        "procedure": procedure,
        "plan_hash": plan.hash,
        "parks": parks,
        "parked": [r.environment_id for r in report.parked],
        "done": sum(r.state in ("succeeded", "unchanged") for r in report.results),
        "failed": len(report.failed),
        "parked_in_wave": report.parked_in_wave,
        **extra,
    })

