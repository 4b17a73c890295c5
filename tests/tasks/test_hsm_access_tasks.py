"""Key access on a managed HSM through its local RBAC: grant, propagation, revoke and restore, against the
sandbox with the real KeyVaultAccessControlClient."""

from __future__ import annotations

from typing import Any

import pytest

from ppcmk.cloud.settings import ConnectionSettings, TargetSettings
from ppcmk.errors import ServiceError
from ppcmk.models.arm_ids import role_assignment_name
from ppcmk.services import role_grants
from ppcmk.services.factory import ClientFactory
from ppcmk.services.hsm_rbac import HSM_CRYPTO_SERVICE_ENCRYPTION_USER, hsm_role_definition_id
from ppcmk.services.key_vault import read_vault
from ppcmk_tasks import access, policy
from tests.support.arm import managed_hsm_id
from tests.support.runs import run_in_flow
from tests.support.sandbox import target

LOCAL_ASSIGNMENT = r"/keys/cmk-hsm/providers/Microsoft\.Authorization/roleAssignments/[0-9a-f-]+$"


def hsm_target(cloud: Any, policy_name: str = "ep-hsm") -> TargetSettings:
    return target(cloud, key="cmk-hsm", policy=policy_name, vault_id=managed_hsm_id(cloud))


def policy_on_hsm(cloud: Any, conn: ConnectionSettings) -> tuple[TargetSettings, str]:
    tgt = hsm_target(cloud)
    policy.ensure_provider_registered.fn(conn)
    policy.create_or_get_policy.fn(conn, tgt)
    return tgt, str(policy.wait_for_policy_identity.fn(conn, tgt).principal_id)


def local_assignments_of(cloud: Any, principal: str) -> list[Any]:
    hsm = cloud.world.keyvault.get("hsm-cmk")
    return [a for a in hsm.role_assignments.values() if a.principal_id == principal]


def test_grant_twice_writes_one_key_scoped_local_assignment(cloud: Any, conn: ConnectionSettings) -> None:
    tgt, principal = policy_on_hsm(cloud, conn)
    first = access.grant_key_access.fn(conn, tgt, principal)
    second = access.grant_key_access.fn(conn, tgt, principal)
    assert first.changed and not second.changed
    assert first.mechanism == second.mechanism == "hsm_rbac" and first.scope == "/keys/cmk-hsm"
    definition = hsm_role_definition_id(HSM_CRYPTO_SERVICE_ENCRYPTION_USER)
    assert first.role_definition_id == definition
    assert str(first.assignment_id).endswith(
        role_assignment_name(f"{tgt.vault_id}/keys/cmk-hsm", principal, definition)
    )
    assert cloud.log.count(method="PUT", path=LOCAL_ASSIGNMENT) == 1
    assert cloud.log.count(method="PUT", path=r"/subscriptions/.*/roleAssignments/") == 0  # nothing in ARM
    (held,) = local_assignments_of(cloud, principal)
    assert held.scope == "/keys/cmk-hsm"


def test_a_throttled_grant_is_retried_and_written_once(
    cloud: Any, conn: ConnectionSettings, prefect_backend: None
) -> None:
    tgt, principal = policy_on_hsm(cloud, conn)
    cloud.faults.add(method="PUT", path=LOCAL_ASSIGNMENT, status=429, times=1, retry_after="1")
    grant = run_in_flow(access.grant_key_access, conn, tgt, principal)
    assert grant.changed
    assert cloud.log.count(method="PUT", path=LOCAL_ASSIGNMENT, status=429) == 1
    assert cloud.log.count(method="PUT", path=LOCAL_ASSIGNMENT, status=201) == 1
    assert len(local_assignments_of(cloud, principal)) == 1


def test_a_refused_grant_is_a_service_error_and_not_retried(
    cloud: Any, conn: ConnectionSettings, prefect_backend: None
) -> None:
    tgt, principal = policy_on_hsm(cloud, conn)
    runbook = cloud.world.identities.require("runbook").object_id
    with cloud.world.lock:  # the runbook keeps its ARM roles but loses every local role on the HSM
        hsm = cloud.world.keyvault.get("hsm-cmk")
        hsm.role_assignments = {k: a for k, a in hsm.role_assignments.items() if a.principal_id != runbook}
    with pytest.raises(ServiceError) as refused:
        run_in_flow(access.grant_key_access, conn, tgt, principal)
    assert refused.value.status == 403
    assert cloud.log.count(method="GET", path=r"/roleAssignments$", status=403) == 1  # not retried
    assert cloud.log.count(method="PUT", path=LOCAL_ASSIGNMENT) == 0


def test_propagation_sees_the_local_grant_and_the_policy_healthy(
    cloud: Any, conn: ConnectionSettings
) -> None:
    tgt, principal = policy_on_hsm(cloud, conn)
    assert policy.get_policy.fn(conn, tgt).health_status == "Unhealthy"  # type: ignore[union-attr]
    access.grant_key_access.fn(conn, tgt, principal)
    before = cloud.clock.now()
    result = access.wait_for_propagation.fn(conn, tgt, principal)
    assert result.visible and result.probe_ok is True
    # local assignments live in the HSM itself: no ARM replication delay to wait out
    assert result.checks == 1 and cloud.clock.now() == before


def test_revoke_then_restore_round_trip(cloud: Any, conn: ConnectionSettings) -> None:
    tgt, principal = policy_on_hsm(cloud, conn)
    granted = access.grant_key_access.fn(conn, tgt, principal)
    revoked = access.revoke_key_access.fn(conn, tgt, principal)
    assert [(g.mechanism, g.scope, g.assignment_id) for g in revoked.removed] == [
        ("hsm_rbac", "/keys/cmk-hsm", granted.assignment_id)
    ]
    assert local_assignments_of(cloud, principal) == []
    assert policy.get_policy.fn(conn, tgt).health_status == "Unhealthy"  # type: ignore[union-attr]
    assert access.revoke_key_access.fn(conn, tgt, principal).removed == []

    restored = access.restore_key_access.fn(conn, revoked)
    assert [(g.assignment_id, g.changed) for g in restored] == [(granted.assignment_id, True)]
    assert access.restore_key_access.fn(conn, revoked)[0].changed is False
    assert policy.get_policy.fn(conn, tgt).health_status == "Healthy"  # type: ignore[union-attr]
    factory = ClientFactory.for_settings(conn)
    vault = read_vault(factory, tgt.vault_id)
    assert len(role_grants.read_key_grants(factory, vault, principal, "cmk-hsm")) == 1
    assert role_grants.read_key_grants(factory, vault, principal, "another-key") == []
