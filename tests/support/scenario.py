"""The default sandbox scenario (sandbox/scenarios/default) by name: people, resources, environments."""

from __future__ import annotations

# People (identities.json)
REQUESTER = "kv-admin@contoso.example"  # the Key Vault admin, who asks
PP_ADMIN = "pp-admin@contoso.example"  # the Power Platform admin, who approves (Reader on ep-existing)
PP_ADMIN_2 = "pp-admin-2@contoso.example"
# their object ids, and the runbook identity's (a management app) and an outsider's (no roles)
REQUESTER_ID = "0a0a0001-0000-4000-8000-000000000001"
PP_ADMIN_ID = "0a0a0002-0000-4000-8000-000000000002"
PP_ADMIN_2_ID = "0a0a0003-0000-4000-8000-000000000003"
RUNBOOK_ID = "0a0a0004-0000-4000-8000-000000000004"
OUTSIDER_ID = "0a0a0005-0000-4000-8000-000000000005"

# Azure resources (arm.json, keyvault.json)
RESOURCE_GROUP = "rg-cmk"
VAULT = "kv-cmk-prod"  # compliant: soft delete, purge protection, RBAC
KEY = "cmk-prod"  # RSA 3072 in VAULT, the key of LINKED_POLICY
KEY_SIZE = 3072
HSM = "hsm-cmk"  # a managed HSM
LINKED_POLICY = "ep-existing"  # europe, on VAULT/KEY, FINANCE linked to it
LINKED_POLICY_GRANT = "c0c0c0c0-0000-4000-8000-00000000c001"  # its identity's key role on VAULT (the name)
LINKED_POLICY_SYSTEM_ID = ("/regions/europe/providers/Microsoft.PowerPlatform/enterprisePolicies/"
                           "e0e0e0e0-0000-4000-8000-00000000e001")  # what a link names
GEO = "europe"

# Power Platform environments (powerplatform.json), named after their display names
PRODUCTION = "e1000000-0000-4000-8000-000000000001"  # Contoso Production: europe, managed, Microsoft key
SANDBOX = "e1000000-0000-4000-8000-000000000002"  # Contoso Sandbox: europe, the canary type
TRIAL = "e1000000-0000-4000-8000-000000000003"
TEAMS = "e1000000-0000-4000-8000-000000000004"
DEFAULT_ENVIRONMENT = "e1000000-0000-4000-8000-000000000005"
DEVELOPER = "e1000000-0000-4000-8000-000000000006"  # Maker Developer: Basic protection, europe
US_PRODUCTION = "e1000000-0000-4000-8000-000000000007"  # unitedstates: another geo than the europe policies
UK_SANDBOX = "e1000000-0000-4000-8000-000000000008"  # unitedkingdom
UNMANAGED = "e1000000-0000-4000-8000-000000000009"  # Europe Unmanaged: Basic protection, not managed
LEGACY_BYOK = "e1000000-0000-4000-8000-00000000000a"  # key managed by CustomerViaMicrosoft
FINANCE = "e1000000-0000-4000-8000-00000000000b"  # Finance on CMK: linked to LINKED_POLICY
BUSY_SANDBOX = "e1000000-0000-4000-8000-00000000000c"  # a two-hour governance operation runs on it
UNKNOWN_ENVIRONMENT = "e1000000-0000-4000-8000-0000000000ff"  # in no scenario

# The generated fleet the fleet tests start (`fleet:<size>`): environments 0, 5 and 10 are Sandbox type
FLEET_SIZE = 12
FLEET_PATTERN = "Fleet europe *"


# Three differences from the default scenario: Contoso Production should be on ep-existing (onboard),
# Finance on CMK back on the Microsoft-managed key (revert), cmk-prod (30 days old) rotated every 20 days.
DESIRED = """
policies:
  - name: ep-existing
    resource_group: rg-cmk
    target: sandbox-target-ep-existing
    vault: kv-cmk-prod
    key: cmk-prod
    environments: [Contoso Production]
microsoft_managed: [Finance on CMK]
rotation: {cadence_days: 20}
pp_admins: [pp-admin@contoso.example]
runbooks:
  pp_admin: pp-admin@contoso.example
  requester: kv-admin@contoso.example
"""
