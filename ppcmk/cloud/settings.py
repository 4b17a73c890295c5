"""Validated settings: how to reach a cloud (ConnectionSettings) and what to protect (TargetSettings).

Blocks hold these values; everything else receives the pydantic objects. Validation happens on load,
before any request, and every problem is reported as a ConfigError naming the field and the fix.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ppcmk.cloud.endpoints import CloudEndpoints, CloudName, endpoints_for
from ppcmk.errors import ConfigError
from ppcmk.models.arm_ids import MANAGED_HSM_TYPE, VAULT_TYPE, ResourceId, parse_resource_id, policy_id
from ppcmk.models.geo import GEOS, canonical_geo

CredentialMode = Literal["default", "client_secret", "certificate", "workload_identity", "managed_identity"]
TimeMode = Literal["real", "virtual"]
KeyType = Literal["RSA", "RSA-HSM"]

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
KEY_SIZES: dict[str, tuple[int, ...]] = {"RSA": (2048, 3072), "RSA-HSM": (2048, 3072, 4096)}
# The names Azure accepts, by TargetSettings field: (the whole name matches, what it names, how to write one).
_AZURE_NAMES = {
    "key_name": (r"[0-9A-Za-z-]{1,127}", "Key Vault key name", "use 1-127 letters, digits and dashes"),
    "policy_name": (r"[A-Za-z0-9][A-Za-z0-9_.-]{0,89}", "enterprise policy name",
                    "use up to 90 letters, digits, '.', '_' or '-', starting with a letter/digit"),
    "resource_group": (r"[-\w._()]{1,90}(?<!\.)", "resource group name",
                       "use up to 90 letters, digits, '-', '_', '.', '(' or ')', not ending in '.'"),
}


def _guid(field: str, value: str) -> str:
    if not _GUID.match(value.strip()):
        raise ConfigError(field, f"{value!r} is not a GUID",
                          "copy the id (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx) from the Azure portal")
    return value.strip().lower()


class ConnectionSettings(BaseModel):
    """How to reach one cloud: endpoints, identity, timeouts. What a CmkConnection block holds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cloud: CloudName = "sandbox"
    tenant_id: str
    subscription_id: str
    credential_mode: CredentialMode = "default"
    client_id: str | None = None
    client_secret: SecretStr | None = None
    certificate_path: str | None = None  # certificate mode: a PEM (key and certificate) on the worker
    sandbox_url: str | None = None
    ca_bundle: str | None = None
    time_mode: TimeMode = "real"
    request_timeout: float = Field(default=60.0, gt=0, le=600)
    retry_total: int = Field(default=5, ge=0, le=20)
    retry_backoff_factor: float = Field(default=0.8, ge=0, le=60)
    # Bounds on the wait between polls of a Power Platform lifecycle operation, whatever Retry-After says.
    operation_poll_floor: float = Field(default=15.0, ge=0)
    operation_poll_ceiling: float = Field(default=300.0, gt=0)

    @field_validator("tenant_id", "subscription_id")
    @classmethod
    def _ids(cls, value: str, info: ValidationInfo) -> str:
        return _guid(info.field_name or "", value)

    @model_validator(mode="after")
    def _consistent(self) -> ConnectionSettings:
        if self.cloud == "sandbox":
            self._check_sandbox()
        if self.time_mode == "virtual" and self.cloud != "sandbox":
            raise ConfigError("time_mode", "virtual time only exists in the sandbox cloud",
                              "set time_mode to 'real' (or cloud to 'sandbox')")
        self._check_credential()
        if self.client_id is not None:
            object.__setattr__(self, "client_id", _guid("client_id", self.client_id))
        if self.operation_poll_floor > self.operation_poll_ceiling:
            raise ConfigError("operation_poll_floor", "the floor is above operation_poll_ceiling",
                              "lower operation_poll_floor or raise operation_poll_ceiling")
        return self

    def _check_sandbox(self) -> None:
        if not self.sandbox_url or not self.sandbox_url.startswith("https://"):
            raise ConfigError("sandbox_url", f"{self.sandbox_url!r} is not an https URL",
                              "set it to the URL printed by `ppcmk sandbox up` (https://127.0.0.1:<port>)")
        if not self.ca_bundle or not Path(self.ca_bundle).is_file():
            raise ConfigError("ca_bundle", f"{self.ca_bundle!r} is not a readable file",
                              "set it to the sandbox CA PEM path printed by `ppcmk sandbox up`")
        if self.credential_mode == "default":
            raise ConfigError("credential_mode", "the default credential chain signs in to Azure, "
                              "not the sandbox", "use client_secret or certificate with a principal's "
                              "values from the credentials file `ppcmk sandbox up` prints (as the blocks "
                              "of `ppcmk serve` do)")

    def _check_credential(self) -> None:
        mode = self.credential_mode
        if mode in ("client_secret", "certificate") and not self.client_id:
            raise ConfigError("client_id", f"{mode} mode needs the application (client) id",
                              "set client_id to the app registration's application id")
        secret = self.client_secret.get_secret_value() if self.client_secret else ""
        if mode == "client_secret" and not secret:
            raise ConfigError("client_secret", "client_secret mode needs a secret",
                              "set client_secret, or use certificate, workload_identity or managed_identity")
        path = self.certificate_path
        if mode == "certificate" and not (path and Path(path).is_absolute()):
            raise ConfigError("certificate_path", f"{self.certificate_path!r} is not an absolute path",
                              "set it to the PEM file (private key and certificate) on the worker, e.g. "
                              "/etc/ppcmk/runbook.pem")

    @property
    def endpoints(self) -> CloudEndpoints:
        return endpoints_for(self.cloud, self.sandbox_url)

    @property
    def virtual_time(self) -> bool:
        return self.time_mode == "virtual"


class TargetSettings(BaseModel):
    """What to protect: the vault and key, the enterprise policy and its geo. What a CmkTarget block holds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    vault_id: str
    key_name: str
    key_type: KeyType = "RSA"
    key_size: int = 2048
    policy_name: str
    resource_group: str
    geo: str

    @field_validator("vault_id")
    @classmethod
    def _vault(cls, value: str) -> str:
        try:
            rid = parse_resource_id(value)
        except ValueError as exc:
            raise ConfigError("vault_id", str(exc),
                              "copy the Resource ID from the vault's JSON View in the Azure portal") from None
        if not (rid.is_type(*VAULT_TYPE) or rid.is_type(*MANAGED_HSM_TYPE)):
            raise ConfigError("vault_id", f"{rid.namespace}/{rid.type} is not a key vault",
                              "use a Microsoft.KeyVault/vaults or Microsoft.KeyVault/managedHSMs id")
        return str(rid)

    @field_validator("key_name", "policy_name", "resource_group")
    @classmethod
    def _azure_name(cls, value: str, info: ValidationInfo) -> str:
        field = info.field_name or ""
        pattern, what, fix = _AZURE_NAMES[field]
        if not re.fullmatch(pattern, value):
            raise ConfigError(field, f"{value!r} is not a valid {what}", fix)
        return value

    @field_validator("geo")
    @classmethod
    def _geo(cls, value: str) -> str:
        geo = canonical_geo(value)
        if geo is None:
            raise ConfigError("geo", f"{value!r} is not a Power Platform geo",
                              f"use one of {', '.join(GEOS)}")
        return geo

    @model_validator(mode="after")
    def _key_size(self) -> TargetSettings:
        sizes = KEY_SIZES[self.key_type]
        if self.key_size not in sizes:
            raise ConfigError("key_size", f"{self.key_size} is not supported for {self.key_type} keys",
                              f"use one of {', '.join(map(str, sizes))}")
        return self

    @property
    def vault(self) -> ResourceId:
        return parse_resource_id(self.vault_id)

    def policy_id(self, subscription_id: str) -> str:
        return policy_id(subscription_id, self.resource_group, self.policy_name)


SettingsT = TypeVar("SettingsT", bound=BaseModel)


def load_settings(model: type[SettingsT], data: dict[str, Any]) -> SettingsT:
    """Validate `data` into `model`, turning pydantic's report into a ConfigError naming the field and fix."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise config_error_from(exc, model) from None


def config_error_from(exc: ValidationError, model: type[BaseModel]) -> ConfigError:
    first = exc.errors()[0]
    original = (first.get("ctx") or {}).get("error")
    if isinstance(original, ConfigError):
        return original
    field = ".".join(str(part) for part in first["loc"]) or model.__name__
    described = model.model_fields.get(field)
    about = f" ({described.description})" if described is not None and described.description else ""
    return ConfigError(field, first["msg"], f"set {field} to a valid value{about}")
