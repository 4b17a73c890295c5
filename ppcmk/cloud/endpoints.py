"""Service endpoints and token scopes per cloud.

Power Platform hosts and resource URLs come from the Terraform provider and the EP module (API
reference, section 1). US Government "GCC" (moderate) tenants live in the commercial Entra ID and
normally use commercial Azure subscriptions, so `usgov` pairs the GCC Power Platform host with public
Azure; GCC High and DoD use Azure Government. The Power Platform API hosts (`ppapi`, token audience
`<host>/.default`) are the documented ones per cloud; ppcmk reads only environment lifecycle operations there.
Managed HSM data planes live at `https://<name>.<managedhsm_suffix>`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

CloudName = Literal["public", "usgov", "usgovhigh", "dod", "china", "sandbox"]
CLOUDS: tuple[str, ...] = ("public", "usgov", "usgovhigh", "dod", "china", "sandbox")


class CloudEndpoints(BaseModel):
    """Where each plane lives in one cloud, and the scope a token for it needs."""

    model_config = ConfigDict(frozen=True)

    cloud: CloudName
    arm: str
    arm_scope: str
    bap: str
    bap_scope: str
    ppapi: str  # the Power Platform API (environment lifecycle operations; diagnostics only)
    ppapi_scope: str
    graph: str
    graph_scope: str
    authority: str
    keyvault_suffix: str | None  # None in the sandbox: each vault has its own origin (read from ARM)
    keyvault_scope: str
    managedhsm_suffix: str | None  # None in the sandbox: each managed HSM has its own origin (read from ARM)
    # MSAL checks an authority host it does not know with Microsoft (instance discovery); the sandbox's own
    # authority is not Microsoft's to vouch for, so it is off there.
    instance_discovery: bool = True

    def managed_hsm_url(self, name: str) -> str | None:
        """The data-plane URL of managed HSM `name` in this cloud; None in the sandbox (read it from ARM)."""
        return f"https://{name.lower()}.{self.managedhsm_suffix}" if self.managedhsm_suffix else None


def _cloud(cloud: CloudName, *, arm: str, bap: str, bap_resource: str, ppapi: str, graph: str, authority: str,
           keyvault_suffix: str, managedhsm_suffix: str) -> CloudEndpoints:
    return CloudEndpoints(
        cloud=cloud,
        arm=arm,
        arm_scope=f"{arm}/.default",
        bap=bap,
        bap_scope=f"{bap_resource.rstrip('/')}/.default",
        ppapi=ppapi,
        ppapi_scope=f"{ppapi}/.default",
        graph=graph,
        graph_scope=f"{graph}/.default",
        authority=authority,
        keyvault_suffix=keyvault_suffix,
        keyvault_scope=f"https://{keyvault_suffix}/.default",
        managedhsm_suffix=managedhsm_suffix,
    )


_PUBLIC = _cloud("public", arm="https://management.azure.com", bap="https://api.bap.microsoft.com",
                 bap_resource="https://service.powerapps.com/", ppapi="https://api.powerplatform.com",
                 graph="https://graph.microsoft.com", authority="login.microsoftonline.com",
                 keyvault_suffix="vault.azure.net", managedhsm_suffix="managedhsm.azure.net")

_FIXED: dict[str, CloudEndpoints] = {
    "public": _PUBLIC,
    "usgov": _cloud("usgov", arm="https://management.azure.com", bap="https://gov.api.bap.microsoft.us",
                    bap_resource="https://gov.service.powerapps.us/",
                    ppapi="https://api.gov.powerplatform.microsoft.us", graph="https://graph.microsoft.com",
                    authority="login.microsoftonline.com", keyvault_suffix="vault.azure.net",
                    managedhsm_suffix="managedhsm.azure.net"),
    "usgovhigh": _cloud("usgovhigh", arm="https://management.usgovcloudapi.net",
                        bap="https://high.api.bap.microsoft.us", bap_resource="https://high.service.powerapps.us/",
                        ppapi="https://api.high.powerplatform.microsoft.us", graph="https://graph.microsoft.us",
                        authority="login.microsoftonline.us", keyvault_suffix="vault.usgovcloudapi.net",
                        managedhsm_suffix="managedhsm.usgovcloudapi.net"),
    "dod": _cloud("dod", arm="https://management.usgovcloudapi.net", bap="https://api.bap.appsplatform.us",
                  bap_resource="https://service.apps.appsplatform.us/", ppapi="https://api.appsplatform.us",
                  graph="https://dod-graph.microsoft.us", authority="login.microsoftonline.us",
                  keyvault_suffix="vault.usgovcloudapi.net",
                  managedhsm_suffix="managedhsm.usgovcloudapi.net"),
    "china": _cloud("china", arm="https://management.chinacloudapi.cn",
                    bap="https://api.bap.partner.microsoftonline.cn", bap_resource="https://service.powerapps.cn/",
                    ppapi="https://api.powerplatform.partner.microsoftonline.cn",
                    graph="https://microsoftgraph.chinacloudapi.cn", authority="login.chinacloudapi.cn",
                    keyvault_suffix="vault.azure.cn", managedhsm_suffix="managedhsm.azure.cn"),
}


def endpoints_for(cloud: CloudName, sandbox_url: str | None = None) -> CloudEndpoints:
    """The endpoints of `cloud`. The sandbox serves every plane, and its Entra-shaped authority, from one
    origin and uses public scopes."""
    if cloud != "sandbox":
        return _FIXED[cloud]
    if not sandbox_url:
        raise ValueError("the sandbox cloud needs sandbox_url")
    origin = sandbox_url.rstrip("/")
    return _PUBLIC.model_copy(update={
        "cloud": "sandbox",
        "arm": origin,
        "bap": origin,
        "ppapi": origin,  # ppapi_scope stays the public audience, which the sandbox checks
        "graph": origin,
        "authority": origin,
        "keyvault_suffix": None,
        "managedhsm_suffix": None,
        "instance_discovery": False,
    })
