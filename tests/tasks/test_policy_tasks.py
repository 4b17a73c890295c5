"""Resource provider and enterprise policy tasks against the sandbox."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from ppcmk.cloud.settings import ConnectionSettings
from ppcmk.errors import ConfigError, TransientError
from ppcmk_tasks import policy
from tests.support.runs import run_in_flow
from tests.support.sandbox import target
from tests.support.scenario import FINANCE

REGISTER = r"/providers/Microsoft\.PowerPlatform/register$"
POLICY_PUT = r"/enterprisePolicies/ep-test$"


def test_provider_registration_polls_until_registered_and_is_idempotent(
    cloud: Any, conn: ConnectionSettings
) -> None:
    first = policy.ensure_provider_registered.fn(conn)
    second = policy.ensure_provider_registered.fn(conn)
    assert first.registered and first.registered_now
    assert second.registered and not second.registered_now
    assert "europe" in [loc.lower().replace(" ", "") for loc in first.policy_locations]
    assert cloud.log.count(method="POST", path=REGISTER) == 1


def test_policy_is_created_versionless_once_and_its_identity_awaited(
    cloud: Any, conn: ConnectionSettings
) -> None:
    policy.ensure_provider_registered.fn(conn)
    created = policy.create_or_get_policy.fn(conn, target(cloud, key="cmk-prod"))
    again = policy.create_or_get_policy.fn(conn, target(cloud, key="cmk-prod"))
    assert created.created and not again.created
    assert created.key_version is None and created.kind == "Encryption" and created.location == "europe"
    assert cloud.log.count(method="PUT", path=POLICY_PUT) == 1
    ready = policy.wait_for_policy_identity.fn(conn, target(cloud, key="cmk-prod"))
    assert ready.principal_id and ready.system_id and ready.system_id.startswith("/regions/europe/")


def test_adopting_a_policy_that_references_another_key_is_refused(
    cloud: Any, conn: ConnectionSettings
) -> None:
    other_key = target(cloud, key="cmk-other", policy="ep-existing")
    with pytest.raises(
        ConfigError, match=r"policy_name: policy 'ep-existing' already references key 'cmk-prod'"
    ):
        policy.create_or_get_policy.fn(conn, other_key)
    with pytest.raises(ConfigError, match=r"^geo:"):
        policy.create_or_get_policy.fn(conn, target(cloud, key="cmk-prod", policy="ep-existing", geo="asia"))
    assert cloud.log.count(method="PUT", path=r"/enterprisePolicies/") == 0


def test_policy_create_retries_throttling_once_only(
    cloud: Any, conn: ConnectionSettings, prefect_backend: None
) -> None:
    policy.ensure_provider_registered.fn(conn)
    cloud.faults.add(method="PUT", path=POLICY_PUT, status=429, times=2)
    created = run_in_flow(policy.create_or_get_policy, conn, target(cloud, key="cmk-prod"))
    assert created.created
    assert cloud.log.count(method="PUT", path=POLICY_PUT, status=429) == 2
    assert cloud.log.count(method="PUT", path=POLICY_PUT, status=201) == 1


def test_delete_refuses_while_linked_and_is_idempotent(cloud: Any, conn: ConnectionSettings) -> None:
    with pytest.raises(ConfigError, match=f"still linked to {FINANCE}"):
        policy.delete_policy.fn(conn, target(cloud, key="cmk-prod", policy="ep-existing"))
    assert cloud.log.count(method="DELETE", path=r"/enterprisePolicies/") == 0
    policy.ensure_provider_registered.fn(conn)
    policy.create_or_get_policy.fn(conn, target(cloud, key="cmk-prod"))
    assert policy.delete_policy.fn(conn, target(cloud, key="cmk-prod")).deleted
    assert not policy.delete_policy.fn(conn, target(cloud, key="cmk-prod")).deleted
    assert policy.get_policy.fn(conn, target(cloud, key="cmk-prod")) is None


def test_an_identity_that_does_not_appear_in_time_is_a_transient_failure(
    cloud: Any, conn: ConnectionSettings
) -> None:
    policy.ensure_provider_registered.fn(conn)
    policy.create_or_get_policy.fn(conn, target(cloud, key="cmk-prod"))
    with pytest.raises(TransientError, match="still lacks principalId, systemId"):
        policy.wait_for_policy_identity.fn(conn, target(cloud, key="cmk-prod"), timeout=timedelta(0))
    with pytest.raises(ConfigError, match=r"^policy_name: policy 'ep-none' does not exist"):
        policy.wait_for_policy_identity.fn(conn, target(cloud, key="cmk-prod", policy="ep-none"))
