"""Sandbox connections, targets and blocks for tests, built by the product's own code
(cli.sandbox_blocks, what `ppcmk serve` and `ppcmk demo` save), so a test connects as a user would."""

from __future__ import annotations

import re
from typing import Any

from ppcmk.cloud.settings import ConnectionSettings, TargetSettings
from ppcmk_cli.profile import SandboxProfile
from ppcmk_cli.sandbox_blocks import register_sandbox_blocks, sandbox_connection_data, sandbox_target_data
from tests.support.arm import vault_id
from tests.support.scenario import VAULT

# The sandbox's own admin API and its authority (sign-ins, managed identity): requests that change nothing in
# the emulated cloud.
_NOT_CLOUD = re.compile(r"^/(_sandbox|metadata/identity|devicelogin|[^/]+/oauth2/|[^/]+/login$)",
                        re.IGNORECASE)


def changes_the_cloud(method: str, path: str) -> bool:
    """A write to the emulated cloud (not a read, not a sign-in, not the sandbox's admin API)."""
    return method not in ("GET", "HEAD") and not _NOT_CLOUD.match(path)


_PROFILES: dict[str, SandboxProfile] = {}  # authority → the profile of the sandbox serving it


def profile(cloud: Any) -> SandboxProfile:
    """The profile `ppcmk sandbox up` would publish for this sandbox (remembered: people who answer its
    questions sign in at its authority)."""
    made = SandboxProfile.from_endpoints(cloud.endpoints, pid=-1)
    _PROFILES[cloud.endpoints.authority] = made
    return made


def sandbox_profile(authority: str) -> SandboxProfile:
    """The profile of the sandbox whose identity provider is `authority` (one this process made)."""
    return _PROFILES[authority]


def connection_data(cloud: Any, persona: str = "runbook", **overrides: Any) -> dict[str, Any]:
    """What a sandbox CmkConnection of `persona` holds (virtual time); retries wait no back-off, since every
    wait would only move the virtual clock."""
    return {**sandbox_connection_data(profile(cloud), persona), "retry_backoff_factor": 0, **overrides}


def connection(cloud: Any, persona: str = "runbook", **overrides: Any) -> ConnectionSettings:
    return ConnectionSettings(**connection_data(cloud, persona, **overrides))


def target(cloud: Any, vault: str = VAULT, key: str = "cmk-test", policy: str = "ep-test",
           **overrides: Any) -> TargetSettings:
    """The sandbox target with a key and policy of the test's own (they do not exist yet unless named)."""
    values = {**sandbox_target_data(profile(cloud)), "vault_id": vault_id(cloud, vault), "key_name": key,
              "policy_name": policy}
    return TargetSettings(**{**values, **overrides})


def save_connection(cloud: Any, persona: str, block_name: str, **overrides: Any) -> str:
    from ppcmk_blocks import CmkConnection

    CmkConnection(**connection_data(cloud, persona, **overrides)).save(block_name, overwrite=True)
    return block_name


def save_target(cloud: Any, block_name: str, **overrides: Any) -> str:
    from ppcmk_blocks import CmkTarget

    CmkTarget(**{**sandbox_target_data(profile(cloud)), **overrides}).save(block_name, overwrite=True)
    return block_name


def register_blocks(cloud: Any) -> dict[str, str]:
    """The sandbox blocks as `ppcmk serve` registers them. Persona → block name, and "target" → the target
    on the policy the scenario already links (LINKED_POLICY), which the tests act on."""
    blocks = register_sandbox_blocks(profile(cloud))
    return {**blocks.persona_blocks(), "target": blocks.existing_target}
