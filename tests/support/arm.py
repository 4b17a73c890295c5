"""ARM ids of the default scenario's resources in a running sandbox (its subscription id is per session)."""

from __future__ import annotations

from typing import Any

from ppcmk.models import arm_ids
from tests.support.scenario import HSM, LINKED_POLICY, LINKED_POLICY_GRANT, RESOURCE_GROUP, VAULT


def subscription(cloud: Any) -> str:
    return str(cloud.endpoints.subscription_id)


def vault_id(cloud: Any, name: str = VAULT, resource_group: str = RESOURCE_GROUP) -> str:
    return arm_ids.vault_id(subscription(cloud), resource_group, name)


def managed_hsm_id(cloud: Any, name: str = HSM, resource_group: str = RESOURCE_GROUP) -> str:
    return str(arm_ids.ResourceId(subscription(cloud), resource_group, *arm_ids.MANAGED_HSM_TYPE, name))


def linked_policy_grant_id(cloud: Any) -> str:
    """The role assignment giving LINKED_POLICY's identity its key role on VAULT."""
    return f"{vault_id(cloud)}/providers/Microsoft.Authorization/roleAssignments/{LINKED_POLICY_GRANT}"


def policy_id(cloud: Any, name: str = LINKED_POLICY, resource_group: str = RESOURCE_GROUP) -> str:
    return arm_ids.policy_id(subscription(cloud), resource_group, name)
