"""The Power Platform admin's side of the policy: their Reader on it (granted by the Key Vault half, waited
for before the links), and what a hand-off asks of whoever approves it (Reader, and none of the Key Vault
admin's roles on the vault: one person holding both could take the key away from environments they
linked)."""

from __future__ import annotations

from datetime import timedelta

from azure.core.exceptions import HttpResponseError

from ppcmk.approvals.request import PowerPlatformHandoff
from ppcmk.cloud.settings import ConnectionSettings, TargetSettings
from ppcmk.models.azure import RoleGrant, role_guid
from ppcmk.safety.retry import cmk_task
from ppcmk.services.factory import ClientFactory
from ppcmk.services.policies import read_policy
from ppcmk.services.role_grants import (
    CONTRIBUTOR,
    KEY_VAULT_ADMINISTRATOR,
    KEY_VAULT_CRYPTO_OFFICER,
    OWNER,
    POLICY_READ_ROLES,
    PROPAGATION_POLL_SECONDS,
    PROPAGATION_TIMEOUT,
    READER,
    assign_role,
    lookup_principal,
    principals_with_roles,
    read_role_grants,
    resolve_principal,
)


@cmk_task(task_run_name="grant-policy-reader-{admin}")
def grant_policy_reader(conn: ConnectionSettings, target: TargetSettings, admin: str) -> RoleGrant:
    """Reader on the enterprise policy for the Power Platform admin (UPN or object id), so they can link."""
    factory = ClientFactory.for_settings(conn)
    principal = lookup_principal(factory, admin)
    policy_id = target.policy_id(conn.subscription_id)
    existing = read_role_grants(factory, policy_id, principal.object_id, POLICY_READ_ROLES)
    if existing:
        return existing[0]
    return assign_role(factory, policy_id, principal.object_id, READER, principal.kind)


@cmk_task(task_run_name="policy-readers-{target.policy_name}")
def policy_reader_ids(conn: ConnectionSettings, target: TargetSettings) -> list[str]:
    """Who holds Reader or higher on the policy, as this connection (one that reads role assignments) sees
    it: a fresh Reader shows here at once, but in its holder's own reads only minutes later."""
    factory = ClientFactory.for_settings(conn)
    return principals_with_roles(factory, target.policy_id(conn.subscription_id), POLICY_READ_ROLES)


@cmk_task(task_run_name="has-policy-reader-{admin}")
def has_policy_reader(conn: ConnectionSettings, target: TargetSettings, admin: str) -> bool:
    """Whether the admin holds Reader or higher on the policy (checked through ARM; separation of duty)."""
    factory = ClientFactory.for_settings(conn)
    principal = resolve_principal(factory, admin)
    return bool(
        read_role_grants(factory, target.policy_id(conn.subscription_id), principal, POLICY_READ_ROLES)
    )


# The Key Vault admin's rights on a vault: whoever holds one can take the key away from the environments.
KEY_VAULT_ADMIN_ROLES = {
    OWNER: "Owner",
    CONTRIBUTOR: "Contributor",
    KEY_VAULT_ADMINISTRATOR: "Key Vault Administrator",
    KEY_VAULT_CRYPTO_OFFICER: "Key Vault Crypto Officer",
    "f25e0fa2-a7c8-4377-a976-54943a77a395": "Key Vault Contributor",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
    "f58310d9-a9f6-439a-9e8d-f62e7b41a168": "Role Based Access Control Administrator",
}


@cmk_task(task_run_name="key-vault-rights-{principal_id}")
def key_vault_rights(conn: ConnectionSettings, target: TargetSettings, principal_id: str) -> list[str]:
    """The Key Vault admin's roles the principal holds on the target's vault (assigned there or above), as
    the Key Vault connection reads them; separation of duty refuses a Power Platform approver holding any."""
    factory = ClientFactory.for_settings(conn)
    grants = read_role_grants(factory, target.vault_id, principal_id, frozenset(KEY_VAULT_ADMIN_ROLES))
    return sorted({KEY_VAULT_ADMIN_ROLES[role_guid(g.role_definition_id)] for g in grants})


def policy_handoff(
    kv: ConnectionSettings, target: TargetSettings, designated: str = ""
) -> PowerPlatformHandoff:
    """The hand-off's Reader requirement on the target's policy, judged with the Key Vault admin's view
    (`kv` reads role assignments): who holds it is read once per ask, for `ppcmk approve`; the answer is
    checked after it. `designated`: the admin this run granted Reader, named on the form."""
    return PowerPlatformHandoff(
        policy_name=target.policy_name,
        has_policy_reader=lambda admin: has_policy_reader(kv, target, admin),
        key_vault_rights=lambda person: key_vault_rights(kv, target, person),
        policy_id=target.policy_id(kv.subscription_id),
        designated=designated,
        policy_readers=lambda: policy_reader_ids(kv, target),
    )


@cmk_task(task_run_name="wait-for-reader-{target.policy_name}")
def wait_for_reader(
    pp: ConnectionSettings, target: TargetSettings, timeout: timedelta = PROPAGATION_TIMEOUT
) -> float:
    """Read the policy as the approver until ARM lets them: their fresh Reader takes minutes to apply, and
    the link is refused (403) until it has. Returns the seconds waited (cloud clock)."""
    factory = ClientFactory.for_settings(pp)
    waited = 0.0
    while True:
        try:
            read_policy(factory, target)
            return waited
        except HttpResponseError as denied:
            if denied.status_code != 403 or waited >= timeout.total_seconds():
                raise
        factory.sleeper.sleep(PROPAGATION_POLL_SECONDS)
        waited += PROPAGATION_POLL_SECONDS
