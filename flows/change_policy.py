"""Change policy: move environments to a new key and a new enterprise policy (two outages each).

The runbook of "Change the environment's encryption key with a new enterprise policy and key":
1. Plan: the new key and policy (the Key Vault half), the new policy's identity granted the OLD key too
   (as the documentation requires), and per environment TWO outage windows: unlink from the old policy (back
   to the Microsoft-managed key), then link to the new one; the 30-day hold on the old key and policy.
2. Key Vault admin half with `kv_connection`: new key, new policy, its grants on the new and the old key,
   Reader on the new policy for the Power Platform admin.
3. Handoff: the Power Platform admin approves the environment moves and names their own connection block;
   the run waits until their Reader on the new policy applies. (The two halves: flows/_two_half.py.)
4. Holds first (old key version and old policy, 30 days, enforced by the cleanup flow), then per environment
   in waves: unlink (outage 1), wait, link to the new policy (outage 2), wait; a wave with a failure stops
   the later waves (the gate). A deployment run parks during long waits (flows/_parking.py).
5. Verify by reading back: every environment encrypted through the new policy.

A re-run converges: an environment still on the old policy goes through both steps, one left on the
Microsoft-managed key by a crash between them is only linked (name it in the selector), one already on the
new policy is left alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from prefect import flow, get_run_logger
from prefect.states import State
from prefect.variables import Variable

from ppcmk.approvals.request import Approving
from ppcmk.cloud.settings import ConnectionSettings, TargetSettings
from ppcmk.cloud.settings import load_settings as validated
from ppcmk.errors import ConfigError
from ppcmk.fleet.selection import FleetMember, FleetSelector
from ppcmk.fleet.waves import EnvironmentResult, StepResult, WaveSpec
from ppcmk.models.azure import PolicyInfo, linked_to
from ppcmk.models.environments import Environment
from ppcmk.models.findings import error
from ppcmk.safety.claims import RELEASE_HOOKS
from ppcmk.safety.plan import OutageWindow, Plan, PlanItem, RunOutcome, artifact_key
from ppcmk_flows._environment_steps import LinkLimits, link_step, unlink_step
from ppcmk_flows._parking import Waiting
from ppcmk_flows._run_form import run_form
from ppcmk_flows._runbook import (
    HOLD_DAYS,
    MICROSOFT_KEY,
    final_state,
    hold_policy_and_key,
    hold_subjects,
    load_target,
    policy_after_approval,
    select,
    step_state,
)
from ppcmk_flows._two_half import (
    Approved,
    HandoffWork,
    PlanEnvironments,
    TwoHalfProcedure,
    TwoHalfRequest,
    TwoHalfRun,
)
from ppcmk_flows._two_half_plan import running_operation_findings
from ppcmk_tasks.policy import get_policy

PROCEDURE = "change_policy"
HOLD_REASON = "environments moved to a new policy; their backups restore only with the old key (30 days)"


# the parameters that give the new target's fields
NEW_TARGET_PARAMETERS = {"policy_name": "new_policy_name", "key_name": "new_key_name",
                         "vault_id": "new_vault_id"}


def new_target(old: TargetSettings, policy_name: str, key_name: str, vault_id: str | None) -> TargetSettings:
    """The new key/policy beside the old one (same geo and resource group), validated like a block."""
    data = old.model_dump() | {"policy_name": policy_name, "key_name": key_name}
    if vault_id:
        data["vault_id"] = vault_id
    try:
        new = validated(TargetSettings, data)
    except ConfigError as bad:  # named by the parameter that gave the value
        parameter = NEW_TARGET_PARAMETERS.get(bad.field, bad.field)
        raise ConfigError(parameter, bad.problem, bad.fix.replace(bad.field, parameter)) from None
    if new.policy_name.lower() == old.policy_name.lower():
        raise ConfigError(
            "new_policy_name", "it names the current policy", "choose a name for the new policy"
        )
    return new


def plan_moves(
    plan: Plan,
    old: PolicyInfo | None,
    new: TargetSettings,
    new_policy: PolicyInfo | None,
    environments: Sequence[Environment],
    selector: FleetSelector | None,
    unfinished: frozenset[str] = frozenset(),
) -> None:
    """Per environment: unlink from the old policy (outage 1) and link to the new one (outage 2). By default
    the old policy's environments, plus `unfinished` ones a failed run left on the Microsoft-managed key."""
    if old is None:
        plan.add_findings(
            [
                error(
                    "policy.exists",
                    "old policy",
                    "the current policy does not exist",
                    "check the target block (it names the policy environments are on now)",
                )
            ]
        )
        return
    chosen = select(
        environments,
        selector,
        default=lambda e: (
            linked_to(e, old) or linked_to(e, new_policy) or (e.cmk is None and e.id in unfinished)
        ),
    )
    moved = [env for env in chosen if plan_move(plan, env, old, new, new_policy)]
    if moved:
        plan.holds += hold_subjects(old, HOLD_REASON)


def plan_move(
    plan: Plan, env: Environment, old: PolicyInfo, new: TargetSettings, new_policy: PolicyInfo | None
) -> bool:
    """One environment's move (unlink where it is on `old`, then link); False when it does not move."""
    name = env.display_name or ""
    if linked_to(env, new_policy):
        plan.items.append(PlanItem(target=env.id, kind="environment", changes=False, detail=name,
                                   action=f"none: already on {new.policy_name}"))
        return False
    if env.cmk is not None and not linked_to(env, old):
        plan.add_findings([error("environment.policy", env.id, f"linked to {env.cmk.policy_id}",
                                 "leave it out, or change it with its own policy's target block")])
        return False
    unlink = (f"unlink from {old.name}", f"unlink from {old.name} (back to {MICROSOFT_KEY})")
    steps = [unlink] if env.cmk else []
    steps.append((f"link to {new.policy_name}", f"link to {new.policy_name} (the new key {new.key_name})"))
    plan.items.append(PlanItem(target=env.id, kind="environment", detail=name,
                               action=", then ".join(action for action, _ in steps)))
    plan.add_findings(running_operation_findings(env, steps[0][0]))
    plan.outages += [OutageWindow(environment_id=env.id, sequence=n, cause=cause)
                     for n, (_, cause) in enumerate(steps, start=1)]
    return True


def moves_record_name(old: TargetSettings) -> str:
    """The Prefect Variable listing environments whose move away from `old` started but is not verified."""
    return artifact_key("ppcmk-moves", old.resource_group, old.policy_name)


def unfinished_moves(old: TargetSettings) -> frozenset[str]:
    stored: object = Variable.get(moves_record_name(old), default=[])
    return frozenset(str(i) for i in stored) if isinstance(stored, list) else frozenset()


def note_moves(old: TargetSettings, started: set[str], done: set[str]) -> None:
    """Remember started moves before outage 1 (a crash between the outages must not lose an environment on
    the Microsoft key), forget verified ones."""
    pending = (set(unfinished_moves(old)) | started) - done
    Variable.set(moves_record_name(old), sorted(pending), overwrite=True)


@dataclass(frozen=True)
class Moves:
    """change_policy's environments: those of the old policy (or the selected ones), each moved to the new."""

    old_policy: PolicyInfo | None
    new: TargetSettings
    selector: FleetSelector | None
    unfinished: frozenset[str]

    def __call__(self, plan: Plan, policy: PolicyInfo | None, environments: Sequence[Environment]) -> None:
        plan_moves(plan, self.old_policy, self.new, policy, environments, self.selector, self.unfinished)


def old_key_item(old: TargetSettings, new: TargetSettings) -> PlanItem:
    return PlanItem(
        target=f"{new.policy_name} identity",
        kind="role-assignment",
        action=f"grant access to the OLD key {old.key_name} too (documented requirement)",
        detail=old.vault_id,
    )


@dataclass(frozen=True)
class PolicyChange(TwoHalfProcedure):
    """change_policy's halves: the new key and policy (`target`) beside the old ones, the new identity
    granted the old key too, then the old policy's environments (or the selected ones) moved."""

    name = PROCEDURE

    target: TargetSettings
    old: TargetSettings
    selector: FleetSelector | None

    def summary(self) -> str:
        return f"{self.old.policy_name} → new key {self.target.key_name}, policy {self.target.policy_name}"

    def environment_planner(self, kv: ConnectionSettings, pp_read: ConnectionSettings
                            ) -> PlanEnvironments:
        """The moves, planned with the old policy and the moves a failed run left, as read now."""
        return Moves(get_policy(kv, self.old), self.target, self.selector, unfinished_moves(self.old))

    def handoff_summary(self, policy: PolicyInfo) -> str:
        return f"environments: policy {self.old.policy_name} → {policy.name}"

    def done_message(self, policy: PolicyInfo) -> str:
        return f"every environment already on {policy.name}"

    def key_vault_items(self) -> Sequence[PlanItem]:
        return [old_key_item(self.old, self.target)]

    def also_grant(self) -> Sequence[TargetSettings]:
        return [self.old]


class MoveWork(HandoffWork):
    """The approved moves (`policy` is the new one) and the old policy they leave."""

    old_policy: PolicyInfo


def move_step(
    pp: ConnectionSettings,
    old: PolicyInfo,
    new: PolicyInfo,
    limits: LinkLimits,
    waiting: Waiting | None = None,
) -> Callable[[FleetMember], StepResult]:
    """Outage 1 (unlink from the old policy, skipped once done), then outage 2 (link to the new one). Either
    may park; a parked link means outage 1 is behind it (its environment is no longer on the old policy)."""
    waits = waiting or Waiting()
    unlink_old = unlink_step(pp, old, limits.deadline, waits)
    link_new = link_step(pp, new, limits, waits)

    def step(member: FleetMember) -> StepResult:
        linking = waits.saved(member.id, "link") is not None
        first = StepResult(state="succeeded", detail="done before parking") if linking else unlink_old(member)
        if first.state == "parked":
            return first
        second = link_new(member)
        detail = f"outage 1: {first.detail}; outage 2: {second.detail}"
        if second.state == "parked":
            return second.model_copy(update={"detail": detail})
        return StepResult(state=step_state(first.state == second.state == "unchanged"), detail=detail)

    return step


def start_moves(kv: ConnectionSettings, old: TargetSettings,
                handed: Approved[HandoffWork] | RunOutcome) -> Approved[MoveWork] | RunOutcome:
    """Once approved, before outage 1: the old key and policy (read again: the wait may have been days)
    held 30 days, since the old key must outlive every move, and the moves remembered, since a crash between
    the outages must not lose an environment on the Microsoft key."""
    if isinstance(handed, RunOutcome):
        return handed
    old_policy = policy_after_approval(kv, old)
    hold_policy_and_key(kv, old_policy, old, HOLD_REASON)
    work = handed.work
    note_moves(old, {item.target for item in work.plan.changes if item.kind == "environment"}, done=set())
    return Approved(MoveWork(**dict(work), old_policy=old_policy), handed.pp_half, handed.environments)


def log_wave(wave: int, results: list[EnvironmentResult]) -> None:
    failed = [r.environment_id for r in results if r.state == "failed"]
    get_run_logger().log(40 if failed else 20, "wave %d: %d moved, failed: %s", wave,
                         len(results) - len(failed), ", ".join(failed) or "none")


@flow(name="change_policy", **RELEASE_HOOKS)
@run_form
def change_policy(
    kv_connection: str,
    pp_connection: str,
    target: str,
    new_policy_name: str,
    new_key_name: str,
    pp_admin: str,
    new_vault_id: str | None = None,
    selector: FleetSelector | None = None,
    requester: str | None = None,
    waves: WaveSpec | None = None,
    dry_run: bool = False,
    approval_timeout_s: int = 3 * 24 * 3600,
    approval_poll_s: int = 10,
    operation_deadline_days: float = 4,
    max_link_attempts: int = 3,
) -> RunOutcome | State[RunOutcome]:
    """Move the environments of the target's policy (all by default) to a new policy with a new key, across
    two outage windows each (unlink, then link). The new policy and key are created beside the current ones.

    Args:
        target: CmkTarget block naming the CURRENT policy and key, e.g. cmk-target; in the sandbox
            sandbox-target-ep-existing (policy ep-existing, where Finance on CMK is).
        new_policy_name: Name of the enterprise policy to move to (created in the same geo and resource
            group), e.g. ep-cmk-europe-2.
        new_key_name: Name of the key the new policy uses (created if missing), e.g. cmk-prod-2.
        new_vault_id: ARM id of the vault for the new key; empty: the target's vault.
        selector: Which of the policy's environments move: ids or names, or a geo / skus / name pattern;
            empty: every environment on the current policy.
    """
    limits = LinkLimits.checked(operation_deadline_days, max_link_attempts)
    old = load_target(target)
    change = PolicyChange(new_target(old, new_policy_name, new_key_name, new_vault_id), old, selector)
    request = TwoHalfRequest(kv_connection, pp_connection, pp_admin, requester, waves, dry_run,
                             Approving(approval_timeout_s, approval_poll_s))
    run = TwoHalfRun.start(change, request, MoveWork)

    moving = run.parked or start_moves(run.kv, old, run.until_approved())
    if isinstance(moving, RunOutcome):  # a dry run, nothing to hand off, or not approved
        return final_state(moving)
    work = moving.work
    step = move_step(moving.pp_half, work.old_policy, work.policy, limits, run.waiting())
    verified, rows = run.verify(moving, run.waves(moving, step, on_wave_done=log_wave))
    note_moves(old, set(), done={r.environment_id for r in verified.results if r.state != "failed"})
    return run.finish(moving, verified, rows, f"environment(s) on {work.policy.name}; {work.old_policy.name} "
                      f"and key {old.key_name} held {HOLD_DAYS} days")
