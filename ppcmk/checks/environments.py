"""The doctor's environment checks: eligibility for the target policy, current encryption state, and lifecycle
operations still running; and whether a run may adopt a customer-managed key operation it finds running."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ppcmk.checks.byok import ENDED, REVERTED_FIX, may_have_been_reverted, reverted_at, reverted_message
from ppcmk.cloud.settings import TargetSettings
from ppcmk.models.azure import PolicyInfo, linked_to
from ppcmk.models.environments import Environment, EnvironmentOperation
from ppcmk.models.findings import Finding, FindingsAbout, error, info, warning
from ppcmk.models.geo import same_geo

if TYPE_CHECKING:
    from ppcmk.safety.claims import Owner

INELIGIBLE_SKUS = {"trial": "Trial", "teams": "Teams"}
LINK_OPERATION = "NewCustomerManagedKey"
ADOPTED_FIX = "nothing: the environment stays Disabled until that operation finishes"
THEN = ", then "  # how a plan item's action joins its steps: "enable Managed Environment, then link to P"


def check_environment(
    environment_id: str, env: Environment | None, target: TargetSettings, policy: PolicyInfo | None
) -> list[Finding]:
    """Eligibility of one environment for the target's policy, and its current encryption state."""
    if env is None:
        return [
            error(
                "env.visible",
                environment_id,
                "the environment does not exist or is not visible to the caller",
                "check the id; the caller needs the Power Platform Administrator role (a service "
                "principal must be a registered admin management application)",
            )
        ]
    return named(env, _eligibility(env, target) + _runtime_state(env) + _encryption_state(env, policy))


def named(env: Environment, findings: list[Finding]) -> list[Finding]:
    """The findings about `env` with its display name, which people read before its id."""
    name = env.display_name or ""
    return [f.model_copy(update={"name": name}) if f.subject == env.id else f for f in findings]


def _eligibility(env: Environment, target: TargetSettings) -> list[Finding]:
    """What Power Platform asks of an environment before it links: type, Managed Environment, geo."""
    found = FindingsAbout(env.id)
    sku = (env.sku or "").lower()
    if sku in INELIGIBLE_SKUS:
        found.error("env.sku",
                    f"{INELIGIBLE_SKUS[sku]} environments cannot use a customer-managed key",
                    "choose a Production or Sandbox environment")
    if env.is_default or sku == "default":
        found.error("env.default",
                    "the Default environment does not allow CMK operations",
                    "leave the Default environment out of the selection")
    blocked = env.disallows(LINK_OPERATION)
    if blocked and sku not in INELIGIBLE_SKUS and not env.is_default and sku != "default":
        found.error("env.disallowed",
                    blocked.reason or f"{LINK_OPERATION} is disallowed",
                    "leave this environment out of the selection")
    if not env.managed:
        found.error("env.managed",
                    f"not a Managed Environment (protection level {env.protection_level})",
                    "enable Managed Environment (ppcmk onboard does it when "
                    "asked, or Power Platform admin center > Environments > Enable Managed Environments)")
    if not same_geo(env.geo, target.geo):
        found.error("env.geo",
                    f"the environment is in {env.geo}, the policy in {target.geo}",
                    "use a policy in the environment's geo")
    return found.findings


def _runtime_state(env: Environment) -> list[Finding]:
    """A lifecycle operation running, or the environment locked because its key is unusable."""
    subject = env.id
    if cmk_operation_running(env):
        return [
            error(
                "env.busy",
                subject,
                f"a lifecycle operation is running ({env.runtime_reason})",
                "wait for it to finish, then run again",
            )
        ]
    if env.locked:
        policy = (env.cmk.policy_id or "").rstrip("/").rsplit("/", 1)[-1] if env.cmk else "its policy"
        return [
            error(
                "env.locked",
                subject,
                "the environment is locked: its key is not usable",
                f"run unlock with the CmkTarget block of {policy}: it repairs what keeps the policy's "
                "identity from its key, whoever caused it, and re-enables the environment",
            )
        ]
    return []


def cmk_operation_running(env: Environment) -> bool:
    """The runtime reason shows a customer-managed key link or unlink running (it does not say which)."""
    return "inprogress" in (env.runtime_reason or "").lower()


def running_operation(env: Environment, step: str, owner: Owner | None) -> Finding:
    """A run whose next step on the environment is `step` ("link to P", "unlink from P") finds a customer-
    managed key operation running: it adopts it (a warning: it waits for that operation instead of starting
    another) only when no active run claims the environment and the claim left behind has that step among
    its run's steps (the environment's state says which step that run had reached: still on P, it was
    unlinking); otherwise the operation is a conflict (an error naming its holder). The service does not say
    which policy a running link goes to, so an operation no claim accounts for is never adopted."""
    return named(env, [_running_operation(env, step, owner)])[0]


def _running_operation(env: Environment, step: str, owner: Owner | None) -> Finding:
    if owner is None:
        return error("env.busy", env.id,
                     f"a customer-managed key operation is running ({env.runtime_reason}) that no ppcmk run "
                     "claims, so which policy it links or unlinks cannot be told",
                     "wait for it to finish (the environment's History in the Power Platform admin center), "
                     "then run again")
    if owner.mine:
        return warning("env.adopt", env.id,
                       f"a {step} is running at the service; this run holds the environment's claim and "
                       "waits for that operation instead of starting another", ADOPTED_FIX)
    if not owner.ended:
        return error("env.busy", env.id,
                     f"a customer-managed key operation is running for {owner.describe()}, which claims the "
                     f"environment to {owner.holder.intent or 'change it'}",
                     f"let run '{owner.holder.flow_run_name}' finish (or cancel it), then run again")
    if step in owner.holder.intent.split(THEN):
        return warning("env.adopt", env.id,
                       f"a {step} is running at the service, left by {owner.describe()}, which ended before "
                       "it finished; this run adopts that operation: it waits for it instead of starting "
                       "another", ADOPTED_FIX)
    return error("env.busy", env.id,
                 f"a customer-managed key operation is running, left by {owner.describe()}, which meant to "
                 f"{owner.holder.intent or '(not recorded)'}; this run would {step}",
                 "wait for that operation to finish, then run again: the plan then starts from what it did")


def _encryption_state(env: Environment, policy: PolicyInfo | None) -> list[Finding]:
    subject = env.id
    if env.cmk is not None and env.cmk.linked:
        if linked_to(env, policy):
            return [info("env.encryption", subject, "already encrypted with the target policy")]
        return [
            warning(
                "env.encryption",
                subject,
                f"encrypted with another policy ({env.cmk.policy_id}); linking swaps the key (an outage)",
                "use the change-policy runbook for this environment",
            )
        ]
    if env.cmk is not None:
        return [
            warning(
                "env.encryption",
                subject,
                f"policy link status is {env.cmk.link_status}",
                "re-run the link (the service resumes where it left off)",
            )
        ]
    managed_by = (env.key_managed_by or "Microsoft").lower()
    if managed_by != "microsoft":
        return [
            warning(
                "env.byok",
                subject,
                f"the environment uses a bring-your-own key ({env.key_managed_by}). {ENDED}",
                "migrate it with the BYOK migration runbook (a short outage; Microsoft keeps the BYOK key 28 "
                "days)",
            )
        ]
    return [info("env.encryption", subject, "uses the Microsoft-managed key")]


def check_operations(env: Environment, operations: Iterable[EnvironmentOperation]) -> list[Finding]:
    """A lifecycle operation the Power Platform API lists as still active (a Managed Environment change, a
    copy, ...): the service refuses a link or unlink until it ends. A running link/unlink that the runtime
    reason already shows (the env.busy error of `check_environment`) is not reported twice."""
    if cmk_operation_running(env):
        return []
    return named(env, [
        warning(
            "env.busy",
            env.id,
            f"lifecycle operation {op.name or op.operation_id} is {op.status}"
            + (f" since {op.start_time:%Y-%m-%d %H:%M} UTC" if op.start_time else " (not started yet)"),
            "wait for it to finish; ppcmk waits for it before linking, or run again later",
        )
        for op in operations
        if op.active
    ])


def check_reverted(env: Environment, operations: Iterable[EnvironmentOperation]) -> list[Finding]:
    """An environment the platform reverted from BYOK to the Microsoft key at BYOK's end of support."""
    at = reverted_at(operations)
    if at is None or not may_have_been_reverted(env):
        return []
    return named(env, [warning("env.byok_reverted", env.id, reverted_message(at), REVERTED_FIX)])


def operations_refused(status: int) -> Finding:
    """The Power Platform API refused the read (401/403): say so and what grants it; never an error, since
    the runbooks themselves do not need this API."""
    return info(
        "env.operations",
        "Power Platform API",
        f"reading environment lifecycle operations was refused (HTTP {status}), so operations other than "
        "a running link/unlink are not checked; the identity needs the Power Platform Administrator role "
        "(a service principal: a registered admin management application) and a token for "
        "https://api.powerplatform.com",
    )
