"""Why a policy's identity cannot use its key, from plain readings: each cause with its repair or its manual
step, repairs in the order they can run, and the deletion countdown from the earliest evidence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ppcmk.locks.causes import DeletedItem, KeyAccessReading, diagnose, repair_action
from ppcmk.locks.countdown import Evidence, countdown
from ppcmk.models.azure import KeyInfo, PolicyInfo, RoleGrant, VaultStatus

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)
VAULT_ID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv"
POLICY = PolicyInfo(policy_id="/subscriptions/s/resourceGroups/rg/providers/Microsoft.PowerPlatform/"
                    "enterprisePolicies/ep", name="ep", location="europe", kind="Encryption",
                    principal_id="p1", key_vault_id=VAULT_ID, key_name="k")
VAULT = VaultStatus(vault_id=VAULT_ID, name="kv", vault_uri="https://kv", soft_delete=True,
                    purge_protection=True, rbac_authorization=True)
GRANT = RoleGrant(mechanism="rbac", scope=VAULT_ID, principal_id="p1")


def version(**changes: object) -> KeyInfo:
    usable = KeyInfo(vault_id=VAULT_ID, name="k", kid=f"{VAULT_ID}/keys/k/v1", version="v1" * 16,
                     kty="RSA", key_ops=["wrapKey", "unwrapKey"], updated_on=NOW - timedelta(hours=3))
    return usable.model_copy(update=changes)


def reading(**changes: object) -> KeyAccessReading:
    healthy = KeyAccessReading(policy_name="ep", policy=POLICY, vault_id=VAULT_ID, vault=VAULT, key_name="k",
                               versions_in_use=[version()], grants=[GRANT], now=NOW)
    return healthy.model_copy(update=changes)


def kinds(found: KeyAccessReading) -> list[tuple[str, str | None]]:
    return [(cause.kind, cause.repair) for cause in diagnose(found)]


def test_a_usable_key_has_no_cause() -> None:
    assert diagnose(reading()) == []


def test_several_causes_come_in_the_order_their_repairs_can_run() -> None:
    closed = VAULT.model_copy(update={"public_network_access": "Disabled", "bypass": "None"})
    found = reading(vault=closed, grants=[], versions_in_use=[version(enabled=False)])
    assert kinds(found) == [("vault.network", "allow-trusted-services"),
                            ("key.disabled", "repair-key-version"), ("access.removed", "restore-access")]
    disabled = diagnose(found)[1]
    assert disabled.since == NOW - timedelta(hours=3) and disabled.since_by == "the key version's last update"


def test_a_version_with_several_problems_is_one_repair_naming_each_fix() -> None:
    broken = version(expires_on=NOW - timedelta(days=1), not_before=NOW + timedelta(days=1),
                     key_ops=["encrypt"])
    [cause] = diagnose(reading(versions_in_use=[version(), broken]))
    assert cause.kind == "key.expired" and cause.version == broken.version
    assert repair_action(cause) == (f"version {broken.version[:8]}: extend its expiry by 90 days, activate "
                                    "it now, allow wrapKey and unwrapKey")


def test_deleted_things_are_recovered_while_they_can_be_and_named_by_hand_after() -> None:
    soft = DeletedItem(name="kv", deleted_on=NOW - timedelta(days=1), purge_on=NOW + timedelta(days=89))
    assert kinds(reading(vault=None, deleted_vault=soft)) == [("vault.deleted", "recover-vault")]
    assert kinds(reading(versions_in_use=[], deleted_key=soft)) == [("key.deleted", "recover-key")]
    [purged] = diagnose(reading(versions_in_use=[], deleted_key=None))
    assert (purged.kind, purged.repair) == ("key.purged", None) and "az keyvault key restore" in purged.manual
    [gone] = diagnose(reading(policy=None))
    assert gone.kind == "policy.deleted" and "Microsoft support" in gone.manual


def test_a_repair_on_the_vault_behind_its_firewall_needs_a_worker_inside() -> None:
    closed = VAULT.model_copy(update={"default_action": "Deny", "bypass": "None"})
    found = reading(vault=closed, data_plane_reachable=False, versions_in_use=[version(enabled=False)])
    assert [k for k, _ in kinds(found)] == ["vault.network", "key.disabled", "vault.unreachable"]
    only_arm = reading(vault=closed, data_plane_reachable=False, grants=[])
    assert "vault.unreachable" not in [k for k, _ in kinds(only_arm)]  # a role assignment goes through ARM


def test_the_countdown_starts_at_the_earliest_evidence_and_says_where_from() -> None:
    service = Evidence(NOW - timedelta(days=2), "the service's lastModifiedTime")
    clock = countdown("Sandbox", [service, Evidence(None, "ppcmk's lock record")], first_seen=NOW)
    assert (clock.started, clock.deleted_at, clock.estimated) == (service.at, NOW + timedelta(days=5), False)
    assert clock.tier(NOW) == "7d" and "5 days left" in clock.describe(NOW)
    assert clock.tier(NOW + timedelta(days=3)) == "3d"
    assert clock.tier(NOW + timedelta(days=4, hours=1)) == "1d"
    guessed = countdown("Production", [], first_seen=NOW)
    assert guessed.estimated and guessed.tier(NOW) == "locked" and "or earlier" in guessed.describe(NOW)
