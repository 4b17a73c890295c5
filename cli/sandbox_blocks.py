"""Blocks for the sandbox: one CmkConnection per persona and the CmkTarget of the default scenario."""

from __future__ import annotations

import json
from pathlib import Path

from ppcmk.cloud.settings import TimeMode
from ppcmk_cli.exit_codes import CliError, ExitCode
from ppcmk_cli.profile import SandboxProfile
from ppcmk_deployments.catalog import EXISTING_POLICY, SandboxBlocks

# The default scenario's production vault and key, and the policy onboarding creates for its europe geo.
SANDBOX_VAULT_GROUP = "rg-cmk"
SANDBOX_VAULT = "kv-cmk-prod"
SANDBOX_KEY = "cmk-prod"
SANDBOX_KEY_SIZE = 3072
SANDBOX_POLICY = "ep-cmk-europe"
SANDBOX_GEO = "europe"


# the default scenario's approvals app (sandbox/scenarios/default/identities.json): a scope, no API
SANDBOX_APPROVALS_APP = "0d0d0001-0000-4000-8000-000000000001"
SANDBOX_APPROVALS_URI = "api://contoso-approvals"


def service_credential(credentials_file: str | Path, persona: str) -> dict[str, str]:
    """The client id and secret a sandbox persona signs in with as a service connection: a service
    principal's own, or the stand-in app of an admin (people's passwords never go into a block)."""
    try:
        held = json.loads(Path(credentials_file).read_text())["principals"][persona]
    except (OSError, ValueError, KeyError) as missing:
        raise CliError(f"no sandbox credentials for {persona!r} in {credentials_file} ({missing}); start the "
                       "sandbox with `ppcmk sandbox up` or `ppcmk serve`", ExitCode.UNAVAILABLE) from None
    return {"credential_mode": "client_secret", "client_id": held["client_id"],
            "client_secret": held["client_secret"]}


def sandbox_connection_data(profile: SandboxProfile, persona: str,
                            time_mode: TimeMode = "virtual") -> dict[str, object]:
    """What a sandbox CmkConnection holds for one persona (also valid ConnectionSettings, without Prefect): an
    ordinary client_secret connection whose authority is the sandbox's."""
    if not profile.credentials:
        raise CliError("the sandbox profile names no credentials file; restart `ppcmk sandbox up` or "
                       "`ppcmk serve`", ExitCode.UNAVAILABLE)
    return {
        "cloud": "sandbox", "tenant_id": profile.tenant_id, "subscription_id": profile.subscription_id,
        "sandbox_url": profile.url, "ca_bundle": profile.ca, "time_mode": time_mode,
        **service_credential(profile.credentials, persona),
    }


def sandbox_target_data(profile: SandboxProfile, policy_name: str = SANDBOX_POLICY) -> dict[str, object]:
    """What a sandbox CmkTarget holds: the default scenario's production vault, key and a europe policy (by
    default the one onboarding creates)."""
    vault_id = (f"/subscriptions/{profile.subscription_id}/resourceGroups/{SANDBOX_VAULT_GROUP}"
                f"/providers/Microsoft.KeyVault/vaults/{SANDBOX_VAULT}")
    return {"vault_id": vault_id, "key_name": SANDBOX_KEY, "key_size": SANDBOX_KEY_SIZE,
            "policy_name": policy_name, "resource_group": SANDBOX_VAULT_GROUP, "geo": SANDBOX_GEO}


def save_sandbox_connection(profile: SandboxProfile, persona: str, block_name: str,
                            time_mode: TimeMode = "virtual") -> str:
    """Save (or refresh) one persona's CmkConnection block; returns its name."""
    from ppcmk_blocks import CmkConnection

    connection = CmkConnection.model_validate(sandbox_connection_data(profile, persona, time_mode))
    connection.settings()  # validate before saving: a bad profile fails here, naming the field
    connection.save(block_name, overwrite=True)
    return block_name


def register_sandbox_blocks(profile: SandboxProfile, blocks: SandboxBlocks | None = None,
                            time_mode: TimeMode = "virtual") -> SandboxBlocks:
    """Save (or refresh) the sandbox blocks in the current Prefect API; returns their names.

    Virtual time: runbooks advance the sandbox clock instead of sleeping, so a four-day encryption is instant.
    """
    from ppcmk_blocks import APPROVALS_BLOCK, CmkApprovals, CmkTarget

    blocks = blocks or SandboxBlocks()
    approvals = CmkApprovals.model_validate({"app_id": SANDBOX_APPROVALS_APP,
                                             "app_id_uri": SANDBOX_APPROVALS_URI})
    approvals.save(APPROVALS_BLOCK, overwrite=True)
    for persona, block_name in blocks.persona_blocks().items():
        save_sandbox_connection(profile, persona, block_name, time_mode)
    targets = {blocks.target: SANDBOX_POLICY, blocks.existing_target: EXISTING_POLICY}
    for block_name, policy_name in targets.items():
        target = CmkTarget.model_validate(sandbox_target_data(profile, policy_name))
        target.settings()
        target.save(block_name, overwrite=True)
    return blocks
