"""Principals (users and service principals) of the sandbox tenant, loaded from ``identities.json``."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

POWER_PLATFORM_ADMIN_WID = "11648597-926c-4cf3-9c36-bcebb0ba8dcc"
AZURE_CLI_APP_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"


class Application(BaseModel):
    """An app registration people sign in to (a public client) or get tokens for (an API of the tenant's
    own). Microsoft's APIs the sandbox serves are built in (`sandbox.identity.claims.MICROSOFT_APIS`)."""

    model_config = ConfigDict(extra="forbid")

    app_id: str
    display_name: str
    public_client: bool = False
    redirect_uris: list[str] = Field(default_factory=list)  # "http://localhost" matches any loopback port
    identifier_uri: str | None = None  # an API: the resource its scopes name, e.g. api://contoso-approvals
    scopes: list[str] = Field(default_factory=list)  # an API's delegated scopes
    access_token_version: Literal[1, 2] = 1  # the API's accessTokenAcceptedVersion


# First-party public clients every tenant has: the Azure CLI is azure-identity's DeviceCodeCredential default.
FIRST_PARTY_CLIENTS = (
    Application(app_id=AZURE_CLI_APP_ID, display_name="Microsoft Azure CLI", public_client=True,
                redirect_uris=["http://localhost"]),
)


class Principal(BaseModel):
    """A user or service principal. ``name`` is the persona name used by tests and the token endpoint."""

    model_config = ConfigDict(extra="forbid")

    name: str
    object_id: str
    kind: Literal["User", "ServicePrincipal"]
    display_name: str
    upn: str | None = None  # users only
    app_id: str | None = None  # service principals only
    # Users only: the app registration of the service connection that acts as this person in the sandbox (the
    # admin blocks `ppcmk serve` saves); its client-credentials token carries this person's object id.
    stand_in_app_id: str | None = None
    wids: list[str] = Field(default_factory=list)  # Entra role template ids held by the principal
    management_app: bool = False  # service principal registered as a Power Platform admin management app
    # A Microsoft service's system-assigned identity (e.g. an enterprise policy): passes a vault firewall that
    # allows trusted Microsoft services (bypass AzureServices).
    trusted_service: bool = False

    @property
    def is_power_platform_admin(self) -> bool:
        return POWER_PLATFORM_ADMIN_WID in self.wids or self.management_app


class Identities:
    """The tenant directory: lookup by object id, persona name, UPN or app id (all case-insensitive)."""

    def __init__(self, tenant_id: str, principals: list[Principal],
                 applications: list[Application] | None = None) -> None:
        self.tenant_id = tenant_id
        self._by_oid: dict[str, Principal] = {}
        self.applications = list(applications or [])
        for principal in principals:
            self._add(principal)

    @classmethod
    def load(cls, section: dict[str, Any], tenant_id: str) -> Identities:
        return cls(tenant_id, [Principal.model_validate(p) for p in section.get("principals", [])],
                   [Application.model_validate(a) for a in section.get("applications", [])])

    def to_dict(self) -> dict[str, Any]:
        return {"principals": [p.model_dump(exclude_defaults=True) for p in self._by_oid.values()],
                "applications": [a.model_dump(exclude_defaults=True) for a in self.applications]}

    def application(self, app_id: str) -> Application | None:
        """An app registration of the tenant or a first-party client, by application id."""
        wanted = app_id.lower()
        known = (*self.applications, *FIRST_PARTY_CLIENTS)
        return next((a for a in known if a.app_id.lower() == wanted), None)

    def api(self, identifier_uri: str) -> Application | None:
        """The tenant's own API whose identifier URI (or app id) a scope names."""
        wanted = identifier_uri.rstrip("/").lower()
        return next((a for a in self.applications
                     if a.identifier_uri and wanted in (a.identifier_uri.lower(), a.app_id.lower())), None)

    def _add(self, principal: Principal) -> Principal:
        if self.find(principal.object_id) or self.find(principal.name):
            raise ValueError(
                f"identities: principal {principal.name!r} / {principal.object_id} is defined twice"
            )
        self._by_oid[principal.object_id.lower()] = principal
        return principal

    def all(self) -> list[Principal]:
        return list(self._by_oid.values())

    def get(self, object_id: str) -> Principal | None:
        return self._by_oid.get(object_id.lower())

    def find(self, key: str) -> Principal | None:
        """By object id, persona name, UPN or app id."""
        wanted = key.lower()
        if wanted in self._by_oid:
            return self._by_oid[wanted]
        for principal in self._by_oid.values():
            candidates = (principal.name, principal.upn or "", principal.app_id or "")
            if wanted in (c.lower() for c in candidates):
                return principal
        return None

    def by_client_id(self, client_id: str) -> Principal | None:
        """The principal an application (client) id signs in as: a service principal's own app, or the
        stand-in app of a person."""
        wanted = client_id.lower()
        return next((p for p in self._by_oid.values()
                     if wanted in ((p.app_id or "").lower(), (p.stand_in_app_id or "").lower())), None)

    def require(self, key: str) -> Principal:
        principal = self.find(key)
        if principal is None:
            known = ", ".join(sorted(p.name for p in self._by_oid.values()))
            raise KeyError(f"no principal {key!r} in the sandbox tenant (known: {known})")
        return principal

    def add_service_principal(self, display_name: str, trusted_service: bool = True) -> Principal:
        """A new service principal with fresh ids; by default a trusted Microsoft service's system-assigned
        identity (what an enterprise policy gets)."""
        object_id = str(uuid.uuid4())
        return self._add(
            Principal(
                name=f"{display_name}-{object_id[:8]}",
                object_id=object_id,
                kind="ServicePrincipal",
                display_name=display_name,
                app_id=str(uuid.uuid4()),
                trusted_service=trusted_service,
            )
        )
