"""Key access grants (RBAC and access policies), propagation, revoke/restore, and the admin's Reader role."""
from __future__ import annotations

from typing import Any

import pytest

from ppcmk.cloud.settings import ConnectionSettings
from ppcmk.errors import ConfigError
from ppcmk.models.arm_ids import role_assignment_name
from ppcmk.services import role_grants
from ppcmk.services.factory import ClientFactory
from ppcmk.services.key_vault import read_vault
from ppcmk_tasks import access, policy, policy_reader
from tests.support.runs import run_in_flow
from tests.support.sandbox import connection, target
from tests.support.scenario import PP_ADMIN_2_ID, PP_ADMIN_ID, REQUESTER_ID, RUNBOOK_ID

ASSIGNMENT_PUT = r"/providers/Microsoft\.Authorization/roleAssignments/[0-9a-f-]+$"
ACCESS_POLICY_PUT = r"/accessPolicies/(add|remove)$"


def _new_policy_identity(cloud: Any, conn: ConnectionSettings, vault: str = "kv-cmk-prod") -> str:
    tgt = target(
        cloud,
        vault=vault,
        key="cmk-prod" if vault == "kv-cmk-prod" else "cmk-expiring",
        key_size=3072 if vault == "kv-cmk-prod" else 2048,
    )
    policy.ensure_provider_registered.fn(conn)
    policy.create_or_get_policy.fn(conn, tgt)
    return str(policy.wait_for_policy_identity.fn(conn, tgt).principal_id)


def test_rbac_grant_is_deterministic_and_written_once(cloud: Any, conn: ConnectionSettings) -> None:
    principal = _new_policy_identity(cloud, conn)
    tgt = target(cloud, key="cmk-prod")
    first = access.grant_key_access.fn(conn, tgt, principal)
    second = access.grant_key_access.fn(conn, tgt, principal)
    assert first.changed and not second.changed and first.mechanism == "rbac"
    definition = role_grants.role_definition_id(conn.subscription_id,
                                                role_grants.CRYPTO_SERVICE_ENCRYPTION_USER)
    assert str(first.assignment_id).endswith(role_assignment_name(tgt.vault_id, principal, definition))
    assert cloud.log.count(method="PUT", path=ASSIGNMENT_PUT) == 1


def test_grant_throttled_twice_changes_once(
    cloud: Any, conn: ConnectionSettings, prefect_backend: None
) -> None:
    principal = _new_policy_identity(cloud, conn)
    cloud.faults.add(method="PUT", path=ASSIGNMENT_PUT, status=429, times=2)
    grant = run_in_flow(access.grant_key_access, conn, target(cloud, key="cmk-prod"), principal)
    assert grant.changed
    assert cloud.log.count(method="PUT", path=ASSIGNMENT_PUT, status=201) == 1


def test_access_policy_vault_gets_get_wrap_unwrap(cloud: Any, conn: ConnectionSettings) -> None:
    principal = _new_policy_identity(cloud, conn, vault="kv-nopurge")
    tgt = target(cloud, vault="kv-nopurge", key="cmk-expiring", key_size=2048)
    grant = access.grant_key_access.fn(conn, tgt, principal)
    assert grant.mechanism == "access_policy" and grant.changed
    assert set(grant.key_permissions) == {"get", "wrapKey", "unwrapKey"}
    assert not access.grant_key_access.fn(conn, tgt, principal).changed
    assert cloud.log.count(method="PUT", path=ACCESS_POLICY_PUT) == 1
    revoked = access.revoke_key_access.fn(conn, tgt, principal)
    assert [g.mechanism for g in revoked.removed] == ["access_policy"]
    factory = ClientFactory.for_settings(conn)
    assert role_grants.read_key_grants(factory, read_vault(factory, tgt.vault_id), principal) == []
    restored = access.restore_key_access.fn(conn, revoked)
    assert restored[0].changed and set(restored[0].key_permissions) == {"get", "wrapKey", "unwrapKey"}


def test_propagation_is_awaited_on_the_virtual_clock(cloud: Any, conn: ConnectionSettings) -> None:
    principal = _new_policy_identity(cloud, conn)
    tgt = target(cloud, key="cmk-prod")
    access.grant_key_access.fn(conn, tgt, principal)
    before = cloud.clock.now()
    result = access.wait_for_propagation.fn(conn, tgt, principal)
    assert result.visible and result.probe_ok is True
    assert result.checks > 1 and (cloud.clock.now() - before).total_seconds() >= 120  # the scenario's delay


def test_revoke_returns_what_it_removed_and_restore_puts_it_back(
    cloud: Any, conn: ConnectionSettings
) -> None:
    tgt = target(cloud, key="cmk-prod", policy="ep-existing")
    principal = str(policy.get_policy.fn(conn, tgt).principal_id)  # type: ignore[union-attr]
    revoked = access.revoke_key_access.fn(conn, tgt, principal)
    assert [g.role_definition_id.rsplit("/", 1)[-1] for g in revoked.removed] == [  # type: ignore[union-attr]
        role_grants.CRYPTO_SERVICE_ENCRYPTION_USER
    ]
    assert policy.get_policy.fn(conn, tgt).health_status == "Unhealthy"  # type: ignore[union-attr]
    assert access.revoke_key_access.fn(conn, tgt, principal).removed == []
    restored = access.restore_key_access.fn(conn, revoked)
    assert [g.assignment_id for g in restored] == [g.assignment_id for g in revoked.removed]
    assert access.restore_key_access.fn(conn, revoked)[0].changed is False
    assert access.wait_for_propagation.fn(conn, tgt, principal).probe_ok is True


def test_admin_reader_granted_by_upn_and_checked_through_arm(cloud: Any, conn: ConnectionSettings) -> None:
    tgt = target(cloud, key="cmk-prod", policy="ep-existing")
    assert policy_reader.has_policy_reader.fn(conn, tgt, "pp-admin@contoso.example")
    assert not policy_reader.has_policy_reader.fn(conn, tgt, "pp-admin-2@contoso.example")
    grant = policy_reader.grant_policy_reader.fn(conn, tgt, "pp-admin-2@contoso.example")
    assert grant.changed and grant.principal_id == PP_ADMIN_2_ID
    assert not policy_reader.grant_policy_reader.fn(conn, tgt, PP_ADMIN_2_ID).changed
    assert policy_reader.has_policy_reader.fn(conn, tgt, "pp-admin-2@contoso.example")
    with pytest.raises(ConfigError, match="user"):
        policy_reader.grant_policy_reader.fn(conn, tgt, "nobody@contoso.example")
    # A service principal (the runbook) already reads the policy through Owner on the subscription.
    inherited = policy_reader.grant_policy_reader.fn(conn, tgt, RUNBOOK_ID)
    assert not inherited.changed and inherited.principal_type == "ServicePrincipal"
    assert inherited.scope == f"/subscriptions/{conn.subscription_id}"


def test_policy_readers_are_who_holds_reader_or_higher_at_the_policy_or_above(
    cloud: Any, conn: ConnectionSettings
) -> None:
    tgt = target(cloud, key="cmk-prod", policy="ep-existing")
    kv_admin = connection(cloud, "kv-admin")
    # Owner on the subscription (kv-admin, the runbook) and Reader on the policy (pp-admin)
    owners_and_reader = [REQUESTER_ID, PP_ADMIN_ID, RUNBOOK_ID]
    assert policy_reader.policy_reader_ids.fn(kv_admin, tgt) == owners_and_reader
    # a Reader granted this moment is listed at once (its holder's own reads see it only once it applies)
    policy_reader.grant_policy_reader.fn(conn, tgt, "pp-admin-2@contoso.example")
    second = PP_ADMIN_2_ID
    assert policy_reader.policy_reader_ids.fn(kv_admin, tgt) == sorted([*owners_and_reader, second])
    # only the roles asked for, and only assignments at the scope or above it (pp-admin's is on the policy)
    factory, vault = ClientFactory.for_settings(kv_admin), tgt.vault_id
    administrators = role_grants.principals_with_roles(factory, vault,
                                                       frozenset({role_grants.KEY_VAULT_ADMINISTRATOR}))
    assert administrators == [REQUESTER_ID]
    assert role_grants.principals_with_roles(factory, vault, frozenset({role_grants.READER})) == []
