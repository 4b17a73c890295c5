"""Key Vault tasks against the sandbox: idempotency, retries on throttling only, refusal of bad input."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from ppcmk.cloud.settings import ConnectionSettings
from ppcmk.errors import ConfigError, ServiceError
from ppcmk_tasks import keyvault, rotation
from tests.support.runs import run_in_flow
from tests.support.sandbox import target

CREATE = r"/keys/cmk-test/create$"


def test_verify_vault_reads_protection_permissions_and_network(cloud: Any, conn: ConnectionSettings) -> None:
    compliant = keyvault.verify_vault.fn(conn, target(cloud))
    assert (compliant.soft_delete, compliant.purge_protection, compliant.permission_model) == (
        True,
        True,
        "rbac",
    )
    private = keyvault.verify_vault.fn(
        conn, target(cloud, vault="kv-private", key_type="RSA-HSM", key_size=2048)
    )
    assert private.network_restricted and not private.trusted_services_bypass
    nopurge = keyvault.verify_vault.fn(conn, target(cloud, vault="kv-nopurge", key_size=2048))
    assert not nopurge.purge_protection and nopurge.permission_model == "access_policy"


def test_create_or_adopt_key_creates_once(cloud: Any, conn: ConnectionSettings) -> None:
    first = keyvault.create_or_adopt_key.fn(conn, target(cloud))
    second = keyvault.create_or_adopt_key.fn(conn, target(cloud))
    assert first.created and not second.created
    assert (first.kty, first.size) == ("RSA", 3072) and {"wrapKey", "unwrapKey"} <= set(first.key_ops)
    assert second.kid == first.kid
    assert cloud.log.count(method="POST", path=CREATE, status=200) == 1


def test_existing_key_of_the_wrong_type_or_size_is_refused(cloud: Any, conn: ConnectionSettings) -> None:
    with pytest.raises(ConfigError, match=r"key_name.*EC"):
        keyvault.create_or_adopt_key.fn(
            conn, target(cloud, vault="kv-nopurge", key="legacy-ec", key_size=2048)
        )
    with pytest.raises(ConfigError, match=r"key_size.*3072 bits, not 2048"):
        keyvault.create_or_adopt_key.fn(conn, target(cloud, key="cmk-prod", key_size=2048))
    assert cloud.log.count(method="POST", path=r"/create$") == 0


def test_two_throttled_creates_then_success_make_one_key(
    cloud: Any, conn: ConnectionSettings, prefect_backend: None
) -> None:
    # 429 without Retry-After on a POST: the SDK does not retry it, the task-level retry does.
    cloud.faults.add(method="POST", path=CREATE, status=429, times=2)
    key = run_in_flow(keyvault.create_or_adopt_key, conn, target(cloud))
    assert key.created
    assert cloud.log.count(method="POST", path=CREATE, status=429) == 2
    assert cloud.log.count(method="POST", path=CREATE, status=200) == 1
    assert len(rotation.list_key_versions.fn(conn, target(cloud)).versions) == 1


def test_a_rejected_request_is_not_retried(
    cloud: Any, conn: ConnectionSettings, prefect_backend: None
) -> None:
    cloud.faults.add(method="POST", path=CREATE, status=400, times=1, code="BadParameter")
    with pytest.raises(ServiceError, match="HTTP 400 BadParameter"):
        run_in_flow(keyvault.create_or_adopt_key, conn, target(cloud))
    assert cloud.log.count(method="POST", path=CREATE) == 1


def test_rotation_policy_is_validated_then_written_only_on_change(
    cloud: Any, conn: ConnectionSettings
) -> None:
    tgt = target(cloud, key="cmk-prod")
    with pytest.raises(ConfigError, match=r"expire_after_days.*at least 118"):
        rotation.set_rotation_policy.fn(conn, tgt, rotate_after_days=90, expire_after_days=100)
    assert cloud.log.count(method="PUT", path="rotationpolicy") == 0
    first = rotation.set_rotation_policy.fn(conn, tgt, rotate_after_days=90, expire_after_days=365)
    second = rotation.set_rotation_policy.fn(conn, tgt, rotate_after_days=90, expire_after_days=365)
    assert first.changed and not second.changed
    assert first.rotate_after_create == timedelta(days=90) and first.expires_after == timedelta(days=365)
    assert cloud.log.count(method="PUT", path="rotationpolicy") == 1


def test_rotate_now_is_idempotent_for_one_change(cloud: Any, conn: ConnectionSettings) -> None:
    tgt = target(cloud, key="cmk-prod")
    cloud.clock.advance(timedelta(days=1))
    since = cloud.clock.now()
    rotated = rotation.rotate_key_now.fn(conn, tgt, since=since)
    again = rotation.rotate_key_now.fn(conn, tgt, since=since)
    assert rotated.created and not again.created and again.version == rotated.version
    history = rotation.list_key_versions.fn(conn, tgt)
    assert [v.current for v in history.versions] == [True, False]
    assert history.versions[1].age_days == pytest.approx(31.0)
    assert cloud.log.count(method="POST", path=r"/rotate$", status=200) == 1


def test_new_version_refuses_a_short_expiry(cloud: Any, conn: ConnectionSettings) -> None:
    tgt = target(cloud, key="cmk-prod")
    with pytest.raises(ConfigError, match="expires_on"):
        rotation.new_key_version.fn(conn, tgt, expires_on=cloud.clock.now() + timedelta(days=10))
    created = rotation.new_key_version.fn(conn, tgt, expires_on=cloud.clock.now() + timedelta(days=400))
    assert created.created and created.expires_on is not None
    assert keyvault.get_key_info.fn(conn, tgt).version == created.version
