"""Microsoft Graph lookups: who is a user or service principal, by UPN or object id.

Role assignments need object ids, while operators think in UPNs; approvals and separation of duty compare
object ids, so both sides are resolved here.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict

from ppcmk.cloud.transport import error_from
from ppcmk.errors import ConfigError, TransientError
from ppcmk.models.environments import pick

_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


class Principal(BaseModel):
    model_config = ConfigDict(frozen=True)

    object_id: str
    kind: str  # "User" or "ServicePrincipal"
    display_name: str | None = None
    user_principal_name: str | None = None
    app_id: str | None = None

    @property
    def label(self) -> str:
        """What a person reads: 'Key Vault Admin (kv-admin@contoso.example)', else the display name."""
        name = self.display_name or self.user_principal_name or self.object_id
        upn = self.user_principal_name
        return f"{name} ({upn})" if upn and upn != name else name


class GraphClient:
    def __init__(self, http: httpx.Client) -> None:
        self._http = http

    def _read(self, path: str, field: str, wanted: str, hint: str) -> Any:
        """The JSON of one directory object; a 404 is a ConfigError about `field` (no such `wanted`)."""
        try:
            response = self._http.get(path)
        except httpx.TransportError as exc:
            raise TransientError(f"could not reach Microsoft Graph: {exc.__class__.__name__}") from exc
        if response.status_code == 404:
            raise ConfigError(field, f"no {field} {wanted!r} in this tenant", hint)
        if response.status_code != 200:
            raise error_from(response)
        return response.json()

    def user(self, upn_or_id: str) -> Principal:
        """The user with this UPN or object id; ConfigError when no such user exists."""
        value = upn_or_id.strip()
        if not value or ("@" not in value and not _GUID.match(value)):
            raise ConfigError("user", f"{upn_or_id!r} is neither a UPN nor an object id",
                              "give the user's sign-in name (name@contoso.com) or Entra object id")
        body = self._read(f"/v1.0/users/{quote(value, safe='@')}", "user", upn_or_id,
                          "check the spelling, or use the object id from Entra ID")
        return Principal(object_id=str(pick(body, "id")), kind="User",
                         display_name=pick(body, "displayName"),
                         user_principal_name=pick(body, "userPrincipalName"))

    def user_object_id(self, upn_or_id: str) -> str:
        return self.user(upn_or_id).object_id

    def service_principal(self, object_id: str) -> Principal:
        """The service principal with this object id; ConfigError when it does not exist."""
        if not _GUID.match(object_id.strip()):
            raise ConfigError("service principal", f"{object_id!r} is not an object id",
                              "give the service principal's object id (a GUID)")
        body = self._read(f"/v1.0/servicePrincipals/{object_id.strip()}", "service principal", object_id,
                          "use the object id of the enterprise application (not its app id)")
        return Principal(object_id=str(pick(body, "id")), kind="ServicePrincipal",
                         display_name=pick(body, "displayName"), app_id=pick(body, "appId"))

    def principal(self, upn_or_id: str) -> Principal:
        """The user (UPN or object id) or else the service principal (object id); ConfigError if
        neither."""
        if "@" in upn_or_id:
            return self.user(upn_or_id)
        try:
            return self.user(upn_or_id)
        except ConfigError:
            return self.service_principal(upn_or_id)
