"""Enterprise policy tasks: the Microsoft.PowerPlatform resource provider and the Encryption policy itself."""

from __future__ import annotations

from datetime import timedelta

from ppcmk.cloud.settings import ConnectionSettings, TargetSettings
from ppcmk.cloud.transport import service_errors
from ppcmk.errors import ConfigError, TransientError
from ppcmk.models.arm_ids import same_id
from ppcmk.models.azure import PolicyDeletion, PolicyInfo, ProviderStatus, linked_to
from ppcmk.models.geo import same_geo
from ppcmk.safety.retry import cmk_task
from ppcmk.services.factory import ClientFactory
from ppcmk.services.policies import PROVIDER, policy_body, policy_from_arm, read_policy, read_provider

PROVIDER_POLL_SECONDS = 10.0
PROVIDER_TIMEOUT = timedelta(minutes=5)
IDENTITY_POLL_SECONDS = 15.0
IDENTITY_TIMEOUT = timedelta(minutes=15)


def _refuse_different(existing: PolicyInfo, target: TargetSettings, key_version: str | None) -> None:
    """Adopting a policy that points elsewhere would silently re-key environments later: refuse instead."""
    fix = "choose another policy_name, or use the change-policy runbook to move environments to a new policy"
    if existing.kind.lower() != "encryption":
        raise ConfigError(
            "policy_name", f"policy {target.policy_name!r} exists with kind {existing.kind!r}", fix
        )
    if not same_geo(target.geo, existing.location):
        raise ConfigError(
            "geo", f"policy {target.policy_name!r} exists in {existing.location!r}, not {target.geo!r}", fix
        )
    same_key = (
        same_id(existing.key_vault_id, target.vault_id)
        and (existing.key_name or "").lower() == target.key_name.lower()
        and (existing.key_version or "").lower() == (key_version or "").lower()
    )
    if not same_key:
        pinned = f" version {existing.key_version}" if existing.key_version else ""
        raise ConfigError(
            "policy_name",
            f"policy {target.policy_name!r} already references key "
            f"{existing.key_name!r}{pinned} in {existing.key_vault_id}",
            fix,
        )


@cmk_task(task_run_name="ensure-provider-registered")
def ensure_provider_registered(conn: ConnectionSettings) -> ProviderStatus:
    """Register Microsoft.PowerPlatform if needed; poll (through the factory's sleeper) until Registered."""
    factory = ClientFactory.for_settings(conn)
    status = read_provider(factory)
    if status.registered:
        return status
    factory.resources().providers.register(PROVIDER)
    waited = 0.0
    while waited < PROVIDER_TIMEOUT.total_seconds():
        status = read_provider(factory)
        if status.registered:
            return status.model_copy(update={"registered_now": True})
        factory.sleeper.sleep(PROVIDER_POLL_SECONDS)
        waited += PROVIDER_POLL_SECONDS
    raise TransientError(
        f"{PROVIDER} is still {status.registration_state} after {waited:.0f} s; run again later"
    )


@cmk_task(task_run_name="create-or-get-policy-{target.policy_name}")
def create_or_get_policy(
    conn: ConnectionSettings, target: TargetSettings, key_version: str | None = None
) -> PolicyInfo:
    """Create the Encryption policy, or adopt an existing one that references the same key (else refuse)."""
    factory = ClientFactory.for_settings(conn)
    existing = read_policy(factory, target)
    if existing is not None:
        _refuse_different(existing, target, key_version)
        return existing
    with service_errors():
        created = factory.powerplatform_mgmt().enterprise_policies.create_or_update(
            target.policy_name, target.resource_group, policy_body(target, key_version)
        )
    return policy_from_arm(created.as_dict()).model_copy(update={"created": True})


@cmk_task(task_run_name="get-policy-{target.policy_name}")
def get_policy(conn: ConnectionSettings, target: TargetSettings) -> PolicyInfo | None:
    """The policy, or None when it does not exist."""
    return read_policy(ClientFactory.for_settings(conn), target)


@cmk_task(task_run_name="wait-for-policy-identity-{target.policy_name}")
def wait_for_policy_identity(
    conn: ConnectionSettings, target: TargetSettings, timeout: timedelta = IDENTITY_TIMEOUT
) -> PolicyInfo:
    """Poll until the policy shows both its identity's principalId and its systemId (both appear late)."""
    factory = ClientFactory.for_settings(conn)
    waited = 0.0
    while True:
        policy = read_policy(factory, target)
        if policy is None:
            raise ConfigError(
                "policy_name",
                f"policy {target.policy_name!r} does not exist",
                "create it first (create_or_get_policy) or fix policy_name/resource_group",
            )
        if policy.identity_ready:
            return policy
        if waited >= timeout.total_seconds():
            missing = [
                n for n, v in (("principalId", policy.principal_id), ("systemId", policy.system_id)) if not v
            ]
            raise TransientError(
                f"policy {target.policy_name!r} still lacks {', '.join(missing)} after "
                f"{waited:.0f} s; run again later"
            )
        factory.sleeper.sleep(IDENTITY_POLL_SECONDS)
        waited += IDENTITY_POLL_SECONDS


@cmk_task(task_run_name="delete-policy-{target.policy_name}")
def delete_policy(conn: ConnectionSettings, target: TargetSettings) -> PolicyDeletion:
    """Delete the policy; refuses while any environment is linked to it (it would lock them)."""
    factory = ClientFactory.for_settings(conn)
    policy = read_policy(factory, target)
    policy_arm_id = target.policy_id(conn.subscription_id)
    if policy is None:
        return PolicyDeletion(policy_id=policy_arm_id, deleted=False)
    linked = [env.id for env in factory.pp_admin().list_environments() if linked_to(env, policy)]
    if linked:
        raise ConfigError(
            "policy_name",
            f"policy {target.policy_name!r} is still linked to {', '.join(linked)}",
            "revert (unlink) those environments first and wait for the unlink to succeed",
        )
    with service_errors():
        factory.powerplatform_mgmt().enterprise_policies.delete(target.resource_group, target.policy_name)
    return PolicyDeletion(policy_id=policy.policy_id or policy_arm_id, deleted=True)
