"""ARM handlers for `Microsoft.PowerPlatform/enterprisePolicies` (P1-P5): create/update, get, patch, delete,
list.

Synchronous like the real resource (no LRO). The request body is checked the way the service does (400
InputValidationError), and a policy in use by an environment can be neither deleted nor pointed at another
key.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

from ppcmk_sandbox.access import policy_key_access
from ppcmk_sandbox.arm.common import iso, not_found
from ppcmk_sandbox.arm.geos import POLICY_LOCATIONS, is_policy_location
from ppcmk_sandbox.arm.providers import arm_state, require_resource_group, subscription_scope
from ppcmk_sandbox.arm.state import POLICY_TYPE, POWER_PLATFORM_NAMESPACE, EnterprisePolicy
from ppcmk_sandbox.http import SandboxHttpError, SandboxRequest, SandboxResponse, arm_error
from ppcmk_sandbox.rbac.authorize import authorize

_VAULT_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.KeyVault/(vaults|managedHSMs)/[^/]+$",
    re.IGNORECASE,
)
NAMESPACE = "Quartz.EnterprisePolicy"
# Placeholder: the service refuses a key change on a linked policy but its error code is not published.
UPDATE_NOT_ALLOWED = "EnterprisePolicyUpdateNotAllowed"


def _invalid(message: str) -> SandboxHttpError:
    return SandboxHttpError(arm_error(400, "InputValidationError", message, namespace=NAMESPACE))


def _require_registered(req: SandboxRequest) -> None:
    if not arm_state(req).is_registered(POWER_PLATFORM_NAMESPACE):
        raise SandboxHttpError(
            arm_error(
                409,
                "MissingSubscriptionRegistration",
                f"The subscription is not registered to use namespace '{POWER_PLATFORM_NAMESPACE}'. See "
                "https://aka.ms/rps-not-found for how to register subscriptions.",
            )
        )


def policy_json(req: SandboxRequest, policy: EnterprisePolicy) -> dict[str, Any]:
    now = req.world.clock.now()
    identity: dict[str, Any] = {"type": "SystemAssigned"}
    properties: dict[str, Any] = {
        "encryption": {
            "state": policy.encryption_state,
            "keyVault": {
                "id": policy.key_vault_id,
                "key": {"name": policy.key_name, "version": policy.key_version},
            },
        },
        "networkInjection": None,
        "healthStatus": "Undetermined",
    }
    if policy.identity_ready(now):
        identity.update(principalId=policy.principal_id, tenantId=policy.tenant_id)
        properties["systemId"] = policy.system_id
        properties["healthStatus"] = "Healthy" if policy_key_access(req.world, policy).ok else "Unhealthy"
    return {
        "id": policy.arm_id,
        "name": policy.name,
        "type": POLICY_TYPE,
        "location": policy.location,
        "kind": policy.kind,
        "tags": policy.tags,
        "identity": identity,
        "properties": properties,
        "systemData": {"createdAt": iso(policy.created_at), "createdByType": "User"},
    }


def _scope(req: SandboxRequest, match: re.Match[str]) -> str:
    """The policy's ARM id as addressed by the request."""
    group = f"{subscription_scope(req)}/resourceGroups/{match['resource_group']}"
    return f"{group}/providers/{POLICY_TYPE}/{match['name']}"


def _find(req: SandboxRequest, match: re.Match[str]) -> EnterprisePolicy | None:
    return arm_state(req).get_policy(_scope(req, match))


def _environments_using(req: SandboxRequest, policy: EnterprisePolicy) -> list[str]:
    pp = req.world.powerplatform
    return [] if pp is None else pp.environments_using(policy)


def _key_reference(body: dict[str, Any]) -> tuple[str, str, str | None, str]:
    """(vault id, key name, key version, encryption state) from a PUT body, or 400 InputValidationError."""
    properties = body.get("properties")
    encryption = properties.get("encryption") if isinstance(properties, dict) else None
    key_vault = encryption.get("keyVault") if isinstance(encryption, dict) else None
    if not isinstance(key_vault, dict):
        raise _invalid("properties.encryption.keyVault is required for an Encryption policy.")
    vault_id = key_vault.get("id")
    if not isinstance(vault_id, str) or not _VAULT_ID.match(vault_id):
        raise _invalid(
            f"properties.encryption.keyVault.id {vault_id!r} is not an ARM id of a key vault "
            "(/subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.KeyVault/vaults/<name>)."
        )
    key = key_vault.get("key")
    if not isinstance(key, dict) or not isinstance(key.get("name"), str) or not key["name"]:
        raise _invalid("properties.encryption.keyVault.key.name is required.")
    version = key.get("version") or None
    return vault_id, key["name"], version, str(encryption.get("state") or "Enabled")  # type: ignore[union-attr]


def _validate_shape(body: dict[str, Any]) -> str:
    """The location of a well-formed Encryption policy body, or 400 InputValidationError."""
    if body.get("kind") != "Encryption":
        raise _invalid(
            f"kind must be 'Encryption' (got {body.get('kind')!r}); the sandbox emulates CMK policies only."
        )
    identity = body.get("identity")
    if not isinstance(identity, dict) or identity.get("type") != "SystemAssigned":
        raise _invalid("identity.type must be 'SystemAssigned' for an Encryption policy.")
    location = body.get("location")
    if not isinstance(location, str) or not is_policy_location(location):
        raise _invalid(
            f"location {location!r} is not a supported enterprise policy location; use one of: "
            f"{', '.join(POLICY_LOCATIONS)}."
        )
    return location.lower()


def put_policy(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    _require_registered(req)
    authorize(req, _scope(req, match), "write", f"{POLICY_TYPE}/write")
    require_resource_group(req, match["resource_group"])
    body = req.json()
    if not isinstance(body, dict) or not body:
        raise _invalid("Failed to create or update the enterprise policy, request body is null.")
    location = _validate_shape(body)
    vault_id, key_name, key_version, state = _key_reference(body)
    tags = dict(body.get("tags") or {})
    existing = _find(req, match)
    if existing is not None:
        _check_update(req, existing, location, vault_id, key_name, key_version)
        existing.key_vault_id, existing.key_name, existing.key_version = vault_id, key_name, key_version
        existing.encryption_state, existing.tags = state, tags
        return SandboxResponse(200, policy_json(req, existing))
    world = req.world
    now = world.clock.now()
    policy = EnterprisePolicy(
        name=match["name"],
        resource_group=arm_state(req).resource_groups[match["resource_group"].lower()].name,
        subscription=world.settings.subscription_id,
        location=location,
        kind="Encryption",
        principal_id=world.identities.add_service_principal(match["name"]).object_id,
        tenant_id=world.settings.tenant_id,
        system_guid=str(uuid.uuid4()),
        key_vault_id=vault_id,
        key_name=key_name,
        key_version=key_version,
        encryption_state=state,
        created_at=now,
        identity_ready_at=now + timedelta(seconds=world.settings.policy_identity_delay_seconds),
        tags=tags,
    )
    arm_state(req).add_policy(policy)
    return SandboxResponse(201, policy_json(req, policy))


def _check_update(
    req: SandboxRequest,
    policy: EnterprisePolicy,
    location: str,
    vault_id: str,
    key_name: str,
    key_version: str | None,
) -> None:
    if location != policy.location.lower():
        raise SandboxHttpError(
            arm_error(
                400,
                "InvalidResourceLocation",
                f"The resource '{policy.name}' already exists in location '{policy.location}'. A resource "
                "with the same name cannot be created in another location.",
            )
        )
    changes_key = (
        vault_id.lower() != policy.key_vault_id.lower()
        or key_name.lower() != policy.key_name.lower()
        or (key_version or "").lower() != (policy.key_version or "").lower()
    )
    linked = _environments_using(req, policy)
    if changes_key and linked:
        raise SandboxHttpError(
            arm_error(
                400,
                UPDATE_NOT_ALLOWED,
                f"Enterprise Policy {policy.name} cannot change its key vault or key while it is linked with "
                f"{len(linked)} environment(s): {', '.join(linked)}. Remove the environments first.",
                namespace=NAMESPACE,
            )
        )


def get_policy(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    authorize(req, _scope(req, match), "read", f"{POLICY_TYPE}/read")
    policy = _find(req, match)
    if policy is None:
        raise not_found(POLICY_TYPE, match["name"], match["resource_group"])
    return SandboxResponse(200, policy_json(req, policy))


def patch_policy(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    """Tags, and the key reference (same rules as PUT) when the patch carries properties.encryption."""
    _require_registered(req)
    authorize(req, _scope(req, match), "write", f"{POLICY_TYPE}/write")
    policy = _find(req, match)
    if policy is None:
        raise not_found(POLICY_TYPE, match["name"], match["resource_group"])
    body = req.json_object(lambda m: arm_error(400, "InputValidationError", m, namespace=NAMESPACE))
    properties = body.get("properties")
    if isinstance(properties, dict) and "encryption" in properties:
        vault_id, key_name, key_version, state = _key_reference(body)
        _check_update(req, policy, policy.location.lower(), vault_id, key_name, key_version)
        policy.key_vault_id, policy.key_name, policy.key_version = vault_id, key_name, key_version
        policy.encryption_state = state
    if isinstance(body.get("tags"), dict):
        policy.tags = dict(body["tags"])
    return SandboxResponse(200, policy_json(req, policy))


def delete_policy(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    _require_registered(req)
    authorize(req, _scope(req, match), "write", f"{POLICY_TYPE}/delete")
    require_resource_group(req, match["resource_group"])
    policy = _find(req, match)
    if policy is None:
        return SandboxResponse(204)
    linked = _environments_using(req, policy)
    if linked:
        raise SandboxHttpError(
            arm_error(
                400,
                "EnterprisePolicyDeleteNotAllowed",
                f"Enterprise Policy Deletion not allowed for Enterprise Policy with name {policy.name} as it "
                f"is linked with {len(linked)} environment(s): {', '.join(linked)}.",
                namespace=NAMESPACE,
            )
        )
    arm_state(req).remove_policy(policy)
    if req.world.rbac is not None:
        req.world.rbac.remove_under(policy.arm_id)
    return SandboxResponse(200)


def list_policies(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    group = match.groupdict().get("resource_group")
    scope = subscription_scope(req) + (f"/resourceGroups/{group}" if group else "")
    authorize(req, scope, "read", f"{POLICY_TYPE}/read")
    if group:
        require_resource_group(req, group)
    policies = [
        policy_json(req, p)
        for p in arm_state(req).policies.values()
        if group is None or p.resource_group.lower() == group.lower()
    ]
    return SandboxResponse(200, {"value": policies, "nextLink": None})
