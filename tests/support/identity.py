"""Signing in to the sandbox's authority as its people and principals, with the unmodified azure-identity
credentials: the secrets, certificates and passwords come from the sandbox's credentials file, as a tenant's
admin would hand them out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jwt
from azure.identity import CertificateCredential, ClientSecretCredential, DeviceCodeCredential

from ppcmk.identity.signin import Prompt
from ppcmk_cli.scripted_sign_in import verification_page_prompt


def held(cloud: Any, persona: str) -> dict[str, Any]:
    """What the credentials file holds for a persona."""
    principals: dict[str, dict[str, Any]] = json.loads(Path(cloud.endpoints.credentials).read_text())[
        "principals"]
    return principals[persona]


def authority(cloud: Any) -> dict[str, Any]:
    """What every MSAL-based credential needs to reach the sandbox's authority."""
    endpoints = cloud.endpoints
    return {"authority": endpoints.authority, "disable_instance_discovery": True,
            "connection_verify": endpoints.ca}


def secret_credential(cloud: Any, persona: str, secret: str | None = None) -> ClientSecretCredential:
    proof = held(cloud, persona)
    return ClientSecretCredential(cloud.endpoints.tenant_id, proof["client_id"],
                                  secret or proof["client_secret"], **authority(cloud))


def certificate_credential(cloud: Any, persona: str) -> CertificateCredential:
    proof = held(cloud, persona)
    return CertificateCredential(cloud.endpoints.tenant_id, proof["client_id"],
                                 certificate_path=proof["certificate"], **authority(cloud))


def verification_page_sign_in(cloud: Any, persona: str) -> Prompt:
    """A DeviceCodeCredential prompt that does what the person does: open the verification page, enter the
    code, sign in with their UPN and password (over plain HTTPS, no browser)."""
    proof = held(cloud, persona)
    return verification_page_prompt(cloud.endpoints.ca, proof["upn"], proof["password"])


def device_code_credential(cloud: Any, prompt: Prompt) -> DeviceCodeCredential:
    """azure-identity's DeviceCodeCredential for the Azure CLI public client, as `az login` signs people
    in."""
    return DeviceCodeCredential(tenant_id=cloud.endpoints.tenant_id, prompt_callback=prompt, timeout=30,
                                **authority(cloud))


def claims(token: str) -> dict[str, Any]:
    """A token's claims, read without checking its signature (the services check it)."""
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded
