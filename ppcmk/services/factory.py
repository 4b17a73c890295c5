"""The one place clients are built (their transports are in ppcmk.cloud.transport).

Every Azure SDK client and every httpx client for the Power Platform admin API and Graph comes from a
`ClientFactory`, so timeouts, retries, TLS trust, the user agent, request-id logging and the sleeper
are the same everywhere and the same code runs against the sandbox and real Azure.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast
from urllib.parse import urlsplit

import httpx
from azure.core.credentials import TokenCredential

from ppcmk import USER_AGENT
from ppcmk.cloud.certificates import CertificateAwareRetryPolicy, trust_of
from ppcmk.cloud.clock import RealSleeper, SandboxSleeper, Sleeper
from ppcmk.cloud.credentials import build_credential
from ppcmk.cloud.redaction import ForgetTokensPolicy
from ppcmk.cloud.settings import ConnectionSettings
from ppcmk.cloud.transport import (
    BACKOFF_MAX,
    BearerAuth,
    RequestIdPolicy,
    RetryingTransport,
    SleeperTransport,
    on_httpx_response,
)
from ppcmk.models.arm_ids import MANAGED_HSM_TYPE, parse_resource_id

if TYPE_CHECKING:
    from azure.keyvault.administration import KeyVaultAccessControlClient
    from azure.keyvault.keys import KeyClient
    from azure.keyvault.keys.crypto import CryptographyClient
    from azure.mgmt.authorization import AuthorizationManagementClient
    from azure.mgmt.keyvault import KeyVaultManagementClient
    from azure.mgmt.powerplatform import PowerPlatformMgmtClient
    from azure.mgmt.resource.resources import ResourceManagementClient

    from ppcmk.services.graph import GraphClient
    from ppcmk.services.ppadmin import PowerPlatformAdminClient, PowerPlatformApiClient

T = TypeVar("T")


class ClientFactory:
    """Builds (and caches) every client for one connection. Use `ClientFactory.for_settings(settings)`."""

    _instances: ClassVar[dict[ConnectionSettings, ClientFactory]] = {}
    _instances_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, settings: ConnectionSettings, *, sleeper: Sleeper | None = None,
                 credential: TokenCredential | None = None) -> None:
        self.settings = settings
        if sleeper is None:
            sleeper = (SandboxSleeper(settings.sandbox_url or "", settings.ca_bundle or "",
                                      settings.request_timeout)
                       if settings.virtual_time else RealSleeper())
        self.sleeper: Sleeper = sleeper
        self.credential: TokenCredential = credential or build_credential(settings)
        self._clients: dict[object, Any] = {}
        self._per_thread = threading.local()
        self._vault_urls: dict[str, str] = {}
        self._lock = threading.Lock()

    @classmethod
    def for_settings(cls, settings: ConnectionSettings) -> ClientFactory:
        """The shared factory for these settings, built once per process and connection.

        Settings are frozen and hash and compare by every value, the secret included: two connections never
        share clients by mistake, and every task call finds its factory (and the clients it already built)
        with one dictionary lookup.
        """
        factory = cls._instances.get(settings)
        if factory is not None:
            return factory
        with cls._instances_lock:
            factory = cls._instances.get(settings)
            if factory is None:
                factory = cls._instances[settings] = cls(settings)
            return factory

    def now(self) -> datetime:
        """The current time as the target cloud sees it (the sandbox clock in virtual time)."""
        return self.sleeper.now()

    @property
    def _verify(self) -> str | bool:
        return self.settings.ca_bundle or True

    @cached_property
    def _tls(self) -> ssl.SSLContext:
        """One TLS context for every httpx client of this factory (loading the trust store per client costs
        milliseconds, and a fleet makes one client per wave thread)."""
        return httpx.create_ssl_context(verify=self._verify)

    @property
    def _sandbox(self) -> bool:
        return self.settings.cloud == "sandbox"

    def _sdk_options(self) -> dict[str, Any]:
        s = self.settings
        transport = SleeperTransport(self.sleeper, connection_verify=self._verify,
                                     connection_timeout=min(s.request_timeout, 30.0),
                                     read_timeout=s.request_timeout)
        retry = CertificateAwareRetryPolicy(retry_total=s.retry_total,
                                            retry_backoff_factor=s.retry_backoff_factor,
                                            retry_backoff_max=BACKOFF_MAX)
        return {"transport": transport, "retry_policy": retry, "user_agent": USER_AGENT,
                "per_retry_policies": [RequestIdPolicy()],
                "per_call_policies": [ForgetTokensPolicy()]}

    def _arm_options(self) -> dict[str, Any]:
        options = self._sdk_options()
        options["base_url"] = self.settings.endpoints.arm
        options["credential_scopes"] = [self.settings.endpoints.arm_scope]
        if self.settings.virtual_time:
            options["polling_interval"] = 0  # the service's Retry-After still applies, through the sleeper
        elif self._sandbox:
            options["polling_interval"] = 1
        return options

    def _keyvault_options(self) -> dict[str, Any]:
        options = self._sdk_options()
        # Sandbox vaults live on 127.0.0.1, which can never be a subdomain of the challenge's resource.
        options["verify_challenge_resource"] = not self._sandbox
        return options

    def _once(self, key: object, build: Callable[[], T]) -> T:
        """The client kept under `key`, built on first use; threads asking at once share one."""
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = build()
            return cast(T, client)

    def key_client(self, vault_url: str) -> KeyClient:
        from azure.keyvault.keys import KeyClient

        url = vault_url.rstrip("/")
        return self._once(("key", url), lambda: KeyClient(url, self.credential, **self._keyvault_options()))

    def crypto_client(self, key_id: str) -> CryptographyClient:
        from azure.keyvault.keys.crypto import CryptographyClient

        return CryptographyClient(key_id, self.credential, **self._keyvault_options())

    def hsm_access_control(self, hsm_url: str) -> KeyVaultAccessControlClient:
        """A managed HSM's local RBAC client (role assignments live on the HSM's data plane, not in ARM); its
        token scope comes from the HSM's 401 challenge, as for `key_client`."""
        from azure.keyvault.administration import KeyVaultAccessControlClient

        url = hsm_url.rstrip("/")
        return self._once(("hsm-access", url), lambda: KeyVaultAccessControlClient(
            url, self.credential, **self._keyvault_options()))

    def vault_url(self, vault_id: str) -> str:
        """The data-plane URL of a vault or managed HSM. A vault's is read from ARM (`vaultUri`); a managed
        HSM's follows from its name and the cloud (`https://<name>.managedhsm.azure.net`), except in the
        sandbox, where each one has its own origin and ARM's `hsmUri` says which."""
        with self._lock:
            cached = self._vault_urls.get(vault_id.lower())
        if cached:
            return cached
        rid = parse_resource_id(vault_id)
        if rid.is_type(*MANAGED_HSM_TYPE):
            url = (self.settings.endpoints.managed_hsm_url(rid.name)
                   or self._hsm_uri_from_arm(rid.resource_group, rid.name))
        else:
            vault = self.keyvault_mgmt().vaults.get(rid.resource_group, rid.name)
            url = str(vault.properties.vault_uri)
        url = url.rstrip("/")
        with self._lock:
            self._vault_urls[vault_id.lower()] = url
        return url

    def _hsm_uri_from_arm(self, resource_group: str, name: str) -> str:
        from azure.core.exceptions import ResourceNotFoundError

        hsm = self.keyvault_mgmt().managed_hsms.get(resource_group, name)
        uri = hsm.properties.hsm_uri if hsm is not None and hsm.properties is not None else None
        if not uri:  # the SDK types the GET as optional; ARM answers 404 for a missing HSM
            raise ResourceNotFoundError(f"managed HSM {name} in {resource_group} has no hsmUri")
        return str(uri)

    def _arm_client(self, client_type: Callable[..., T]) -> T:
        """One ARM management client of each type, for the factory's subscription."""
        return self._once(client_type, lambda: client_type(
            self.credential, self.settings.subscription_id, **self._arm_options()))

    def keyvault_mgmt(self) -> KeyVaultManagementClient:
        from azure.mgmt.keyvault import KeyVaultManagementClient

        return self._arm_client(KeyVaultManagementClient)

    def authorization(self) -> AuthorizationManagementClient:
        from azure.mgmt.authorization import AuthorizationManagementClient

        return self._arm_client(AuthorizationManagementClient)

    def resources(self) -> ResourceManagementClient:
        from azure.mgmt.resource.resources import ResourceManagementClient

        return self._arm_client(ResourceManagementClient)

    def powerplatform_mgmt(self) -> PowerPlatformMgmtClient:
        from azure.mgmt.powerplatform import PowerPlatformMgmtClient

        return self._arm_client(PowerPlatformMgmtClient)

    def http_client(self, base_url: str, scope: str) -> httpx.Client:
        """An httpx client with the factory's TLS trust, timeouts, retries, user agent and request-id hook."""
        s = self.settings
        inner = httpx.HTTPTransport(verify=self._tls)
        trust = trust_of(s.ca_bundle)
        authority = urlsplit(s.endpoints.authority).netloc
        return httpx.Client(
            base_url=base_url,
            auth=BearerAuth(self.credential, scope, authority, trust),
            timeout=httpx.Timeout(s.request_timeout, connect=min(s.request_timeout, 30.0)),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            transport=RetryingTransport(inner, self.sleeper, s.retry_total, s.retry_backoff_factor,
                                        trust),
            event_hooks={"response": [on_httpx_response]},
        )

    def pp_admin(self) -> PowerPlatformAdminClient:
        """This thread's Power Platform admin client, with its own connection. A fleet waits on hundreds of
        environments at once, one thread each: through one shared httpx pool their polls queued behind its
        lock (which rescans every pooled connection per request) and reconnected beyond its keep-alive
        limit, costing several times the CPU and wall time per call (bench/fleet.py)."""
        client: PowerPlatformAdminClient | None = getattr(self._per_thread, "pp_admin", None)
        if client is None:
            client = self._per_thread.pp_admin = self._new_pp_admin()
        return client

    def _new_pp_admin(self) -> PowerPlatformAdminClient:
        from ppcmk.services.ppadmin import PowerPlatformAdminClient

        endpoints = self.settings.endpoints
        return PowerPlatformAdminClient(
            self.http_client(endpoints.bap, endpoints.bap_scope), self.sleeper,
            poll_floor=self.settings.operation_poll_floor, poll_ceiling=self.settings.operation_poll_ceiling,
            operations=self.pp_api)

    def pp_api(self) -> PowerPlatformApiClient:
        """This thread's Power Platform API client (lifecycle operations), per thread like `pp_admin`."""
        client: PowerPlatformApiClient | None = getattr(self._per_thread, "pp_api", None)
        if client is None:
            from ppcmk.services.ppadmin import PowerPlatformApiClient

            endpoints = self.settings.endpoints
            client = self._per_thread.pp_api = PowerPlatformApiClient(
                self.http_client(endpoints.ppapi, endpoints.ppapi_scope))
        return client

    def graph(self) -> GraphClient:
        from ppcmk.services.graph import GraphClient

        endpoints = self.settings.endpoints
        return self._once("graph", lambda: GraphClient(
            self.http_client(endpoints.graph, endpoints.graph_scope)))
