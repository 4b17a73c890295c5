"""The rules on plain facts, for what the sandbox scenarios do not show: another policy, soft delete off,
and the change list itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ppcmk.locks.countdown import lock_lifetime
from ppcmk.watch.desired import parse_desired_state
from ppcmk.watch.drift import WatchState, changes
from ppcmk.watch.estate import EnvironmentFact, EstateFacts, PolicyFact, TargetFact, VaultFact
from ppcmk.watch.rules import detect

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


def test_a_lock_escalates_once_per_tier_and_resolves_when_unlocked() -> None:
    env = EnvironmentFact(id="e1", name="Env 1", sku="Production", runtime_reason="CustomerManagedKeyLocked")
    first = detect(EstateFacts(now=NOW, environments=[env]))
    assert [(c.change, c.tier) for c in changes(WatchState(), first)] == [("appeared", "locked")]
    state, seen = WatchState.of(NOW, first), []
    for day in range(1, 30):  # hourly runs would say the same: a change only when the tier moves
        later = detect(EstateFacts(now=NOW + timedelta(days=day), environments=[env]), state)
        seen += [(day, c.change, c.tier, c.previous_level) for c in changes(state, later)]
        state = WatchState.of(NOW + timedelta(days=day), later)
    assert seen == [(23, "changed", "7d", "critical:locked"), (27, "changed", "3d", "critical:7d"),
                    (29, "changed", "1d", "critical:3d")]
    unlocked = env.model_copy(update={"runtime_reason": "NotSpecified"})
    after = detect(EstateFacts(now=NOW + timedelta(days=29), environments=[unlocked]), state)
    assert [c.change for c in changes(state, after)] == ["resolved"]
    assert lock_lifetime("Sandbox") == timedelta(days=7) and lock_lifetime("Trial") == timedelta(days=30)


def test_a_locked_environment_that_disappears_is_deleted_never_resolved() -> None:
    env = EnvironmentFact(id="e1", name="Env 1", sku="Sandbox", runtime_reason="CustomerManagedKeyLocked",
                          last_modified=NOW)
    state = WatchState.of(NOW, detect(EstateFacts(now=NOW, environments=[env])))
    gone_at = NOW + timedelta(days=7, hours=1)
    gone = detect(EstateFacts(now=gone_at), state)
    [found] = [(c.change, c.kind, c.tier, c.previous_level) for c in changes(state, gone)]
    assert found == ("changed", "env.deleted", "deleted", "critical:7d")
    [deleted] = gone
    assert deleted.severity == "critical" and deleted.since == NOW + timedelta(days=7)
    assert "the service deleted it when its lock countdown ended" in deleted.message
    assert "Microsoft support case" in deleted.fix
    # the next run keeps the loss open, saying nothing new; an unreadable environment list says nothing
    next_state = WatchState.of(gone_at, gone)
    again = detect(EstateFacts(now=gone_at + timedelta(hours=1)), next_state)
    assert [d.kind for d in again] == ["env.deleted"] and changes(next_state, again) == []


def test_a_fix_names_the_target_block_on_the_policys_own_key() -> None:
    policy = PolicyFact(policy_id=POLICY + "a", name="a", resource_group="rg", key_vault_id="/v/kv",
                        key_name="k")

    def target(block: str, **changes: str) -> TargetFact:
        fields = {"policy_name": "a", "resource_group": "rg", "vault_id": "/v/kv", "key_name": "k", **changes}
        return TargetFact(block=block, **fields)

    other_key = target("a-old", key_name="old")
    own_key = target("z-current", policy_name="A", vault_id="/v/KV")
    elsewhere = target("b", resource_group="other")
    assert EstateFacts(now=NOW, targets=[other_key, elsewhere, own_key]).target_for(policy) == "z-current"
    assert EstateFacts(now=NOW, targets=[other_key]).target_for(policy) == "a-old"
    assert EstateFacts(now=NOW, targets=[elsewhere]).target_for(policy) is None
