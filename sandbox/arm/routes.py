"""Every ARM route for resource providers, features, resource groups and enterprise policies."""

from __future__ import annotations

from ppcmk_sandbox.arm import policies, providers
from ppcmk_sandbox.arm.common import RESOURCE_GROUP, SUBSCRIPTION, arm_route

_PROVIDER = SUBSCRIPTION + r"/providers/(?P<namespace>[^/]+)"
_FEATURE = (
    SUBSCRIPTION
    + r"/providers/Microsoft\.Features/providers/(?P<namespace>[^/]+)/features/(?P<feature>[^/]+)"
)
_POLICIES_IN_GROUP = RESOURCE_GROUP + r"/providers/Microsoft\.PowerPlatform/enterprisePolicies"
_POLICY = _POLICIES_IN_GROUP + r"/(?P<name>[^/]+)"

ROUTES = [
    arm_route("GET", SUBSCRIPTION + r"/providers", providers.list_providers),
    arm_route("GET", _FEATURE, providers.get_feature),
    arm_route("POST", _FEATURE + r"/register", providers.register_feature, mutating=True),
    arm_route(
        "GET",
        SUBSCRIPTION + r"/providers/Microsoft\.PowerPlatform/enterprisePolicies",
        policies.list_policies,
    ),
    arm_route("GET", _PROVIDER, providers.get_provider, mutating=True),  # a poll moves Registering on
    arm_route("POST", _PROVIDER + r"/register", providers.register_provider, mutating=True),
    arm_route("GET", RESOURCE_GROUP, providers.get_resource_group),
    arm_route("PUT", RESOURCE_GROUP, providers.put_resource_group, mutating=True),
    arm_route("GET", _POLICIES_IN_GROUP, policies.list_policies),
    arm_route("PUT", _POLICY, policies.put_policy, mutating=True),
    arm_route("GET", _POLICY, policies.get_policy),
    arm_route("PATCH", _POLICY, policies.patch_policy, mutating=True),
    arm_route("DELETE", _POLICY, policies.delete_policy, mutating=True),
]
