"""The two-half procedure onboard, migrate_byok and change_policy share, written once.

    plan → Key Vault half → hand-off approval → wait for the approver's Reader → waves (parking) → audit →
    verify → result

A flow makes one `TwoHalfRun` and calls its steps in that order (`until_approved` is a fresh run's steps up
to the waves); it supplies only what differs: the target
whose key and policy the Key Vault half sets up, what each environment's plan is (`PlanEnvironments`), the
per-environment step of the waves and what "done" reads like. A parked run re-entering (flows/_parking.py)
takes `parked_work` first and goes straight to its waves.

Separation of duty: the Key Vault half runs with the Key Vault admin's connection; the Power Platform admin
approves the Power Platform half, naming their own connection block, which the waves and the read-back use.
Each procedure audits under its own name: `<procedure>-key-vault-half`, `<procedure>-power-platform-half`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar, cast

from azure.core.exceptions import HttpResponseError
from prefect import get_run_logger

from ppcmk.approvals.gate import connection_principal
from ppcmk.approvals.request import ApprovalRequest, Approving, PowerPlatformHandoff
from ppcmk.audit import trail as audit
from ppcmk.cloud.settings import ConnectionSettings, TargetSettings
from ppcmk.errors import ConfigError
from ppcmk.fleet.selection import FleetMember
from ppcmk.fleet.waves import EnvironmentResult, FleetReport, StepResult, WaveSpec
from ppcmk.models.azure import PolicyInfo
from ppcmk.models.environments import Environment
from ppcmk.safety.plan import Plan, PlanItem, RunOutcome
from ppcmk.safety.retry import cmk_task
from ppcmk.safety.validation import check_not_requester, check_principal, check_subscription
from ppcmk.services.factory import ClientFactory
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
from ppcmk_tasks.access import (
    PROPAGATION_POLL_SECONDS,
    PROPAGATION_TIMEOUT,
    grant_key_access,
    grant_policy_reader,
    has_policy_reader,
    lookup_principal,
    policy_reader_ids,
    wait_for_propagation,
)
from ppcmk_tasks.doctor import DoctorReading, run_doctor
from ppcmk_tasks.environments import get_environments
from ppcmk_tasks.keyvault import create_or_adopt_key, verify_vault
from ppcmk_tasks.policy import (
    create_or_get_policy,
    ensure_provider_registered,
    read_policy,
    wait_for_policy_identity,
)

# What a runbook plans for its environments: (plan, the policy they go to or None, all environments listed).
PlanEnvironments = Callable[[Plan, PolicyInfo | None, Sequence[Environment]], None]


class HandoffWork(ApprovedWork):
    """The approved Power Platform half: what its waves need, and what a parked run saves to continue."""

    expected: list[str]  # every environment the handoff plan covers, changing or not (the read-back list)
    connection_block: str  # the approver's own: the half runs with it (its name only: it may hold a secret)
    policy: PolicyInfo

    def connection(self) -> ConnectionSettings:
        return load_connection(self.connection_block)


W = TypeVar("W", bound=HandoffWork)


@dataclass
class TwoHalfRun:
    """One run of a two-half runbook. It lists environments once per phase (plan, waves, read-back) and
    loads each connection block once."""

    procedure: str
    kv: ConnectionSettings
    pp_connection: str  # the block that reads environments for the plan (loaded when planning)
    target: TargetSettings  # whose key and policy the Key Vault half sets up
    pp_admin: str
    requester: str | None
    approving: Approving
    fleet: ParkableWaves[HandoffWork] = field(init=False)
    environments: list[Environment] = field(default_factory=list)  # the latest listing
    _pp_read: ConnectionSettings | None = None
    _approver: ConnectionSettings | None = None
    _kv_factory: ClientFactory | None = None

    # ------------------------------------------------------------------------- the parked run re-entering

    def parked_work(self, work_type: type[W], waves: WaveSpec | None) -> W | None:
        """A parked run re-entering: the approved work it saved (it continues with its waves); None for a
        fresh run, which plans, does the Key Vault half and hands off first."""
        self.fleet = cast(ParkableWaves[HandoffWork], ParkableWaves.reenter(self.procedure, work_type, waves))
        return cast("W | None", self.fleet.parked_work)

    # ---------------------------------------------------------------------------------------- planning

    def kv_factory(self) -> ClientFactory:
        if self._kv_factory is None:
            self._kv_factory = ClientFactory.for_settings(self.kv)
        return self._kv_factory

    def pp_read(self) -> ConnectionSettings:
        if self._pp_read is None:
            self._pp_read = load_connection(self.pp_connection)
        return self._pp_read

    def who(self) -> str:
        if self.requester is None:
            self.requester = connection_principal(self.kv)
        return self.requester

    def list_environments(self) -> list[Environment]:
        self.environments = get_environments(self.pp_read())
        return self.environments

    def plan(
        self, summary: str, plan_environments: PlanEnvironments, key_vault_items: Sequence[PlanItem] = ()
    ) -> Plan:
        """The whole plan, published: the doctor's findings and the Key Vault half's steps (plus the
        runbook's own `key_vault_items`), then each environment's. Errors stop the run here."""
        self.check_inputs()
        reading: DoctorReading = run_doctor(self.kv, self.target, environment_ids=[], pp_admin=self.pp_admin)
        plan = Plan(procedure=self.procedure, requester=self.who(), target_summary=summary)
        plan_key_vault_half(plan, self.target, reading, self.pp_admin)
        plan.items.extend(key_vault_items)
        plan_environments(plan, reading.facts.policy, self.list_environments())
        return published(plan)

    def check_inputs(self) -> None:
        """What a read tells before anything is written: the vault in the connection's subscription, the
        Power Platform admin a known principal other than the requester."""
        check_subscription("target.vault_id", self.target.vault_id, self.kv)
        check_not_requester(self.pp_admin, self.who())
        check_principal("pp_admin", self.pp_admin, lambda name: lookup_principal(self.kv_factory(), name))

    def until_approved(
        self,
        summary: str,
        plan_environments: PlanEnvironments,
        dry_run: bool,
        *,
        handoff_summary: Callable[[PolicyInfo], str],
        done_message: Callable[[PolicyInfo], str],
        key_vault_items: Sequence[PlanItem] = (),
        also_grant: Sequence[TargetSettings] = (),
    ) -> HandoffWork | RunOutcome:
        """A fresh run up to its waves: the plan (a dry run ends after it), the Key Vault half, the hand-off
        (`handoff_summary` and `done_message` read the policy the Key Vault half returns) and the wait for
        the approver's Reader. The outcome instead when the run ends before its waves: a dry run, nothing
        to hand off, or the hand-off refused or unanswered."""
        plan = self.plan(summary, plan_environments, key_vault_items)
        if dry_run:
            return plan_only_outcome(plan, dry_run)
        policy = self.key_vault_half(also_grant)
        handed = self.hand_off(policy, handoff_summary(policy), plan_environments, done_message(policy))
        return handed if isinstance(handed, RunOutcome) else self.wait_for_reader(handed)

    # ------------------------------------------------------------------------------- the Key Vault half

    def key_vault_half(self, also_grant: Sequence[TargetSettings] = ()) -> PolicyInfo:
        """Every step idempotent; returns the policy with its identity, which `also_grant`'s keys are granted
        too. Audited with the writes' request ids."""
        kv, target = self.kv, self.target
        with audit.request_ids() as calls:
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
            for other in also_grant:
                grant_key_access(kv, other, principal)
                wait_for_propagation(kv, other, principal)
            reader = grant_policy_reader(kv, target, self.pp_admin)
        writes = [c for c in calls if c.method not in ("GET", "HEAD")]
        audit.record(
            {
                "event": f"{self.procedure}-key-vault-half",
                "procedure": self.procedure,
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
        self, policy: PolicyInfo, summary: str, plan_environments: PlanEnvironments, done_message: str
    ) -> HandoffWork | RunOutcome:
        """Publish the Power Platform half's plan and have the Power Platform admin approve it, naming their
        own connection block (they must hold Reader on `policy`). The run ends here with the outcome
        returned when the plan changes nothing ("nothing-to-do", `done_message`) or is refused. The plan is
        made again (policy and environments read again) after each answer."""
        handoff = published(self._handoff_plan(summary, plan_environments, policy, self.environments))
        expected = [item.target for item in handoff.items if item.kind == "environment"]
        if not handoff.changes:
            report, rows = verify(self.pp_read(), policy, FleetReport(), expected)
            done = finish(handoff, [], report, rows, done_message)
            return done.model_copy(update={"status": "nothing-to-do"}) if done.status == "completed" else done
        request = ApprovalRequest.handoff_approval(
            handoff, f"{self.procedure.replace('_', '-')}-handoff", self.who(), self.approving,
            policy_handoff(self.kv, self.target, designated=self.pp_admin),
        )
        approval = approved(request, lambda: self._handoff_plan(
            summary, plan_environments, self._read_policy(), self.list_environments()), self.kv)
        if isinstance(approval, RunOutcome):
            return approval
        approver = approval.proven[-1]
        self._approver = approver.connection
        return HandoffWork(plan=approval.plan, approvers=approval.approvers, expected=expected,
                           connection_block=approver.connection_block, policy=policy)

    def _handoff_plan(
        self, summary: str, plan_environments: PlanEnvironments, policy: PolicyInfo | None,
        environments: Sequence[Environment],
    ) -> Plan:
        plan = Plan(procedure=self.procedure, requester=self.who(), target_summary=summary)
        plan_environments(plan, policy, environments)
        return plan

    def _read_policy(self) -> PolicyInfo | None:
        return read_policy(self.kv_factory(), self.target)

    def wait_for_reader(self, work: W) -> W:
        """Until the approver's fresh Reader on the policy applies (their links are refused before)."""
        wait_for_reader(self.approver(work), self.target)
        return work

    # ------------------------------------------------------------------------- the Power Platform half

    def approver(self, work: HandoffWork) -> ConnectionSettings:
        """The approver's connection (a parked run re-entering loads its block once)."""
        if self._approver is None:
            self._approver = work.connection()
        return self._approver

    def waiting(self) -> Waiting:
        return self.fleet.waiting()

    def waves(
        self,
        work: HandoffWork,
        step: Callable[[FleetMember], StepResult],
        on_wave_done: Callable[[int, list[EnvironmentResult]], None] | None = None,
    ) -> FleetReport:
        """The approved plan's changing environments in waves, with the approver's connection; audited
        with the writes' request ids (the wave threads run in copies of this context: same collector)."""
        with audit.request_ids() as calls:
            report = self.fleet.run(self.approver(work), work, step,
                                    lambda: changing_members(work.plan, self.environments), on_wave_done)
        audit.record(
            {
                "event": f"{self.procedure}-power-platform-half",
                "procedure": self.procedure,
                "plan_hash": work.plan.hash,
                "approvers": work.approvers,
                "writes": [c.model_dump() for c in calls if c.method not in ("GET", "HEAD")],
            }
        )
        return report

    def link_waves(self, work: HandoffWork, limits: LinkLimits) -> FleetReport:
        """The waves linking each changing environment to the approved policy (Managed Environment first
        where the plan says)."""
        return self.waves(work, link_step(self.approver(work), work.policy, limits, self.waiting()))

    def verify(self, work: HandoffWork, report: FleetReport) -> tuple[FleetReport, list[dict[str, object]]]:
        """Every environment of the hand-off read back: encrypted through the policy, or failed."""
        return verify(self.approver(work), work.policy, report, work.expected)

    def finish(
        self, work: HandoffWork, verified: FleetReport, rows: list[dict[str, object]], what: str
    ) -> RunOutcome:
        """The result table and the audit entry; the message counts the environments done: N of M `what`."""
        done = len(verified.results) - len(verified.failed) - len(verified.not_started)
        return finish(work.plan, work.approvers, verified, rows, f"{done} of {len(work.expected)} {what}")


def policy_handoff(
    kv: ConnectionSettings, target: TargetSettings, designated: str = ""
) -> PowerPlatformHandoff:
    """The hand-off's Reader requirement on the target's policy, judged with the Key Vault admin's view
    (`kv` reads role assignments): who holds it is read once per ask, for `ppcmk approve`; the answer is
    checked after it. `designated`: the admin this run granted Reader, named on the form."""
    return PowerPlatformHandoff(
        policy_name=target.policy_name,
        has_policy_reader=lambda admin: has_policy_reader(kv, target, admin),
        policy_id=target.policy_id(kv.subscription_id),
        designated=designated,
        policy_readers=lambda: policy_reader_ids(kv, target),
    )


@cmk_task(task_run_name="wait-for-reader-{target.policy_name}")
def wait_for_reader(
    pp: ConnectionSettings, target: TargetSettings, timeout: timedelta = PROPAGATION_TIMEOUT
) -> float:
    """Read the policy as the approver until ARM lets them: their fresh Reader takes minutes to apply, and
    the link is refused (403) until it has. Returns the seconds waited (cloud clock)."""
    factory = ClientFactory.for_settings(pp)
    waited = 0.0
    while True:
        try:
            read_policy(factory, target)
            return waited
        except HttpResponseError as denied:
            if denied.status_code != 403 or waited >= timeout.total_seconds():
                raise
        factory.sleeper.sleep(PROPAGATION_POLL_SECONDS)
        waited += PROPAGATION_POLL_SECONDS
