"""Change policy: move environments to a new key and a new enterprise policy (two outages each).

The runbook of "Change the environment's encryption key with a new enterprise policy and key":
1. Plan: the new key and policy (onboard's Key Vault half), the new policy's identity granted the OLD key too
   (as the documentation requires), and per environment TWO outage windows: unlink from the old policy (back
   to the Microsoft-managed key), then link to the new one; the 30-day hold on the old key and policy.
2. Key Vault admin half with `kv_connection`: new key, new policy, its grants on the new and the old key,
   Reader on the new policy for the Power Platform admin.
3. Handoff: the Power Platform admin approves the environment moves and names their own connection block.
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
from datetime import timedelta

from prefect import flow, get_run_logger
from prefect.variables import Variable

from flows import _parking as parking
from flows._parking import Waiting
from flows._runbook import (
    HOLD_DAYS,
    MICROSOFT_KEY,
    changing_members,
    finish,
    hold_policy_and_key,
    hold_subjects,
    linked_to,
    load_settings,
    select,
    step_state,
    unlink_step,
)
from flows.onboard import key_vault_half, read_key_vault_facts
from flows.onboard_plan import plan_key_vault_half
from flows.onboard_steps import HandoffWork, hand_off, link_step, verify
from ppcmk.approvals import connection_principal
from ppcmk.azure_resources import PolicyInfo
from ppcmk.errors import ConfigError
from ppcmk.findings import error
from ppcmk.fleet.selection import FleetMember, FleetSelector
from ppcmk.fleet.waves import EnvironmentResult, StepResult, WaveSpec, plan_waves
from ppcmk.models import Environment
from ppcmk.plan import OutageWindow, Plan, PlanItem, RunOutcome, artifact_key
from ppcmk.settings import ConnectionSettings, TargetSettings
from ppcmk.settings import load_settings as validated
from tasks.access import grant_key_access, wait_for_propagation
from tasks.environments import get_environments
from tasks.policy import get_policy

PROCEDURE = "change_policy"
HOLD_REASON = "environments moved to a new policy; their backups restore only with the old key (30 days)"


def new_target(old: TargetSettings, policy_name: str, key_name: str, vault_id: str | None) -> TargetSettings:
    """The new key/policy beside the old one (same geo and resource group), validated like a block."""
    data = old.model_dump() | {"policy_name": policy_name, "key_name": key_name}
    if vault_id:
        data["vault_id"] = vault_id
    new = validated(TargetSettings, data)
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
    moved = 0
    for env in select(
        environments,
        selector,
        default=lambda e: (
            linked_to(e, old) or linked_to(e, new_policy) or (e.cmk is None and e.id in unfinished)
        ),
    ):
        name = env.display_name or ""
        if linked_to(env, new_policy):
            plan.items.append(
                PlanItem(
                    target=env.id,
                    kind="environment",
                    changes=False,
                    detail=name,
                    action=f"none: already on {new.policy_name}",
                )
            )
            continue
        if env.cmk is not None and not linked_to(env, old):
            plan.add_findings(
                [
                    error(
                        "environment.policy",
                        env.id,
                        f"linked to {env.cmk.policy_id}",
                        "leave it out, or change it with its own policy's target block",
                    )
                ]
            )
            continue
        steps = (
            [(f"unlink from {old.name}", f"unlink from {old.name} (back to {MICROSOFT_KEY})")]
            if env.cmk
            else []
        )
        steps.append(
            (f"link to {new.policy_name}", f"link to {new.policy_name} (the new key {new.key_name})")
        )
        plan.items.append(
            PlanItem(
                target=env.id,
                kind="environment",
                detail=name,
                action=", then ".join(action for action, _ in steps),
            )
        )
        plan.outages += [
            OutageWindow(environment_id=env.id, sequence=n, cause=cause)
            for n, (_, cause) in enumerate(steps, start=1)
        ]
        moved += 1
    if moved:
        plan.holds += hold_subjects(old, HOLD_REASON)


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


class MoveWork(HandoffWork):
    """The approved moves (`policy` is the new one) and the old policy they leave."""

    old_policy: PolicyInfo


def move_step(
    pp: ConnectionSettings,
    old: PolicyInfo,
    new: PolicyInfo,
    deadline: timedelta,
    max_attempts: int,
    waiting: Waiting | None = None,
) -> Callable[[FleetMember], StepResult]:
    """Outage 1 (unlink from the old policy, skipped once done), then outage 2 (link to the new one). Either
    may park; a parked link means outage 1 is behind it (its environment is no longer on the old policy)."""
    waits = waiting or Waiting()
    unlink_old = unlink_step(pp, old, deadline, waits)
    link_new = link_step(pp, new, deadline, max_attempts, waits)

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


@flow(name="change_policy")
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
) -> RunOutcome:
    """Move the environments of the target's policy (all by default) to `new_policy_name` with `new_key_name`.

    `target` names the CURRENT policy and key; the new ones are created beside them (same geo and resource
    group; `new_vault_id` defaults to the same vault). Roles as in onboard: `kv_connection` for the Key Vault
    half, `pp_connection` reads environments for the plan, `pp_admin` gets Reader on the new policy, approves
    and runs the moves with their own connection block.
    """
    kv, old_tgt = load_settings(kv_connection, target)
    new_tgt = new_target(old_tgt, new_policy_name, new_key_name, new_vault_id)
    spec = waves or WaveSpec()

    def prepare() -> MoveWork | RunOutcome:
        """Plan, the Key Vault half, the handoff approval and the holds: skipped by a parked run re-entering
        (the holds are in place before the first unlink, so before any park)."""
        pp_read, _ = load_settings(pp_connection, target)
        who = requester or connection_principal(kv)

        def plan_handoff() -> Plan:
            plan = Plan(
                procedure=PROCEDURE,
                requester=who,
                target_summary=f"environments: policy {old_tgt.policy_name} → {new_tgt.policy_name}",
            )
            plan_moves(
                plan,
                get_policy(kv, old_tgt),
                new_tgt,
                get_policy(kv, new_tgt),
                get_environments(pp_read),
                selector,
                unfinished_moves(old_tgt),
            )
            return plan

        old_policy = get_policy(kv, old_tgt)
        facts = read_key_vault_facts(kv, new_tgt, pp_admin)
        plan = Plan(
            procedure=PROCEDURE,
            requester=who,
            target_summary=f"{old_tgt.policy_name} → new key {new_tgt.key_name}, "
            f"policy {new_tgt.policy_name}",
        )
        plan_key_vault_half(plan, new_tgt, facts, pp_admin)
        plan.items.append(
            PlanItem(
                target=f"{new_tgt.policy_name} identity",
                kind="role-assignment",
                action=f"grant access to the OLD key {old_tgt.key_name} too (documented requirement)",
                detail=old_tgt.vault_id,
            )
        )
        plan_moves(
            plan,
            old_policy,
            new_tgt,
            facts.policy,
            get_environments(pp_read),
            selector,
            unfinished_moves(old_tgt),
        )
        plan.publish()
        plan.raise_for_errors()
        if dry_run:
            return RunOutcome(procedure=PROCEDURE, status="dry-run", plan_hash=plan.hash, message="plan only")
        if old_policy is None:
            raise ConfigError("target", "the current policy does not exist", "check the target block")

        new_policy = key_vault_half(kv, new_tgt, pp_admin)
        principal = new_policy.principal_id or ""
        grant_key_access(kv, old_tgt, principal)
        wait_for_propagation(kv, old_tgt, principal)
        approval = hand_off(
            plan_handoff,
            kv,
            pp_read,
            new_tgt,
            new_policy,
            requester=who,
            key="change-policy-handoff",
            timeout_s=approval_timeout_s,
            poll_interval_s=approval_poll_s,
            done_message=f"every environment already on {new_policy.name}",
        )
        if isinstance(approval, RunOutcome):
            return approval
        # before outage 1: the old key must outlive every move
        hold_policy_and_key(kv, old_policy, old_tgt, HOLD_REASON)
        note_moves(old_tgt, {item.target for item in approval.plan.changes if item.kind == "environment"},
                   done=set())
        return MoveWork(**dict(approval), old_policy=old_policy)

    def gate(wave: int, results: list[EnvironmentResult]) -> None:
        failed = [r.environment_id for r in results if r.state == "failed"]
        get_run_logger().log(
            40 if failed else 20,
            "wave %d: %d moved, failed: %s",
            wave,
            len(results) - len(failed),
            ", ".join(failed) or "none",
        )

    work = resumed.work if (resumed := parking.resumed(PROCEDURE, MoveWork)) else prepare()
    if isinstance(work, RunOutcome):
        return work
    pp, old_policy, new_policy = work.connection(), work.old_policy, work.policy
    step = move_step(pp, old_policy, new_policy, timedelta(days=operation_deadline_days), max_link_attempts,
                     parking.waiting_for(spec, resumed))
    report = parking.continue_waves(
        PROCEDURE, pp, work, lambda: plan_waves(changing_members(work.plan, get_environments(pp)), spec),
        step, spec, resumed, on_wave_done=gate)
    verified, rows = verify(pp, new_policy, report, work.expected)
    note_moves(old_tgt, set(), done={r.environment_id for r in verified.results if r.state != "failed"})
    return finish(
        work.plan,
        work.approvers,
        verified,
        rows,
        f"{len(verified.results) - len(verified.failed)} of {len(work.expected)} environment(s) on "
        f"{new_policy.name}; {old_policy.name} and key {old_tgt.key_name} held {HOLD_DAYS} days",
    )
