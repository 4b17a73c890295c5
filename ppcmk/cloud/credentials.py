"""The token credential of a connection, from azure-identity for every cloud, the sandbox included.

The authority host comes from the cloud's endpoints (the sandbox serves its own Entra-shaped authority, which
MSAL must not ask Microsoft about: instance discovery is off there). A connection's `ca_bundle` is trusted by
the credential's own HTTP pipeline, which MSAL's requests go through, exactly like the service clients: the
sandbox CA is trusted the way a corporate TLS-inspection CA is. That pipeline never retries a certificate
failure either (`CertificateAwareRetryPolicy`): a wrong CA costs one handshake, not one per retry layer.
"""

from __future__ import annotations

from typing import Any

from azure.core.credentials import TokenCredential

from ppcmk.cloud.certificates import CertificateAwareRetryPolicy
from ppcmk.cloud.settings import ConnectionSettings


def build_credential(settings: ConnectionSettings) -> TokenCredential:
    """The credential for a connection's mode. Nothing here sends a request until a token is needed; the
    credential caches each token until shortly before it expires."""
    from azure import identity

    endpoints = settings.endpoints
    trust: dict[str, Any] = {"retry_policy_class": CertificateAwareRetryPolicy}
    if settings.ca_bundle:
        trust["connection_verify"] = settings.ca_bundle
    authority: dict[str, Any] = {"authority": endpoints.authority, **trust}
    msal: dict[str, Any] = {**authority, "disable_instance_discovery": not endpoints.instance_discovery}
    mode, tenant, client_id = settings.credential_mode, settings.tenant_id, settings.client_id
    if mode == "client_secret":
        assert client_id and settings.client_secret  # guaranteed by ConnectionSettings validation
        return identity.ClientSecretCredential(tenant, client_id, settings.client_secret.get_secret_value(),
                                               **msal)
    if mode == "certificate":
        assert client_id and settings.certificate_path
        return identity.CertificateCredential(tenant, client_id, certificate_path=settings.certificate_path,
                                              **msal)
    if mode == "workload_identity":
        # the token file (and on AKS the authority) come from the worker's environment:
        # AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST
        return identity.WorkloadIdentityCredential(tenant_id=tenant, client_id=client_id, **authority)
    if mode == "managed_identity":
        # No connect retries inside the token request: the caller's retries already cover a refused
        # connection, and stop at a certificate failure, which each layer of retries would repeat.
        return identity.ManagedIdentityCredential(client_id=client_id, retry_connect=0, **trust)
    return identity.DefaultAzureCredential(managed_identity_client_id=client_id, **authority)
