"""Power Automate's side of a customer-managed key (power-automate customer-managed-keys.md).

Linking an environment migrates its flows to the customer-managed key: creating and updating flows is blocked
while that runs, run history is not carried over, and some flows cannot migrate. A tenant may have 25
CMK-enabled Power Automate environments by default, raised by Microsoft support on request
(`PPCMK_POWER_AUTOMATE_CMK_LIMIT` then says the raised limit). Plans that link count the tenant's
environments on a customer-managed key after the change against that limit; the doctor reports the count.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from ppcmk.errors import ConfigError
from ppcmk.models.environments import Environment
from ppcmk.models.findings import Finding, info, warning
from ppcmk.safety.plan import Plan

LIMIT_SETTING = "PPCMK_POWER_AUTOMATE_CMK_LIMIT"
DEFAULT_LIMIT = 25
SUPPORT_PATH = (f"open a Microsoft support case to raise the tenant's limit of CMK-enabled Power Automate "
                f"environments before linking more; once raised, set {LIMIT_SETTING} to the new limit")
NOT_MIGRATED = ("flows triggered by Power Apps (V1) outside solutions",
                "flows with an HTTP or Teams trigger whose URL would change, and the flows that call them",
                "flows that use the action List flows as Admin (V1)",
                "the data of non-OAuth connections (it stays on the Microsoft-managed key)")
MIGRATION = ("Power Automate migrates each linked environment's flows to the customer-managed key: creating "
             "and updating flows is blocked during the migration, run history is not carried over "
             "(Microsoft support can provide it up to 30 days after), and these do not migrate: "
             + "; ".join(NOT_MIGRATED) + ". Flows then call out from the PowerPlatformPlex service tag: "
             "allow it in the firewalls they call. List the flows that cannot migrate first: "
             "Get-AdminFlowEncryptedByMicrosoftKey -EnvironmentName <id> "
             "-ListCannotMigrateToCustomerManagedKey, and tell makers when flow changes are blocked")


def cmk_limit() -> int:
    text = os.environ.get(LIMIT_SETTING, "").strip()
    if not text:
        return DEFAULT_LIMIT
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(LIMIT_SETTING, f"{text!r} is not a number of environments",
                          f"the limit support raised the tenant to, e.g. 50 (default {DEFAULT_LIMIT})")
    return int(text)


def on_cmk(environments: Iterable[Environment]) -> set[str]:
    """Ids of the environments linked (or being linked) to a customer-managed key policy."""
    return {env.id.lower() for env in environments if env.cmk is not None}


def linking(plan: Plan) -> set[str]:
    """Ids of the environments the plan links to a policy."""
    return {item.target.lower() for item in plan.items
            if item.kind == "environment" and item.changes and "link to" in item.action}


def plan_findings(environments: Sequence[Environment], plan: Plan) -> list[Finding]:
    """The count after the change against the limit (a warning above it) and what the migration means for
    flows, when the plan links environments that are not on a customer-managed key yet."""
    before = on_cmk(environments)
    new = linking(plan) - before
    if not new:
        return []
    after, limit = len(before | new), cmk_limit()
    found = [info("power_automate.migration", "flows", MIGRATION)]
    if after > limit:
        found.append(warning("power_automate.limit", "tenant",
                             f"{after} environments on a customer-managed key after this change "
                             f"({len(before)} now, {len(new)} linked by it): Power Automate allows {limit} "
                             "CMK-enabled environments per tenant; flows of those beyond the limit are not "
                             "protected",
                             SUPPORT_PATH))
    return found


def doctor_count(environments: Sequence[Environment]) -> Finding:
    """How many environments are on a customer-managed key, against the limit."""
    count, limit = len(on_cmk(environments)), cmk_limit()
    message = (f"{count} environment(s) on a customer-managed key; Power Automate allows {limit} CMK-enabled "
               "environments per tenant")
    if count > limit:
        return warning("power_automate.limit", "tenant", message, SUPPORT_PATH)
    return info("power_automate.count", "tenant", message)
