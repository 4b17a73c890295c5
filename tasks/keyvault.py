"""Key Vault tasks: verify the vault, create or adopt the key, read it (rotation is `tasks.rotation`).

The reads and the key-version write are `ppcmk.services.key_vault`'s; these tasks add retries. Every task
re-reads before it writes, so running it twice changes nothing the second time.
"""

from __future__ import annotations

from ppcmk.cloud.settings import ConnectionSettings, TargetSettings
from ppcmk.errors import ConfigError
from ppcmk.models.azure import KeyInfo, VaultStatus
from ppcmk.safety.retry import cmk_task
from ppcmk.services.factory import ClientFactory
from ppcmk.services.key_vault import create_key_version, read_key, read_vault, require_target_shape


@cmk_task(task_run_name="verify-vault-{target.vault_id}")
def verify_vault(conn: ConnectionSettings, target: TargetSettings) -> VaultStatus:
    """Read the vault's soft delete, purge protection, permission model and network settings."""
    return read_vault(ClientFactory.for_settings(conn), target.vault_id)


@cmk_task(task_run_name="create-or-adopt-key-{target.key_name}")
def create_or_adopt_key(conn: ConnectionSettings, target: TargetSettings) -> KeyInfo:
    """Adopt the key if it exists with the right type and size (refuse otherwise); create it if missing."""
    factory = ClientFactory.for_settings(conn)
    existing = read_key(factory, target.vault_id, target.key_name)
    if existing is not None:
        require_target_shape(target, existing)
        return existing
    return create_key_version(factory, target)


@cmk_task(task_run_name="get-key-info-{target.key_name}")
def get_key_info(conn: ConnectionSettings, target: TargetSettings, version: str | None = None) -> KeyInfo:
    info = read_key(ClientFactory.for_settings(conn), target.vault_id, target.key_name, version)
    if info is None:
        raise ConfigError(
            "key_name",
            f"key {target.key_name!r} (version {version or 'current'}) does not exist",
            "check key_name, or create the key with create_or_adopt_key",
        )
    return info
