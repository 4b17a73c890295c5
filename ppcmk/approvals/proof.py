"""Who asked and who answered an approval, and how an answerer proves who they are (`Prover`).

`ConnectionBlockProver` is the proof in use: the answerer names their own CmkConnection block, the flow signs
in with it, and the object id in that token is the approver. It is the one class a stronger proof replaces
(the gate, the requests and the flows know only `Prover`). Graph turns ids and UPNs into readable names.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from prefect import get_run_logger

from ppcmk.approvals.forms import PlanApproval
from ppcmk.cloud.settings import ConnectionSettings
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
    """Who answered, as proven by signing in with the connection block they named."""

    object_id: str
    display_name: str
    upn: str
    connection_block: str
    # what they signed in with: a hand-off's Power Platform half runs with it (never shown: may hold a secret)
    connection: ConnectionSettings = field(repr=False, compare=False)

    @property
    def label(self) -> str:
        return f"{self.display_name} ({self.upn})" if self.upn else self.display_name


class Prover(Protocol):
    """How a run knows who asked and who answered: `person` names the requester (once per request), `prove`
    turns one answer into its proven approver or raises Refused (the run asks again), and `means` says on the
    form how an answerer proves themselves."""

    means: ClassVar[str]

    def person(self, who: str) -> Person: ...

    def prove(self, answer: PlanApproval) -> ProvenApprover: ...


class ConnectionBlockProver:
    """The answerer names their own CmkConnection block and the run signs in with it; `directory` (the Key
    Vault admin's connection) looks names up in Graph, so 'alice@x' and her object id compare equal."""

    means: ClassVar[str] = "signing in with their own CmkConnection block"

    def __init__(
        self, directory: ConnectionSettings | None, load_connection: Callable[[str], ConnectionSettings]
    ) -> None:
        self._names = IdentityResolver(directory)
        self._load = load_connection

    def person(self, who: str) -> Person:
        return Person(self._names.object_id(who), self._names.label(who))

    def prove(self, answer: PlanApproval) -> ProvenApprover:
        return sign_in(answer.connection_block, self._load)


def sign_in(block: str, load: Callable[[str], ConnectionSettings]) -> ProvenApprover:
    """Sign in with the named block; its token's object id is the approver. Refused when the block does not
    exist or cannot sign in. `ppcmk approve` checks an answer the same way before it resumes a run."""
    try:
        settings = load(block)
    except ValueError as missing:  # Prefect: "Unable to find block document named …"; also a bad value
        raise Refused(f"there is no usable CmkConnection block {block!r} ({_first_line(missing)})") from None
    try:
        object_id = connection_principal(settings)
    except Exception as failed:  # any sign-in failure means the answer is unproven, never a crash
        raise Refused(
            f"connection block {block!r} could not sign in ({type(failed).__name__}: "
            f"{_first_line(failed)}), so who answered is unproven"
        ) from None
    if not object_id:
        raise Refused(f"connection block {block!r} signs in without an object id; who answered is unproven")
    name, upn = _directory_name(settings, object_id)
    return ProvenApprover(object_id, name, upn, block, settings)


def _directory_name(settings: ConnectionSettings, object_id: str) -> tuple[str, str]:
    graph = ClientFactory.for_settings(settings).graph()
    for lookup in (graph.user, graph.service_principal):
        try:
            found = lookup(object_id)
            return found.display_name or object_id, found.user_principal_name or ""
        except Exception:  # a name for the log only: the object id is the proof
            continue
    return object_id, ""


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [""])[0][:200]
