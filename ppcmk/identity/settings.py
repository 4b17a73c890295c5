"""Which tokens prove a person for ppcmk's approvals: those the tenant issues for its approvals app, an app
registration that exposes one delegated scope (e.g. `Approve`) and no API, through the public client people
sign in with (the Azure CLI's by default, as `az login` and azure-identity's device code use). Set up once per
tenant (docs/AZURE.md); saved as the `ppcmk-approvals` block."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field, field_validator

AZURE_CLI_APP_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
# Audiences of real APIs: a token for one of them opens that API, so it can never be a mere proof.
API_AUDIENCES = ("https://management.", "https://graph.", "https://vault.", "https://service.powerapps.",
                 "https://api.powerplatform.", "https://api.bap.", "https://managedhsm.")


class ApprovalsSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    app_id: str = Field(description="the approvals app's application (client) id")
    app_id_uri: str | None = Field(default=None, description="its Application ID URI, e.g. api://approvals")
    scope: str = Field(default="Approve", pattern=r"^[A-Za-z0-9_.-]+$")
    sign_in_client_id: str = AZURE_CLI_APP_ID
    proof_max_age_minutes: int = Field(default=10, ge=1, le=60)

    @field_validator("app_id", "sign_in_client_id")
    @classmethod
    def _guid(cls, value: str) -> str:
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise ValueError(f"{value!r} is not an application (client) id: a GUID") from None

    @field_validator("app_id_uri")
    @classmethod
    def _no_api(cls, value: str | None) -> str | None:
        if value and value.lower().startswith(API_AUDIENCES):
            raise ValueError(f"{value} is a Microsoft API: a token for it opens that API, so it cannot be a "
                             "proof; register an app that exposes only a scope")
        return value.rstrip("/") if value else value

    @property
    def scope_uri(self) -> str:
        """What a person signs in for, e.g. api://approvals/Approve."""
        return f"{self.app_id_uri or 'api://' + self.app_id}/{self.scope}"

    @property
    def audiences(self) -> tuple[str, ...]:
        """The `aud` a proof may carry: the app id (v2 tokens), or the identifier URI (v1 tokens)."""
        return (self.app_id, *((self.app_id_uri,) if self.app_id_uri else ()))
