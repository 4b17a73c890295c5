"""ARM handlers for subscription set-up: resource providers, preview features and resource groups."""

from __future__ import annotations

import re
from typing import Any

from ppcmk_sandbox.arm.geos import POLICY_API_VERSIONS, POLICY_LOCATIONS
from ppcmk_sandbox.arm.state import POWER_PLATFORM_NAMESPACE, ArmState, ProviderRegistration, ResourceGroup
from ppcmk_sandbox.http import SandboxHttpError, SandboxRequest, SandboxResponse, arm_error
from ppcmk_sandbox.rbac.authorize import authorize

# What the provider GET lists under resourceTypes (A1: the source of truth for policy locations).
_RESOURCE_TYPES: dict[str, list[dict[str, Any]]] = {
    POWER_PLATFORM_NAMESPACE.lower(): [
        {
            "resourceType": "enterprisePolicies",
            "locations": list(POLICY_LOCATIONS),
            "apiVersions": list(POLICY_API_VERSIONS),
            "capabilities": "SystemAssignedResourceIdentity",
        },
        {"resourceType": "operations", "locations": [], "apiVersions": list(POLICY_API_VERSIONS)},
    ],
}


def arm_state(req: SandboxRequest) -> ArmState:
    if req.world.arm is None:
        raise SandboxHttpError(arm_error(500, "InternalServerError", "ARM state is not loaded"))
    return req.world.arm


def subscription_scope(req: SandboxRequest) -> str:
    return f"/subscriptions/{req.world.settings.subscription_id}"


def _provider_json(req: SandboxRequest, provider: ProviderRegistration, state: str) -> dict[str, Any]:
    return {
        "id": f"{subscription_scope(req)}/providers/{provider.namespace}",
        "namespace": provider.namespace,
        "registrationState": state,
        "registrationPolicy": "RegistrationRequired",
        "resourceTypes": _RESOURCE_TYPES.get(provider.namespace.lower(), []),
    }


def get_provider(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    authorize(req, subscription_scope(req), "read", "Microsoft.Resources/subscriptions/providers/read")
    provider = arm_state(req).provider(match["namespace"])
    return SandboxResponse(200, _provider_json(req, provider, provider.observe()))


def list_providers(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    authorize(req, subscription_scope(req), "read", "Microsoft.Resources/subscriptions/providers/read")
    providers = arm_state(req).providers.values()
    return SandboxResponse(200, {"value": [_provider_json(req, p, p.observe()) for p in providers]})


def register_provider(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    authorize(req, subscription_scope(req), "write", f"{match['namespace']}/register/action")
    state = arm_state(req)
    provider = state.provider(match["namespace"])
    if provider.state != "Registered":
        provider.state = "Registering"
        provider.polls_left = state.registration_polls
        if state.registration_polls == 0:
            provider.state = "Registered"
    return SandboxResponse(200, _provider_json(req, provider, provider.state))


def _feature_json(req: SandboxRequest, namespace: str, feature: str, state: str) -> dict[str, Any]:
    features = f"{subscription_scope(req)}/providers/Microsoft.Features/providers"
    return {
        "id": f"{features}/{namespace}/features/{feature}",
        "name": f"{namespace}/{feature}",
        "type": "Microsoft.Features/providers/features",
        "properties": {"state": state},
    }


def get_feature(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    authorize(req, subscription_scope(req), "read", "Microsoft.Features/providers/features/read")
    key = f"{match['namespace']}/{match['feature']}".lower()
    state = arm_state(req).features.get(key, "NotRegistered")
    return SandboxResponse(200, _feature_json(req, match["namespace"], match["feature"], state))


def register_feature(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    """Features register at once: nothing in the CMK procedures waits on them (they are preview leftovers)."""
    authorize(req, subscription_scope(req), "write", "Microsoft.Features/providers/features/register/action")
    key = f"{match['namespace']}/{match['feature']}".lower()
    arm_state(req).features[key] = "Registered"
    return SandboxResponse(200, _feature_json(req, match["namespace"], match["feature"], "Registered"))


def _group_json(req: SandboxRequest, name: str, location: str, tags: dict[str, str]) -> dict[str, Any]:
    return {
        "id": f"{subscription_scope(req)}/resourceGroups/{name}",
        "name": name,
        "type": "Microsoft.Resources/resourceGroups",
        "location": location,
        "tags": tags,
        "properties": {"provisioningState": "Succeeded"},
    }


def get_resource_group(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    scope = f"{subscription_scope(req)}/resourceGroups/{match['resource_group']}"
    authorize(req, scope, "read", "Microsoft.Resources/subscriptions/resourceGroups/read")
    group = arm_state(req).resource_groups.get(match["resource_group"].lower())
    if group is None:
        raise group_not_found(match["resource_group"])
    return SandboxResponse(200, _group_json(req, group.name, group.location, group.tags))


def put_resource_group(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    scope = f"{subscription_scope(req)}/resourceGroups/{match['resource_group']}"
    authorize(req, scope, "write", "Microsoft.Resources/subscriptions/resourceGroups/write")
    body = req.json_object(lambda m: arm_error(400, "InvalidRequestContent", m))
    location = body.get("location")
    if not isinstance(location, str) or not location:
        raise SandboxHttpError(
            arm_error(400, "LocationRequired", "The location property is required for this definition.")
        )
    groups = arm_state(req).resource_groups
    existing = groups.get(match["resource_group"].lower())
    if existing is not None and existing.location.lower() != location.lower():
        raise SandboxHttpError(
            arm_error(
                409,
                "InvalidResourceGroupLocation",
                f"Invalid resource group location '{location}'. The Resource group already exists in "
                f"location '{existing.location}'.",
            )
        )
    name = existing.name if existing else match["resource_group"]
    groups[name.lower()] = ResourceGroup(name, location, dict(body.get("tags") or {}))
    return SandboxResponse(
        200 if existing else 201, _group_json(req, name, location, dict(body.get("tags") or {}))
    )


def group_not_found(name: str) -> SandboxHttpError:
    return SandboxHttpError(
        arm_error(404, "ResourceGroupNotFound", f"Resource group '{name}' could not be found.")
    )


def require_resource_group(req: SandboxRequest, name: str) -> None:
    if name.lower() not in arm_state(req).resource_groups:
        raise group_not_found(name)
