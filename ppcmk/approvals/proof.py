"""Who asked and who answered an approval, and how an answerer proves who they are (`Prover`).

`TokenProver` is the proof: the answerer signs in at the tenant's identity provider for the approvals app
(`ppcmk.identity`), and the run verifies the token itself (signature, issuer and tenant, audience and scope,
a person's, issued after the question, minutes old, used once). Its object id is the approver; no block name,
typed UPN or access to the Prefect API proves anyone. Graph turns ids and UPNs into readable names.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Protocol

from prefect import get_run_logger

from ppcmk.approvals.forms import PlanApproval
from ppcmk.cloud.settings import ConnectionSettings
from ppcmk.errors import ProofRefused
from ppcmk.identity.keys import TenantKeys
from ppcmk.identity.proof import Expected, verify
from ppcmk.identity.replay import use_once
from ppcmk.identity.settings import ApprovalsSettings
from ppcmk.identity.signin import SignIn
from ppcmk.services.factory import ClientFactory

_GUID = re.compile(r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")


class IdentityResolver:
    """Turns a UPN or object id into an object id (and a readable label) through Graph, so 'alice@x' and
    her GUID compare equal. Where Graph cannot answer, the lower-cased text stands in."""

    def __init__(self, connection: ConnectionSettings | None) -> None:
        self._factory = ClientFactory.for_settings(connection) if connection is not None else None
        self._cache: dict[str, tuple[str, str]] = {}

    def _lookup(self, who: str) -> tuple[str, str]:
        text = who.strip().lower()
        if self._factory is None:
            return text, who
        if text not in self._cache:
            try:
                found = self._factory.graph().user(text)
                name = found.display_name or found.user_principal_name or found.object_id
                self._cache[text] = (found.object_id.lower(), f"{name} ({found.user_principal_name or text})")
            except Exception as unresolved:  # a lookup for a readable name and an id; the text stands in
                get_run_logger().warning(
                    "Could not resolve %s through Graph (%s); comparing names instead",
                    who,
                    type(unresolved).__name__,
                )
                self._cache[text] = (text, who)
        return self._cache[text]

    def object_id(self, who: str) -> str:
        text = who.strip().lower()
        return text if _GUID.match(text) and self._factory is None else self._lookup(who)[0]

    def label(self, who: str) -> str:
        """'Key Vault Admin (kv-admin@contoso.example)' for a user Graph knows, else `who` as given."""
        return self._lookup(who)[1]


def connection_principal(connection: ConnectionSettings) -> str:
    """The object id a connection signs in as, read from the oid claim of its own ARM token (never logged)."""
    factory = ClientFactory.for_settings(connection)
    token = factory.credential.get_token(connection.endpoints.arm_scope).token
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims.get("oid", "")).lower()


class Refused(Exception):
    """An answer the flow does not accept; the run asks again."""


@dataclass(frozen=True)
class Person:
    """Who asked for a run: the object id separation of duty compares, and a name people read."""

    object_id: str
    label: str


@dataclass(frozen=True)
class ProvenApprover:
    """Who answered, as their proof says: the object id, a name for people, and their Entra roles."""

    object_id: str
    label: str  # "Power Platform Admin (pp-admin@contoso.example)"
    upn: str
    roles: tuple[str, ...] = ()  # Entra directory role template ids the proof carries (`wids`)
    # what the audit keeps of the proof: the tenant that issued it, when, and a fingerprint of its id
    evidence: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Asked:
    """One question as the prover judges its answer: which (run and key, the proof's use-once record names
    it), when it was first asked, and when the answer was stored (a suspended run replaying an answer judges
    the proof's age at that moment; None: now)."""

    question: str
    asked_at: datetime
    answered_at: datetime | None = None


class Prover(Protocol):
    """How a run knows who asked and who answered: `person` names the requester (once per request), `prove`
    turns one answer into its proven approver or raises Refused (the run asks again), `means` says on the form
    how an answerer proves themselves and `sign_in` what they sign in to (nothing secret)."""

    means: ClassVar[str]
    sign_in: SignIn

    def person(self, who: str) -> Person: ...

    def prove(self, answer: PlanApproval, asked: Asked) -> ProvenApprover: ...


class TokenProver:
    """The answerer's proof is a token the tenant's identity provider issued them for the approvals app
    (`approvals`); `directory` (the Key Vault half's connection) reaches the tenant: its authority publishes
    the signing keys, and Graph names people."""

    means: ClassVar[str] = "signed in as themselves at the moment they answer"

    def __init__(self, approvals: ApprovalsSettings, directory: ConnectionSettings) -> None:
        endpoints = directory.endpoints
        self._approvals, self._tenant = approvals, directory.tenant_id
        self._names = IdentityResolver(directory)
        self._keys = TenantKeys(endpoints.authority, directory.tenant_id, directory.ca_bundle)
        self.sign_in = SignIn(tenant_id=directory.tenant_id, authority=endpoints.authority,
                              instance_discovery=endpoints.instance_discovery, scope=approvals.scope_uri,
                              client_id=approvals.sign_in_client_id, audiences=approvals.audiences)

    def person(self, who: str) -> Person:
        return Person(self._names.object_id(who), self._names.label(who))

    def prove(self, answer: PlanApproval, asked: Asked) -> ProvenApprover:
        if not answer.proof.strip():
            raise Refused("the answer carries no proof: sign in first (`ppcmk approve RUN` does it, or the "
                          "sign-in page the form links)")
        expected = Expected(self._tenant, self._approvals.audiences, self._approvals.scope,
                            asked.asked_at.timestamp(), self._approvals.proof_max_age_minutes * 60)
        at = asked.answered_at.timestamp() if asked.answered_at is not None else None
        try:
            person = verify(answer.proof, expected, self._keys, now=at)
            use_once(person, asked.question)
        except ProofRefused as why:
            raise Refused(str(why)) from None
        evidence = (("proof_tenant", person.tenant_id), ("proof_issued_at", str(person.issued_at)),
                    ("proof_token_id", hashlib.sha256(person.token_id.encode()).hexdigest()[:16]))
        return ProvenApprover(person.object_id.lower(), self._names.label(person.object_id), person.name,
                              person.roles, evidence)
