"""ARM resources the sandbox owns: resource providers, preview features, resource groups, enterprise policies.

(Key vaults and managed HSMs live in `sandbox.keyvault`, role assignments in `sandbox.rbac`.)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ppcmk_sandbox.clock import parse_instant
from ppcmk_sandbox.rbac.state import scenario_assignment
from ppcmk_sandbox.resource_ids import resource_id
from ppcmk_sandbox.saved import saved_fields

if TYPE_CHECKING:
    from ppcmk_sandbox.world import World

POWER_PLATFORM_NAMESPACE = "Microsoft.PowerPlatform"
POLICY_TYPE = "Microsoft.PowerPlatform/enterprisePolicies"


@dataclass
class ProviderRegistration:
    """`polls_left`: GETs still answered with Registering after a register call (then Registered)."""

    namespace: str
    state: str = "NotRegistered"
    polls_left: int = 0

    def observe(self) -> str:
        """The state a GET reports; each GET while Registering brings registration one poll closer."""
        if self.state == "Registering":
            if self.polls_left <= 0:
                self.state = "Registered"
            else:
                self.polls_left -= 1
        return self.state


@dataclass
class ResourceGroup:
    name: str
    location: str
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class EnterprisePolicy:
    """A `Microsoft.PowerPlatform/enterprisePolicies` resource of kind Encryption.

    The identity exists from creation (the sandbox needs it to grant roles in scenarios), but ARM shows
    `principalId` and `systemId` only once `identity_ready_at` has passed on the virtual clock.
    """

    name: str
    resource_group: str
    subscription: str
    location: str
    kind: str
    principal_id: str
    tenant_id: str
    system_guid: str
    key_vault_id: str
    key_name: str
    key_version: str | None
    encryption_state: str
    created_at: datetime
    identity_ready_at: datetime
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def arm_id(self) -> str:
        return resource_id(self.subscription, self.resource_group, POLICY_TYPE, self.name)

    @property
    def system_id(self) -> str:
        return f"/regions/{self.location}/providers/{POLICY_TYPE}/{self.system_guid}"

    def identity_ready(self, now: datetime) -> bool:
        return now >= self.identity_ready_at

    def to_dict(self) -> dict[str, Any]:
        # the subscription is the world's: saved state does not repeat it per policy
        return saved_fields(self, camel=True, leave_out={"subscription"})


class ArmState:
    def __init__(self, world: World) -> None:
        self._world = world
        self.providers: dict[str, ProviderRegistration] = {}
        self.features: dict[str, str] = {}  # "namespace/feature" (lower) -> state
        self.resource_groups: dict[str, ResourceGroup] = {}
        self.policies: dict[str, EnterprisePolicy] = {}  # lower-cased ARM id -> policy
        # How many provider GETs a register call stays in Registering for (0: Registered on the first poll,
        # which is what the SDK's auto-registration wants: it sleeps 10 s between polls).
        self.registration_polls = 0

    @classmethod
    def load(cls, section: dict[str, Any], world: World) -> ArmState:
        state = cls(world)
        state.registration_polls = int(section.get("registrationPolls", 0))
        for namespace, info in section.get("providers", {}).items():
            state.providers[namespace.lower()] = ProviderRegistration(
                namespace, info.get("registrationState", "NotRegistered"), int(info.get("pollsLeft", 0))
            )
        state.features = {k.lower(): v for k, v in section.get("features", {}).items()}
        for group in section.get("resourceGroups", []):
            state.resource_groups[group["name"].lower()] = ResourceGroup(
                group["name"], group["location"], dict(group.get("tags", {}))
            )
        for entry in section.get("enterprisePolicies", []):
            policy = state._policy_from_entry(entry)
            state.add_policy(policy)
            for grant in entry.get("grants", []):  # roles given to the policy identity (it exists only now)
                if world.rbac is not None:
                    world.rbac.add(scenario_assignment(grant, world, principal_id=policy.principal_id))
        return state

    def to_dict(self) -> dict[str, Any]:
        return {
            "registrationPolls": self.registration_polls,
            "providers": {
                p.namespace: {"registrationState": p.state, "pollsLeft": p.polls_left}
                for p in self.providers.values()
            },
            "features": dict(self.features),
            "resourceGroups": [
                {"name": g.name, "location": g.location, "tags": g.tags}
                for g in self.resource_groups.values()
            ],
            "enterprisePolicies": [p.to_dict() for p in self.policies.values()],
        }

    def _policy_from_entry(self, entry: dict[str, Any]) -> EnterprisePolicy:
        """A policy from saved state, or from a scenario entry (then the identity is created now and ids may
        say `{subscriptionId}`)."""
        world = self._world
        settled = world.settings.start_time - timedelta(days=1)
        principal_id = (
            entry.get("principalId") or world.identities.add_service_principal(entry["name"]).object_id
        )
        vault_id = entry["keyVaultId"].replace("{subscriptionId}", world.settings.subscription_id)
        return EnterprisePolicy(
            name=entry["name"],
            resource_group=entry["resourceGroup"],
            subscription=world.settings.subscription_id,
            location=entry["location"],
            kind=entry.get("kind", "Encryption"),
            principal_id=principal_id,
            tenant_id=entry.get("tenantId", world.settings.tenant_id),
            system_guid=entry.get("systemGuid") or str(uuid.uuid4()),
            key_vault_id=vault_id,
            key_name=entry["keyName"],
            key_version=entry.get("keyVersion"),
            encryption_state=entry.get("encryptionState", "Enabled"),
            created_at=parse_instant(entry["createdAt"]) if "createdAt" in entry else settled,
            identity_ready_at=parse_instant(entry["identityReadyAt"])
            if "identityReadyAt" in entry
            else settled,
            tags=dict(entry.get("tags", {})),
        )

    # --- providers and features -------------------------------------------------------------------------

    def provider(self, namespace: str) -> ProviderRegistration:
        return self.providers.setdefault(namespace.lower(), ProviderRegistration(namespace))

    def is_registered(self, namespace: str) -> bool:
        return self.provider(namespace).state == "Registered"

    # --- enterprise policies ----------------------------------------------------------------------------

    def add_policy(self, policy: EnterprisePolicy) -> None:
        self.policies[policy.arm_id.lower()] = policy

    def get_policy(self, arm_id: str) -> EnterprisePolicy | None:
        return self.policies.get(arm_id.rstrip("/").lower())

    def find_policy_by_name(self, name: str) -> EnterprisePolicy | None:
        return next((p for p in self.policies.values() if p.name.lower() == name.lower()), None)

    def find_policy_by_system_id(self, system_id: str, now: datetime) -> EnterprisePolicy | None:
        """Only policies whose systemId has been published can be found by it."""
        wanted = system_id.strip().rstrip("/").lower()
        return next(
            (p for p in self.policies.values() if p.identity_ready(now) and p.system_id.lower() == wanted),
            None,
        )

    def remove_policy(self, policy: EnterprisePolicy) -> None:
        self.policies.pop(policy.arm_id.lower(), None)
