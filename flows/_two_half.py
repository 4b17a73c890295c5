"""The two-half procedure onboard, migrate_byok and change_policy share, written once.

    plan → Key Vault half → hand-off approval → wait for the approver's Reader → waves (parking) → audit →
    verify → result

A runbook is a `TwoHalfProcedure`: the target whose key and policy the Key Vault half sets up, how it plans
each environment, and what it says. `TwoHalfRun.start` builds the run whole before its first step: each block
loaded once, who requests, and whether this is a parked run re-entering (flows/_parking.py), whose approved
work, with the approver's connection, is `parked`. Otherwise `until_approved` takes a fresh run through its
plan, the Key Vault half and the hand-off. Either way the run holds an `Approved` value: what the waves, the
read-back and the result need.

Separation of duty: the Key Vault half runs with the Key Vault admin's connection; the Power Platform admin
approves the Power Platform half, naming their own connection block, which the waves and the read-back use.
Each procedure audits under its own name: `<procedure>-key-vault-half`, `<procedure>-power-platform-half`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Generic, NamedTuple, Protocol, TypeVar

from prefect import get_run_logger

from ppcmk.approvals.gate import connection_principal
from ppcmk.approvals.request import ApprovalRequest, Approving
from ppcmk.audit import trail as audit
from ppcmk.checks import power_automate
from ppcmk.cloud import request_log
from ppcmk.cloud.settings import ConnectionSettings, TargetSettings
from ppcmk.errors import ConfigError
from ppcmk.fleet.selection import FleetMember
from ppcmk.fleet.waves import EnvironmentResult, FleetReport, StepResult, WaveSpec
from ppcmk.models.azure import PolicyInfo
from ppcmk.models.environments import Environment
from ppcmk.safety.plan import Plan, PlanItem, RunOutcome
from ppcmk.safety.validation import check_not_requester, check_principal, check_subscription
from ppcmk.services.factory import ClientFactory
from ppcmk.services.policies import read_policy
from ppcmk.services.role_grants import lookup_principal
from ppcmk_flows._environment_steps import LinkLimits, link_step, verify
from ppcmk_flows._parking import ApprovedWork, ParkableWaves, Waiting
from ppcmk_flows._runbook import (
    approved,
    changing_members,
    finish,
    load_connection,
    plan_only_outcome,
    published,
)
from ppcmk_flows._two_half_plan import plan_key_vault_half
from ppcmk_tasks.access import grant_key_access, wait_for_propagation
from ppcmk_tasks.doctor import DoctorReading, run_doctor
from ppcmk_tasks.environments import get_environments
from ppcmk_tasks.keyvault import create_or_adopt_key, verify_vault
from ppcmk_tasks.policy import create_or_get_policy, ensure_provider_registered, wait_for_policy_identity
from ppcmk_tasks.policy_reader import grant_policy_reader, policy_handoff, wait_for_reader

# What a runbook plans for its environments: (plan, the policy they go to or None, all environments listed).
PlanEnvironments = Callable[[Plan, PolicyInfo | None, Sequence[Environment]], None]


class HandoffWork(ApprovedWork):
    """The approved Power Platform half: what its waves need, and what a parked run saves to continue."""

    expected: list[str]  # every environment the handoff plan covers, changing or not (the read-back list)
    pp_connection: str  # the Power Platform half's own identity: the half runs with it (by name: it may
    # hold a secret), whoever approved
    policy: PolicyInfo


W = TypeVar("W", bound=HandoffWork)
W_co = TypeVar("W_co", bound=HandoffWork, covariant=True)


def environments_planned(plan: Plan, plan_environments: PlanEnvironments, policy: PolicyInfo | None,
                         environments: Sequence[Environment]) -> None:
    """The runbook's environment steps, and what linking them means for Power Automate (its limit of
    CMK-enabled environments per tenant, and its flows' migration)."""
    plan_environments(plan, policy, environments)
    plan.add_findings(power_automate.plan_findings(environments, plan))


class TwoHalfProcedure(Protocol):
    """What one two-half runbook is; `TwoHalfRun` does the rest, the same for each."""

    name: ClassVar[str]  # its plans, audit events, approval key and checkpoint are named after it
    target: TargetSettings  # whose key and policy the Key Vault half sets up

    def summary(self) -> str:
        """The plan's one line: what moves where."""
        ...

    def environment_planner(self, kv: ConnectionSettings, pp_read: ConnectionSettings
                            ) -> PlanEnvironments:
        """How this run plans its environments. A fresh run asks once, before its first plan, so what the
        planning needs beyond the listing and the policy is read here, once."""
        ...

    def handoff_summary(self, policy: PolicyInfo) -> str:
        """The hand-off plan's one line, with the policy the Key Vault half set up."""
        ...

    def done_message(self, policy: PolicyInfo) -> str:
        """The result when the hand-off has nothing to change."""
        ...

    def key_vault_items(self) -> Sequence[PlanItem]:
        """Steps of the Key Vault half beyond the common ones (change_policy: the old key's grant)."""
        return ()

    def also_grant(self) -> Sequence[TargetSettings]:
        """Other keys the policy identity is granted in the Key Vault half (change_policy: the old one)."""
        return ()


@dataclass(frozen=True)
class TwoHalfRequest:
    """What a two-half runbook was asked beyond its procedure: the blocks (by name), people and options."""

    kv_connection: str
    pp_connection: str  # the Power Platform half's identity: reads for the plan, runs the approved half
    pp_admin: str
    requester: str | None  # None: the principal kv_connection signs in as
    waves: WaveSpec | None
    dry_run: bool
    approving: Approving


@dataclass(frozen=True)
class Approved(Generic[W_co]):
    """The Power Platform half approved: the work, the half's own connection it runs with, and the listing
    the approved plan was made from (its changing environments are the waves' members; a parked run
    continues its saved waves and needs none)."""

    work: W_co
    pp_half: ConnectionSettings
    environments: Sequence[Environment] = ()


class Planned(NamedTuple):
    """A plan and the environment listing it was made from."""

    plan: Plan
    environments: Sequence[Environment]


@dataclass(frozen=True)
class TwoHalfRun(Generic[W]):
    """One run of a two-half runbook, built whole by `start`. It lists environments once per phase (plan,
    waves, read-back) and loads each connection block once."""

    procedure: TwoHalfProcedure
    kv: ConnectionSettings
    pp_read: ConnectionSettings  # the Power Platform half's identity (`pp_block`): it runs the approved half
    pp_block: str
    pp_admin: str
    requester: str
    approving: Approving
    dry_run: bool
    fleet: ParkableWaves[W]
    parked: Approved[W] | None  # a parked run re-entering: it continues with its waves

    @classmethod
    def start(cls, procedure: TwoHalfProcedure, request: TwoHalfRequest, work_type: type[W]) -> TwoHalfRun[W]:
        """The run decided before its first step: its blocks loaded, and either the work a parked run saved
        (`work_type`, with the half's connection and the requester of its approved plan) or a fresh
        run, requested by `request.requester` or else by the Key Vault connection's principal."""
        fleet = ParkableWaves.reenter(procedure.name, work_type, request.waves)
        kv = load_connection(request.kv_connection)
        work = fleet.parked_work
        parked = Approved(work, load_connection(work.pp_connection)) if work is not None else None
        requester = work.plan.requester if work is not None else request.requester or connection_principal(kv)
        return cls(procedure, kv, load_connection(request.pp_connection), request.pp_connection,
                   request.pp_admin, requester, request.approving, request.dry_run, fleet, parked)

    # ---------------------------------------------------------------------------------- a fresh run

    def until_approved(self) -> Approved[HandoffWork] | RunOutcome:
        """A fresh run up to its waves: the plan (a dry run ends after it), the Key Vault half, the hand-off
        and the wait for the approver's Reader. The outcome instead when the run ends before its waves: a
        dry run, nothing to hand off, or the hand-off refused or unanswered."""
        planner = self.procedure.environment_planner(self.kv, self.pp_read)
        planned = self.plan(planner)
        if self.dry_run:
            return plan_only_outcome(planned.plan, self.dry_run)
        policy = self.key_vault_half()
        handed = self.hand_off(policy, planner, planned.environments)
        if not isinstance(handed, RunOutcome):
            wait_for_reader(handed.pp_half, self.procedure.target)  # their links are refused before
        return handed

    def plan(self, planner: PlanEnvironments) -> Planned:
        """The whole plan, published: the doctor's findings and the Key Vault half's steps (plus the
        procedure's own), then each environment's. Errors stop the run here."""
        self.check_inputs()
        target = self.procedure.target
        reading: DoctorReading = run_doctor(self.kv, target, environment_ids=[], pp_admin=self.pp_admin)
        plan = Plan(procedure=self.procedure.name, requester=self.requester,
                    target_summary=self.procedure.summary())
        plan_key_vault_half(plan, target, reading, self.pp_admin)
        plan.items.extend(self.procedure.key_vault_items())
        environments = get_environments(self.pp_read)
        environments_planned(plan, planner, reading.facts.policy, environments)
        return Planned(published(plan), environments)

    def check_inputs(self) -> None:
        """What a read tells before anything is written: the vault in the connection's subscription, the
        Power Platform admin a known principal other than the requester."""
        check_subscription("target.vault_id", self.procedure.target.vault_id, self.kv)
        check_not_requester(self.pp_admin, self.requester)
        factory = ClientFactory.for_settings(self.kv)
        admin = check_principal("pp_admin", self.pp_admin, lambda name: lookup_principal(factory, name))
        try:  # a UPN and an object id name one person too
            requester_id = lookup_principal(factory, self.requester).object_id
        except ConfigError:  # a requester the directory does not know is compared as written
            requester_id = self.requester
        check_not_requester(admin.object_id, requester_id)

    # ------------------------------------------------------------------------------- the Key Vault half

    def key_vault_half(self) -> PolicyInfo:
        """Every step idempotent; returns the policy with its identity, which the procedure's `also_grant`
        keys are granted too. Audited with the writes' request ids."""
        kv, target, procedure = self.kv, self.procedure.target, self.procedure.name
        with request_log.request_ids() as calls:
            vault = verify_vault(kv, target)
            if not (vault.soft_delete and vault.purge_protection):
                raise ConfigError(
                    "vault_id",
                    f"vault {vault.name} lacks soft delete or purge protection",
                    "enable both on the vault, then run again",
                )
            key = create_or_adopt_key(kv, target)
            ensure_provider_registered(kv)
            create_or_get_policy(kv, target)
            policy = wait_for_policy_identity(kv, target)
            principal = policy.principal_id or ""
            key_grant = grant_key_access(kv, target, principal)
            wait_for_propagation(kv, target, principal)
            for other in self.procedure.also_grant():
                grant_key_access(kv, other, principal)
                wait_for_propagation(kv, other, principal)
            reader = grant_policy_reader(kv, target, self.pp_admin)
        writes = [c for c in calls if c.method not in ("GET", "HEAD")]
        audit.record(
            {
                "event": f"{procedure}-key-vault-half",
                "procedure": procedure,
                "policy": policy.policy_id,
                "key": key.kid,
                "key_created": key.created,
                "key_access": key_grant.model_dump(mode="json"),
                "reader": reader.model_dump(mode="json"),
                "writes": [w.model_dump() for w in writes],
            }
        )
        get_run_logger().info("Key Vault half done: key %s, policy %s (identity %s), %d write(s)",
                              key.version, policy.name, principal, len(writes))
        return policy

    # -------------------------------------------------------------------------------------- the hand-off

    def hand_off(
        self, policy: PolicyInfo, planner: PlanEnvironments, environments: Sequence[Environment]
    ) -> Approved[HandoffWork] | RunOutcome:
        """Publish the Power Platform half's plan and have the Power Platform admin approve it, naming their
        own connection block (they must hold Reader on `policy`). The run ends here with the outcome
        returned when the plan changes nothing ("nothing-to-do") or is refused. The plan is made again
        (policy and environments read again) after each answer; the approved one's listing travels on."""
        summary = self.procedure.handoff_summary(policy)
        made = [self._handoff_plan(summary, planner, policy, environments)]
        first = published(made[0].plan)
        if not first.changes:
            return self._nothing_to_hand_off(first, policy)

        def replan() -> Plan:
            policy_now = read_policy(ClientFactory.for_settings(self.kv), self.procedure.target)
            made.append(self._handoff_plan(summary, planner, policy_now, get_environments(self.pp_read)))
            return made[-1].plan

        key = f"{self.procedure.name.replace('_', '-')}-handoff"
        handoff = policy_handoff(self.kv, self.procedure.target, designated=self.pp_admin)
        request = ApprovalRequest.handoff_approval(first, key, self.requester, self.approving, handoff)
        approval = approved(request, replan, self.kv)
        if isinstance(approval, RunOutcome):
            return approval
        plan = approval.plan
        work = HandoffWork(plan=plan, approvers=approval.approvers, expected=_environment_ids(plan),
                           pp_connection=self.pp_block, policy=policy)
        listing = next(m.environments for m in reversed(made) if m.plan.hash == plan.hash)
        return Approved(work, self.pp_read, listing)

    def _handoff_plan(
        self, summary: str, planner: PlanEnvironments, policy: PolicyInfo | None,
        environments: Sequence[Environment],
    ) -> Planned:
        plan = Plan(procedure=self.procedure.name, requester=self.requester, target_summary=summary)
        environments_planned(plan, planner, policy, environments)
        return Planned(plan, environments)

    def _nothing_to_hand_off(self, plan: Plan, policy: PolicyInfo) -> RunOutcome:
        """Every environment already as wanted: read back and reported, nothing asked."""
        report, rows = verify(self.pp_read, policy, FleetReport(), _environment_ids(plan))
        done = finish(plan, [], report, rows, self.procedure.done_message(policy))
        return done.model_copy(update={"status": "nothing-to-do"}) if done.status == "completed" else done

    # ------------------------------------------------------------------------- the Power Platform half

    def waiting(self) -> Waiting:
        return self.fleet.waiting()

    def waves(
        self,
        approved: Approved[W],
        step: Callable[[FleetMember], StepResult],
        on_wave_done: Callable[[int, list[EnvironmentResult]], None] | None = None,
    ) -> FleetReport:
        """The approved plan's changing environments in waves, with the approver's connection; audited
        with the writes' request ids (the wave threads run in copies of this context: same collector)."""
        work = approved.work
        with request_log.request_ids() as calls:
            report = self.fleet.run(approved.pp_half, work, step,
                                    lambda: changing_members(work.plan, approved.environments), on_wave_done)
        audit.record(
            {
                "event": f"{self.procedure.name}-power-platform-half",
                "procedure": self.procedure.name,
                "plan_hash": work.plan.hash,
                "approvers": work.approvers,
                "writes": [c.model_dump() for c in calls if c.method not in ("GET", "HEAD")],
            }
        )
        return report

    def link_waves(self, approved: Approved[W], limits: LinkLimits) -> FleetReport:
        """The waves linking each changing environment to the approved policy (Managed Environment first
        where the plan says)."""
        step = link_step(approved.pp_half, approved.work.policy, limits, self.waiting())
        return self.waves(approved, step)

    def verify(
        self, approved: Approved[HandoffWork], report: FleetReport
    ) -> tuple[FleetReport, list[dict[str, object]]]:
        """Every environment of the hand-off read back: encrypted through the policy, or failed."""
        return verify(approved.pp_half, approved.work.policy, report, approved.work.expected)

    def finish(
        self, approved: Approved[HandoffWork], verified: FleetReport, rows: list[dict[str, object]], what: str
    ) -> RunOutcome:
        """The result table and the audit entry; the message counts the environments done: N of M `what`."""
        work = approved.work
        done = len(verified.results) - len(verified.failed) - len(verified.not_started)
        return finish(work.plan, work.approvers, verified, rows, f"{done} of {len(work.expected)} {what}")


def _environment_ids(plan: Plan) -> list[str]:
    """Every environment a hand-off plan covers, changing or not: what the read-back checks."""
    return [item.target for item in plan.items if item.kind == "environment"]
