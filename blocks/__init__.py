"""Prefect blocks: the connection to a cloud and the CMK target.

Register them with `prefect block register -m blocks` (the package must be importable, e.g. installed
with `pip install -e .`), then create instances from the UI or in code. Flows take block names;
`.settings()` turns a loaded block into validated pydantic settings. A block is validated when it is saved
and again when it is loaded (a block written through the API or the UI skips the first), so bad values fail
before any run, as a ConfigError naming the field and the fix.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Literal, Self

from prefect.blocks.core import Block
from pydantic import BaseModel, Field, SecretStr, ValidationError

from ppcmk.cloud.settings import ConnectionSettings, TargetSettings, config_error_from, load_settings
from ppcmk.errors import ConfigError
from ppcmk.identity.settings import AZURE_CLI_APP_ID, ApprovalsSettings


class _Validated(Block, ABC):
    """Validates through `settings()` when made (Prefect's `block_initialization` hook, before a save can
    happen) and when loaded (`Block.load` builds it with `model_validate`); a value of the wrong type names
    its field. Abstract (ABC), so it is no block type of its own."""

    @abstractmethod
    def settings(self) -> BaseModel: ...

    def block_initialization(self) -> None:
        self.settings()

    @classmethod
    def named(cls, name: str) -> Self:
        """The saved block `name`; one that does not exist is a ConfigError naming it, like a bad
        value."""
        try:
            return cls.load(name)  # type: ignore[return-value]
        except ConfigError:
            raise
        except ValueError as missing:
            if "Unable to find block document" not in str(missing):  # Prefect's words for missing
                raise
            raise ConfigError(f"{cls.__name__} block {name!r}", "there is no such block on this Prefect "
                              "server", "name an existing one (`prefect block ls` lists them) or create "
                              "it (Blocks → + in the UI, or `ppcmk setup blocks`)") from None

    @classmethod
    def model_validate(cls, obj: Any, **options: Any) -> Self:
        try:
            block = super().model_validate(obj, **options)
        except ValidationError as exc:
            raise config_error_from(exc, cls) from None
        block.settings()
        return block


class CmkConnection(_Validated):
    """How ppcmk reaches one cloud: endpoints, tenant and subscription, and the identity it runs as."""

    _block_type_name = "ppcmk connection"
    _block_type_slug = "ppcmk-connection"
    _description = ("Where ppcmk runs its Power Platform CMK runbooks: the cloud (public, US Gov, China "
                    "or the offline sandbox), tenant, subscription and credential.")

    cloud: Literal["public", "usgov", "usgovhigh", "dod", "china", "sandbox"] = Field(
        "sandbox", description="Cloud: public, usgov (GCC), usgovhigh (GCC High), dod, china, or the offline "
                               "sandbox.")
    tenant_id: str = Field(..., description="Entra ID tenant id (GUID).")
    subscription_id: str = Field(
        ..., description="Azure subscription (GUID) that holds the key vault and the enterprise policy.")
    credential_mode: Literal["default", "client_secret", "certificate", "workload_identity",
                             "managed_identity"] | None = Field(
        None, description="How to authenticate: client_secret, certificate (a PEM file on the worker), "
                          "workload_identity, managed_identity. Empty: DefaultAzureCredential (not in the "
                          "sandbox).")
    client_id: str | None = Field(
        None, description="Application (client) id: required for client_secret and certificate; optional for "
                          "workload and user-assigned managed identity.")
    client_secret: SecretStr | None = Field(None, description="Client secret (client_secret mode only).")
    certificate_path: str | None = Field(
        None, description="Certificate mode: absolute path on the worker of a PEM file holding the private "
                          "key and the certificate (the file stays on the worker; the block holds its path).")
    sandbox_url: str | None = Field(
        None, description="Sandbox only: its https URL, as printed by `ppcmk sandbox up`.")
    ca_bundle: str | None = Field(
        None, description="Path to a CA PEM to trust: the sandbox CA, or a corporate TLS-inspection CA.")
    time_mode: Literal["real", "virtual"] = Field(
        "real", description="'virtual' advances the sandbox clock instead of waiting (sandbox only).")
    request_timeout: float = Field(60.0, description="Seconds before one HTTP request times out.")
    retry_total: int = Field(5, description="Retries of a throttled (429), failed (5xx) or unreachable call.")
    operation_poll_floor: float = Field(
        15.0, description="Minimum seconds between polls of a Power Platform lifecycle operation.")
    operation_poll_ceiling: float = Field(
        300.0, description="Maximum seconds between polls of a Power Platform lifecycle operation.")

    def settings(self) -> ConnectionSettings:
        data = self.model_dump(include=set(ConnectionSettings.model_fields), exclude_none=True)
        if self.client_secret is not None:
            data["client_secret"] = self.client_secret.get_secret_value()
        return load_settings(ConnectionSettings, data)


class CmkTarget(_Validated):
    """What a CMK runbook protects: the key vault and key, the enterprise policy and its geo."""

    _block_type_name = "ppcmk target"
    _block_type_slug = "ppcmk-target"
    _description = "The key vault and key, enterprise policy and Power Platform geo a CMK runbook works on."

    vault_id: str = Field(..., description="Key vault (or managed HSM) ARM resource id, from its JSON View.")
    key_name: str = Field(..., description="Name of the RSA key in the vault.")
    key_type: Literal["RSA", "RSA-HSM"] = Field("RSA", description="RSA (software) or RSA-HSM key.")
    key_size: int = Field(2048, description="RSA: 2048 or 3072. RSA-HSM: 2048, 3072 or 4096.")
    policy_name: str = Field(..., description="Name of the Encryption enterprise policy.")
    resource_group: str = Field(..., description="Resource group of the enterprise policy.")
    geo: str = Field(..., description="Power Platform geo of the policy and its environments, e.g. "
                                      "unitedstates or europe.")

    def settings(self) -> TargetSettings:
        return load_settings(TargetSettings, self.model_dump(include=set(TargetSettings.model_fields)))


class CmkApprovals(_Validated):
    """How a person proves who they are when they answer: a token for the tenant's approvals app."""

    _block_type_name = "ppcmk approvals"
    _block_type_slug = "ppcmk-approvals"
    _description = ("The tenant's approvals app (an app registration that exposes one scope and no API): "
                    "people answer approvals with a token for it, which ppcmk verifies. Saved once, as "
                    "ppcmk-approvals.")

    app_id: str = Field(..., description="The approvals app's application (client) id (GUID).")
    app_id_uri: str | None = Field(None, description="Its Application ID URI, e.g. api://contoso-approvals.")
    scope: str = Field("Approve", description="The delegated scope it exposes, e.g. Approve.")
    sign_in_client_id: str = Field(
        AZURE_CLI_APP_ID, description="The public client people sign in with (default: the Azure CLI's).")
    proof_max_age_minutes: int = Field(10, description="How old a proof may be when it is checked.")

    def settings(self) -> ApprovalsSettings:
        return load_settings(ApprovalsSettings, self.model_dump(include=set(ApprovalsSettings.model_fields)))


APPROVALS_BLOCK = "ppcmk-approvals"  # one per server, read by name: never a run parameter

__all__ = ["APPROVALS_BLOCK", "CmkApprovals", "CmkConnection", "CmkTarget"]
