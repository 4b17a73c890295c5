"""Power Automate's limit of CMK-enabled environments per tenant in a link plan (25 by default, a setting
for a raised one), and what the plan says about migrating flows."""

from __future__ import annotations

import pytest

from ppcmk.checks import power_automate
from ppcmk.cloud.settings import TargetSettings
from ppcmk.errors import ConfigError
from ppcmk.models.environments import CmkLink, Environment
from ppcmk.models.findings import Severity
from ppcmk.safety.plan import Plan
from ppcmk_flows._two_half import environments_planned
from ppcmk_flows._two_half_plan import plan_links

TARGET = TargetSettings(vault_id="/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-cmk/"
                                 "providers/Microsoft.KeyVault/vaults/kv-cmk-prod",
                        key_name="cmk-prod", key_size=3072, policy_name="ep-cmk", resource_group="rg-cmk",
                        geo="europe")
POLICY = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-cmk/providers/" \
         "Microsoft.PowerPlatform/enterprisePolicies/ep-other"


def environment(index: int, linked: bool) -> Environment:
    return Environment(id=f"e1000000-0000-4000-8000-{index:012d}", display_name=f"Env {index}", geo="europe",
                       sku="Production", protection_level="Standard", runtime_state="Enabled",
                       runtime_reason="NotSpecified", key_managed_by="Customer" if linked else "Microsoft",
                       cmk=CmkLink(policy_id=POLICY, system_id="/regions/europe/x", link_status="Linked")
                       if linked else None)


def link_plan(on_cmk: int, linking: int) -> Plan:
    """A link plan for `linking` new environments in a tenant with `on_cmk` already on a customer key."""
    tenant = [environment(i, True) for i in range(on_cmk)]
    tenant += [environment(on_cmk + i, False) for i in range(linking)]
    plan = Plan(procedure="onboard", requester="kv-admin@contoso.example", target_summary="test")
    environments_planned(plan, lambda p, policy, envs: plan_links(p, TARGET, policy, envs[on_cmk:], True),
                         None, tenant)
    return plan


def limit_warnings(plan: Plan) -> list[str]:
    return [f.message for f in plan.findings if f.check == "power_automate.limit"]


def test_the_26th_environment_is_warned_with_the_support_path() -> None:
    plan = link_plan(on_cmk=25, linking=1)
    (warning,) = [f for f in plan.findings if f.check == "power_automate.limit"]
    assert warning.severity == Severity.WARNING
    assert "26 environments on a customer-managed key after this change (25 now, 1 linked by it)" in \
        warning.message and "allows 25" in warning.message
    assert "support case" in warning.fix and power_automate.LIMIT_SETTING in warning.fix


def test_the_25th_is_within_the_limit_and_the_plan_says_what_migrating_flows_means() -> None:
    plan = link_plan(on_cmk=24, linking=1)
    assert limit_warnings(plan) == []
    (migration,) = [f for f in plan.findings if f.check == "power_automate.migration"]
    assert "creating and updating flows is blocked during the migration" in migration.message
    for flows in power_automate.NOT_MIGRATED:
        assert flows in migration.message


def test_a_raised_limit_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(power_automate.LIMIT_SETTING, "50")
    assert limit_warnings(link_plan(on_cmk=25, linking=1)) == []
    monkeypatch.setenv(power_automate.LIMIT_SETTING, "lots")
    with pytest.raises(ConfigError, match=power_automate.LIMIT_SETTING):
        link_plan(on_cmk=25, linking=1)


def test_a_move_between_policies_adds_no_environment() -> None:
    tenant = [environment(i, True) for i in range(26)]
    plan = Plan(procedure="change_policy", requester="kv-admin@contoso.example", target_summary="test")
    environments_planned(plan, lambda p, policy, envs: None, None, tenant)
    assert plan.findings == []
