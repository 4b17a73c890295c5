"""The preflight doctor: read everything once, run every check, return every finding with its fix.

`doctor_report` is a plain function (the CLI calls it without a flow); `run_doctor` is the same as a Prefect
task. A read that fails becomes a finding too, so one unreachable object never hides the other problems. The
report carries the facts it read about its primary target (`TargetFacts`), so a runbook plans from them
without reading anything a second time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

from azure.core.exceptions import AzureError, ClientAuthenticationError
from pydantic import BaseModel, Field

from ppcmk.checks import hsm as hsm_checks
from ppcmk.checks import key_vault as checks
from ppcmk.checks import policy as policy_checks
from ppcmk.checks import power_automate
from ppcmk.checks.byok import may_have_been_reverted
from ppcmk.checks.environments import check_environment, check_operations, check_reverted, operations_refused
from ppcmk.cloud.parallel import DEFAULT_CONCURRENCY, bounded_map
from ppcmk.cloud.settings import ConnectionSettings, TargetSettings
from ppcmk.errors import PpcmkError, ServiceError
from ppcmk.models.azure import KeyInfo, PolicyInfo, ProviderStatus, RoleGrant, VaultStatus
from ppcmk.models.environments import Environment
from ppcmk.models.findings import DoctorReport, Finding, Severity, error, info
from ppcmk.safety.retry import cmk_task
from ppcmk.services.factory import ClientFactory
from ppcmk.services.key_vault import read_key_via_arm, read_vault
from ppcmk.services.policies import read_policy, read_provider
from ppcmk.services.role_grants import POLICY_READ_ROLES, read_key_grants, read_role_grants, resolve_principal

READ_ERRORS = (PpcmkError, AzureError)


def _enabling_is_the_advice(findings: Sequence[Finding]) -> bool:
    """Whether a tenant-wide survey reads this environment's lifecycle operations: only where its one error
    is "not a Managed Environment". The environment list shows a running link or unlink (runtime reason) and
    a lock, but not a Managed Environment change, and only there does one change what to do (an enabling
    already under way, not one to start). Elsewhere a running operation is waited out by the runbook that
    acts on the environment, which reads its operations before it links, unlinks or re-enables it."""
    return {f.check for f in findings if f.severity == Severity.ERROR} == {"env.managed"}


def survey_operations_read(read: int, listed: int) -> Finding:
    return info(
        "env.operations",
        "environments",
        f"lifecycle operations read for {read} of {listed} environments: those whose one error is not being "
        "a Managed Environment (an enabling may be under way there) and those on the Microsoft key that "
        "existed at BYOK's end of support (the platform may have reverted them); the environment list shows "
        "a running "
        "link or unlink on every environment; name environments with --environment to read theirs too",
    )


class TargetFacts(BaseModel):
    """What the doctor read about its primary target; None (or empty) where absent or unreadable (a finding
    then says which)."""

    vault: VaultStatus | None = None
    key: KeyInfo | None = None
    provider: ProviderStatus | None = None
    policy: PolicyInfo | None = None
    key_grants: list[RoleGrant] = Field(default_factory=list, description="the policy identity's key access")
    admin_has_reader: bool | None = Field(
        default=None, description="the Power Platform admin's Reader on the policy; None: not read"
    )


class DoctorReading(DoctorReport):
    """The findings and the facts they were checked on."""

    facts: TargetFacts = Field(default_factory=TargetFacts)


class _Gatherer:
    """Collects findings; a read that fails inside `about(...)` becomes an error finding about its object."""

    def __init__(self, factory: ClientFactory) -> None:
        self.factory = factory
        self.findings: list[Finding] = []
        self.vaults: dict[str, VaultStatus | None] = {}
        self.keys: dict[str, KeyInfo | None] = {}
        self.grants: dict[str, list[RoleGrant]] = {}
        self.provider: ProviderStatus | None = None
        self.admin_has_reader: bool | None = None
        self.operations_refused = False

    def add(self, findings: Iterable[Finding]) -> None:
        self.findings.extend(findings)

    @contextmanager
    def about(self, check: str, subject: str, what: str) -> Iterator[None]:
        try:
            yield
        except READ_ERRORS as exc:
            # The SDK's message runs over several lines (code, inner error); the first one says it all.
            summary = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            self.findings.append(
                error(
                    check,
                    subject,
                    f"could not read {what}: {summary}",
                    "give the runbook identity read access (or fix the id), then run again",
                )
            )

    def vault(self, vault_id: str) -> VaultStatus | None:
        """The vault, read and checked once however many targets share it."""
        if vault_id.lower() not in self.vaults:
            self.vaults[vault_id.lower()] = None
            with self.about("vault.read", vault_id, "the vault"):
                vault = self.vaults[vault_id.lower()] = read_vault(self.factory, vault_id)
                self.add(checks.check_vault(vault))
        return self.vaults[vault_id.lower()]

    def key(self, target: TargetSettings) -> None:
        subject = checks.key_subject(target.vault_id, target.key_name)
        if subject.lower() in self.keys:
            return
        self.keys[subject.lower()] = None
        with self.about("key.read", subject, "the key"):
            key, rotation = read_key_via_arm(self.factory, target.vault_id, target.key_name)
            self.keys[subject.lower()] = key
            self.add(checks.check_key(key, target, self.factory.now()))
            if key is not None:
                self.add(checks.check_rotation(rotation, target))

    def policy(self, target: TargetSettings) -> PolicyInfo | None:
        policy: PolicyInfo | None = None
        with self.about("policy.read", target.policy_id(self.factory.settings.subscription_id), "the policy"):
            policy = read_policy(self.factory, target)
            self.add(policy_checks.check_policy(policy, target))
        vault = self.vaults.get(target.vault_id.lower())
        if policy is not None and policy.principal_id and vault is not None:
            principal = policy.principal_id
            with self.about("access.read", policy.policy_id, "the policy identity's key access"):
                if vault.kind == "managedHSM":
                    self.hsm_key_access(vault, policy, target.key_name)
                else:
                    grants = read_key_grants(self.factory, vault, principal)
                    self.grants[policy.policy_id.lower()] = grants
                    self.add(policy_checks.check_key_access(vault, policy, grants))
        return policy

    def hsm_key_access(self, vault: VaultStatus, policy: PolicyInfo, key_name: str) -> None:
        """A managed HSM's local role assignments, read on its data plane. A caller without a local role that
        may read them is refused: that is something the doctor cannot check (info), not missing access."""
        try:
            grants = read_key_grants(self.factory, vault, policy.principal_id or "", key_name)
        except ServiceError as exc:
            if exc.status not in (401, 403):
                raise
            self.add([hsm_checks.hsm_roles_unreadable(vault, policy, exc.status)])
            return
        self.grants[policy.policy_id.lower()] = grants
        self.add(hsm_checks.check_hsm_key_access(vault, policy, key_name, grants))

    def admin_reader(self, policy: PolicyInfo, pp_admin: str) -> None:
        with self.about("access.admin_reader", policy.policy_id, f"the roles of {pp_admin} on the policy"):
            principal = resolve_principal(self.factory, pp_admin)
            grants = read_role_grants(self.factory, policy.policy_id, principal, POLICY_READ_ROLES)
            self.admin_has_reader = bool(grants)
            self.add(policy_checks.check_admin_reader(pp_admin, policy, self.admin_has_reader))

    def facts(self, target: TargetSettings, policy: PolicyInfo | None) -> TargetFacts:
        subject = checks.key_subject(target.vault_id, target.key_name).lower()
        return TargetFacts(
            vault=self.vaults.get(target.vault_id.lower()),
            key=self.keys.get(subject),
            provider=self.provider,
            policy=policy,
            key_grants=self.grants.get(policy.policy_id.lower(), []) if policy is not None else [],
            admin_has_reader=self.admin_has_reader,
        )

    def environments(
        self, target: TargetSettings, policy: PolicyInfo | None, environment_ids: Sequence[str] | None
    ) -> None:
        admin = self.factory.pp_admin()
        if environment_ids is None:
            with self.about("env.list", "environments", "the environment list"):
                listed = admin.list_environments()
                surveyed = []
                for environment in listed:
                    findings = check_environment(environment.id, environment, target, policy)
                    self.add(findings)
                    if _enabling_is_the_advice(findings) or may_have_been_reverted(environment):
                        surveyed.append(environment)
                self.survey_note(self.all_operations(surveyed), len(listed))
                self.add([power_automate.doctor_count(listed)])
            return
        found = []
        for environment_id in environment_ids:
            with self.about("env.read", environment_id, "the environment"):
                env = admin.find_environment(environment_id)
                self.add(check_environment(environment_id, env, target, policy))
                if env is not None:
                    found.append(env)
        self.all_operations(found)

    def survey_note(self, read: int, listed: int) -> None:
        """Say how many environments' operations a tenant-wide survey read, and how to read the others'."""
        if not self.operations_refused:
            self.add([survey_operations_read(read, listed)])

    def all_operations(self, envs: Sequence[Environment]) -> int:
        """The first environment's operations alone (a refusal stops the others), then the rest with bounded
        concurrency: N environments take the time of N / concurrency reads. How many were read."""
        if not envs:
            return 0
        first = self.operations(envs[0])
        rest = bounded_map(self.operations, envs[1:], DEFAULT_CONCURRENCY)
        return int(first) + sum(done is True for done in rest)

    def operations(self, env: Environment) -> bool:
        """Lifecycle operations still running on the environment (one Power Platform API read), and whether
        they were read. When the API refuses the caller, say so once and stop asking: the other checks do not
        depend on it."""
        if self.operations_refused:
            return False
        with self.about("env.operations.read", env.id, "the environment's lifecycle operations"):
            try:
                operations = self.factory.pp_api().environment_operations(env.id)
            except ClientAuthenticationError:
                self.operations_refused = True
                self.add([operations_refused(401)])
                return False
            except ServiceError as exc:
                if exc.status not in (401, 403):
                    raise
                self.operations_refused = True
                self.add([operations_refused(exc.status)])
                return False
            self.add(check_operations(env, operations) + check_reverted(env, operations))
            return True
        return False


def doctor_report(
    conn: ConnectionSettings,
    target: TargetSettings | Sequence[TargetSettings],
    environment_ids: Sequence[str] | None = None,
    pp_admin: str | None = None,
) -> DoctorReading:
    """Check everything at once. With several targets the first is the primary one: environments are checked
    for its policy, and its facts come with the findings; the others add their vault, key and policy
    findings (e.g. a fleet's other vaults)."""
    targets = [target] if isinstance(target, TargetSettings) else list(target)
    if not targets:
        raise PpcmkError("doctor: give at least one target (vault, key, policy)")
    g = _Gatherer(ClientFactory.for_settings(conn))
    with g.about("provider.read", "provider Microsoft.PowerPlatform", "the resource provider"):
        g.provider = read_provider(g.factory)
        g.add(policy_checks.check_provider(g.provider, targets[0]))
    policies = []
    for each in targets:
        g.vault(each.vault_id)
        g.key(each)
        policies.append(g.policy(each))
    if pp_admin and policies[0] is not None:
        g.admin_reader(policies[0], pp_admin)
    g.environments(targets[0], policies[0], environment_ids)
    report = DoctorReport.of(g.factory.now(), g.findings)
    return DoctorReading(generated_at=report.generated_at, findings=report.findings,
                         facts=g.facts(targets[0], policies[0]))


# one task run for the whole doctor; the reads inside are plain calls
run_doctor = cmk_task(task_run_name="doctor")(doctor_report)
