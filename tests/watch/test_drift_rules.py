"""The rules on plain facts, for what the sandbox scenarios do not show: another policy, soft delete off,
and the change list itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ppcmk.desired import parse_desired_state
from ppcmk.drift import WatchState, changes
from ppcmk.drift_rules import detect, lock_lifetime
from ppcmk.estate import EnvironmentFact, EstateFacts, PolicyFact, VaultFact

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)
POLICY = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.PowerPlatform/enterprisePolicies/"


def test_an_environment_on_another_policy_and_a_vault_without_soft_delete() -> None:
    estate = EstateFacts(
        now=NOW, vaults=[VaultFact(vault_id="/v/kv", name="kv", soft_delete=False)],
        policies=[PolicyFact(policy_id=POLICY + name, name=name, resource_group="rg") for name in ("a", "b")],
        environments=[EnvironmentFact(id="e1", name="Env 1", policy_id=POLICY + "a", link_status="Linked")])
    desired = parse_desired_state("policies: [{name: b, environments: [Env 1]}, {name: a}]", "test")
    found = {d.kind: d for d in detect(estate, desired=desired)}
    assert found["env.other_policy"].message == "linked to a; the desired state puts it on b"
    assert found["vault.soft_delete"].severity == "error"


def test_changes_report_appeared_changed_and_resolved_once() -> None:
    env = EnvironmentFact(id="e1", name="Env 1", sku="Production", runtime_reason="CustomerManagedKeyLocked")
    first = detect(EstateFacts(now=NOW, environments=[env]))
    assert [(c.change, c.tier) for c in changes(WatchState(), first)] == [("appeared", "30d left")]
    state = WatchState.of(NOW, first)
    later = detect(EstateFacts(now=NOW + timedelta(days=3), environments=[env]), state)
    assert [(c.change, c.tier, c.previous_level) for c in changes(state, later)] == [
        ("changed", "27d left", "critical:30d left")]
    assert changes(WatchState.of(NOW, later), later) == []
    assert [c.change for c in changes(WatchState.of(NOW, later), [])] == ["resolved"]
    assert lock_lifetime("Sandbox") == timedelta(days=7) and lock_lifetime("Trial") == timedelta(days=30)
