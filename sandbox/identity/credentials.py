"""What each principal of the sandbox tenant proves itself with, made per sandbox home at start-up.

A service principal gets a client secret, a client certificate, a federated token file (workload identity)
and a managed-identity header; a person gets a password and, for the admin blocks, a stand-in application's
client secret. They are written to `credentials.json` (mode 0600) beside the sandbox's CA, never logged and
never put in Prefect by the sandbox; the file is kept across restarts of a sandbox with a state file.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ppcmk_sandbox.identity.keys import KeyPair, digest_equal, write_private
from ppcmk_sandbox.identity.principals import Principal

CREDENTIALS_FILE = "credentials.json"
FEDERATED_AUDIENCE = "api://AzureADTokenExchange"
# A projected service account token lives about an hour and the kubelet renews it; the sandbox writes one
# per start that lasts a day, since nothing renews it.
FEDERATED_TOKEN_SECONDS = 24 * 3600


def federated_subject(name: str) -> str:
    """The subject of a principal's federated identity credential: a Kubernetes service account."""
    return f"system:serviceaccount:ppcmk:{name}"


@dataclass
class PrincipalCredentials:
    """One principal's proofs. Paths are absolute; secrets are only ever in this file and in memory."""

    client_id: str | None = None
    client_secret: str | None = None
    password: str | None = None
    upn: str | None = None
    certificate: str | None = None
    identity_header: str | None = None
    federated_token_file: str | None = None


class TenantCredentials:
    """The proofs of every principal, by persona name; checks what a caller offers against them."""

    def __init__(self, directory: Path, workload_issuer: str, workload_key: KeyPair) -> None:
        self.path = directory / CREDENTIALS_FILE
        self._directory = directory
        self.workload_issuer = workload_issuer
        self.workload_key = workload_key
        self._by_name: dict[str, PrincipalCredentials] = {}
        self._certificates: dict[str, KeyPair] = {}
        if self.path.exists():
            saved = json.loads(self.path.read_text())["principals"]
            self._by_name = {name: PrincipalCredentials(**fields) for name, fields in saved.items()}

    def provide(self, principals: list[Principal], header: dict[str, Any]) -> None:
        """Give every principal what it lacks, renew the federated tokens, and write the file."""
        for principal in principals:
            if principal.trusted_service:
                continue  # a Microsoft service's own identity: nobody outside signs in as it
            held = self._by_name.setdefault(principal.name, PrincipalCredentials())
            if principal.kind == "User":
                self._person(principal, held)
            else:
                self._service(principal, held)
        write_private(
            self.path,
            json.dumps(
                {**header, "principals": {name: asdict(c) for name, c in self._by_name.items()}}, indent=1
            ),
        )

    def _person(self, principal: Principal, held: PrincipalCredentials) -> None:
        held.upn = principal.upn
        held.password = held.password or secrets.token_urlsafe(12)
        if principal.stand_in_app_id:
            held.client_id = principal.stand_in_app_id
            held.client_secret = held.client_secret or secrets.token_urlsafe(32)

    def _service(self, principal: Principal, held: PrincipalCredentials) -> None:
        held.client_id = principal.app_id
        held.client_secret = held.client_secret or secrets.token_urlsafe(32)
        held.identity_header = held.identity_header or secrets.token_urlsafe(24)
        pair = KeyPair.load_or_create(self._directory / f"{principal.name}.pem", principal.display_name)
        self._certificates[principal.name] = pair
        held.certificate = str(pair.path)
        token_file = self._directory / f"{principal.name}.token"
        write_private(token_file, self.federated_token(principal.name))
        held.federated_token_file = str(token_file)

    def federated_token(self, name: str, lifetime: int = FEDERATED_TOKEN_SECONDS) -> str:
        """A token of the workload issuer for `name`'s service account, as a cluster projects it."""
        now = int(time.time())
        return self.workload_key.sign(
            {
                "iss": self.workload_issuer,
                "sub": federated_subject(name),
                "aud": [FEDERATED_AUDIENCE],
                "iat": now,
                "nbf": now,
                "exp": now + lifetime,
            }
        )

    def of(self, name: str) -> PrincipalCredentials:
        return self._by_name[name]

    def managed_identity_header(self, name: str) -> str:
        """The identity header of a Microsoft service's own identity (an enterprise policy's): its host is the
        service itself, so the header is made when first asked for and kept in memory only."""
        held = self._by_name.setdefault(name, PrincipalCredentials())
        held.identity_header = held.identity_header or secrets.token_urlsafe(24)
        return held.identity_header

    def certificate(self, name: str) -> KeyPair | None:
        return self._certificates.get(name)

    def secret_matches(self, name: str, offered: str) -> bool:
        held = self._by_name.get(name)
        return bool(held and held.client_secret and digest_equal(held.client_secret, offered))

    def password_matches(self, name: str, offered: str) -> bool:
        held = self._by_name.get(name)
        return bool(held and held.password and digest_equal(held.password, offered))

    def by_identity_header(self, offered: str) -> str | None:
        """The persona whose managed-identity header this is."""
        return next(
            (
                name
                for name, held in self._by_name.items()
                if held.identity_header and digest_equal(held.identity_header, offered)
            ),
            None,
        )
